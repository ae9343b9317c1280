from __future__ import annotations

from pathlib import Path

import pytest

from deepprompt.report.cli import main
from tests.report.synthetic import TITLE, write_tree


@pytest.fixture(scope="session")
def synthetic_tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def cli_report(synthetic_tree, tmp_path_factory) -> Path:
    """``deepprompt-report <synthetic tree> --out <dir> --title Synthetic``, run once; returns the out dir."""
    out = tmp_path_factory.mktemp("report")
    assert main([str(synthetic_tree), "--out", str(out), "--title", TITLE]) == 0
    return out
