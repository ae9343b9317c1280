from __future__ import annotations

import pytest

from tests.predict.helpers import data_root, train


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory):
    root = (
        tmp_path_factory.getbasetemp() / "predict_runs"
    )  # one folder a session: tests/serve shares the runs
    data_root(root / "data")
    return root


@pytest.fixture(scope="session")
def trained(runs_root):
    """``trained(name, *overrides)``: a finished tiny run, trained once a session."""
    return lambda name, *overrides: train(runs_root, name, *overrides)


@pytest.fixture(autouse=True)
def fixture_data_dir(runs_root, monkeypatch):
    """The runs' data folder (their saved configs name it through DEEPPROMPT_DATA_DIR)."""
    monkeypatch.setenv("DEEPPROMPT_DATA_DIR", str(runs_root / "data"))
