"""`deepprompt-train` end to end for each task family on the tiny backbone and fixture folders."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_dirs

TINY = ("backbone=tiny", "debug=limit", "extras.print_config=false", "method.prompt.length=4")


def _summary(run) -> dict:
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "finished", summary.get("error")
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    return summary


def _run(tmp_path):
    [run] = run_dirs(tmp_path / "outputs")
    return run


def test_ner_run_logs_dev_and_test_entity_f1(tiny_ner_run):
    summary = _summary(tiny_ner_run.run)  # deepprompt-train TINY data=conll2003 on the task fixture folders
    assert summary["monitor"] == "val/f1" and summary["task"] == "conll2003"
    for split in ("val", "test"):
        assert {f"{split}/{k}" for k in ("f1", "precision", "recall", "loss")} <= set(summary["last"])
    assert summary["best"]["val/f1"] == max(h["val/f1"] for h in summary["history"])
    # tiny: prompts 4 * 2 layers * 2 (k, v) * 32, head 32 * 9 + 9 (O + B/I x 4 types)
    assert summary["params"]["trainable"] == 512 + 32 * 9 + 9


@pytest.mark.slow
def test_squad_run_on_the_article_split(run_cli, tmp_path, task_data_dir):
    run_cli(
        "deepprompt.train",
        *TINY,
        "data=squad",
        "data.max_seq_length=64",
        "data.doc_stride=16",
        env={"DEEPPROMPT_DATA_DIR": str(task_data_dir)},
    )
    summary = _summary(_run(tmp_path))
    assert {"val/f1", "val/exact_match", "val/questions"} <= set(summary["last"])
    assert "split by article" in summary["config"]["data"]["split_note"]


@pytest.mark.slow
def test_multirc_run_logs_f1a_and_em(run_cli, tmp_path, task_data_dir):
    run_cli("deepprompt.train", *TINY, "data=multirc", env={"DEEPPROMPT_DATA_DIR": str(task_data_dir)})
    summary = _summary(_run(tmp_path))
    assert summary["monitor"] == "val/f1a"
    assert {"val/f1a", "val/em", "val/acc", "val/loss"} <= set(summary["last"])


@pytest.mark.slow
def test_copa_run_scores_choices(run_cli, tmp_path, task_data_dir):
    run_cli("deepprompt.train", *TINY, "data=copa", env={"DEEPPROMPT_DATA_DIR": str(task_data_dir)})
    summary = _summary(_run(tmp_path))
    assert {"val/acc", "val/loss"} <= set(summary["last"])
    assert summary["params"]["trainable"] == 512 + 33  # one score per choice: Linear(32, 1)
