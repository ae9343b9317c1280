"""docs/configuration.md is generated from conf/ and the method schemas: it must say what the configs say."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_current():
    spec = importlib.util.spec_from_file_location(
        "make_configuration", ROOT / "docs" / "make_configuration.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert module.render() == current, (
        "docs/configuration.md is out of date with conf/: run `python docs/make_configuration.py` and commit it"
    )
