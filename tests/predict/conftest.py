from __future__ import annotations

import shutil

import pytest

from tests.predict.helpers import data_root, train


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory, tiny_run):
    root = (
        tmp_path_factory.getbasetemp() / "predict_runs"
    )  # one folder a session: tests/serve shares the runs
    data_root(root / "data")
    # trained("rte", "data=rte"): a copy of the session's tiny_run (the same tiny RTE run, 2 epochs instead of 1),
    # not a training of its own. Its config pins the benchmark folder it trained on, whose RTE files are the ones
    # data_root writes (write_benchmarks with the same defaults), so the tests' inputs are its validation rows
    rte = root / "runs" / "rte" / tiny_run.run.name
    if not rte.is_dir():  # tests/serve's conftest takes this fixture too: a second call finds the copy
        shutil.copytree(tiny_run.run, rte)
    return root


@pytest.fixture(scope="session")
def trained(runs_root):
    """``trained(name, *overrides)``: a finished tiny run, trained once a session."""
    return lambda name, *overrides: train(runs_root, name, *overrides)


@pytest.fixture(autouse=True)
def fixture_data_dir(runs_root, monkeypatch):
    """The runs' data folder (their saved configs name it through DEEPPROMPT_DATA_DIR)."""
    monkeypatch.setenv("DEEPPROMPT_DATA_DIR", str(runs_root / "data"))
