from __future__ import annotations

import shutil

import pytest

from tests.predict.helpers import data_root, train


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory, tiny_run, tiny_ner_run, tiny_llama_runs):
    root = (
        tmp_path_factory.getbasetemp() / "predict_runs"
    )  # one folder a session: tests/serve shares the runs
    data_root(root / "data")
    # trained("rte", "data=rte"), trained("ner", "data=conll2003") and trained("rte_llama", "data=rte",
    # "backbone=tiny_llama"): copies of the session's tiny_run, tiny_ner_run and tiny_llama_runs' ptuning_v2 job
    # (the same tiny runs, 2 epochs instead of 1, the Llama one with ptuning_v2's default prompt length), not
    # trainings of their own. Their configs pin the fixture folders they trained on, whose RTE and CoNLL files are
    # the ones data_root writes (write_benchmarks and write_task_benchmarks with the same defaults), so the tests'
    # inputs are the runs' own validation rows
    session_runs = {
        "rte": tiny_run.run,
        "ner": tiny_ner_run.run,
        "rte_llama": tiny_llama_runs["ptuning_v2"][0],
    }
    for name, run in session_runs.items():
        copy = root / "runs" / name / run.name
        if not copy.is_dir():  # tests/serve's conftest takes this fixture too: a second call finds the copy
            shutil.copytree(run, copy)
    return root


@pytest.fixture(scope="session")
def trained(runs_root):
    """``trained(name, *overrides)``: a finished tiny run, trained once a session."""
    return lambda name, *overrides: train(runs_root, name, *overrides)


@pytest.fixture(autouse=True)
def fixture_data_dir(runs_root, monkeypatch):
    """The runs' data folder (their saved configs name it through DEEPPROMPT_DATA_DIR)."""
    monkeypatch.setenv("DEEPPROMPT_DATA_DIR", str(runs_root / "data"))
