"""`deepprompt-train` with each method on the tiny backbone: it finishes and metrics.json counts right.

Trainable counts with each method's conf/method/<name>.yaml defaults, by hand (tiny: 2 layers, hidden 32;
backbone 1,011,360 parameters, head 66; see test_methods.py).
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_dirs

TINY = ("backbone=tiny", "debug=limit", "extras.print_config=false")
BACKBONE, HEAD = 1_011_360, 66
EXPECTED = {
    "lora": 2 * 2 * 8 * (32 + 32),  # r=8 on query, value
    "prefix": 16 * 2 * 2 * 32,  # 16 tokens x (key, value) x 2 layers x 32
    "prefix_mlp": 16 * 32 + (32 * 512 + 512) + (512 * 128 + 128),  # embedding + 32 -> 512 -> 128 MLP
    "prompt_tuning": 20 * 32,
    "ptuning_v1": 20 * 32 + 3 * (32 * 32 + 32),  # embedding + MLP 32 -> 32 -> 32 -> 32
    "ptuning_v2": 16 * 2 * 2 * 32,
    "finetune": BACKBONE,
    "linear_probe": 0,
}


def check(summary: dict) -> None:
    method = summary["method"]
    assert summary["status"] == "finished", summary.get("error")
    assert summary["task"] == "rte"
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    params = summary["params"]
    assert params["backbone"] == BACKBONE, method
    assert params["trainable"] == EXPECTED[method] + HEAD, method
    assert params["trainable_share"] == pytest.approx((EXPECTED[method] + HEAD) / BACKBONE)


def test_lora_run_finishes_and_counts(run_cli, tmp_path):
    run_cli("deepprompt.train", *TINY, "data=rte", "method=lora")
    [run] = run_dirs(tmp_path / "outputs")
    check(json.loads((run / "metrics.json").read_text()))


@pytest.mark.slow
def test_every_method_runs_from_the_cli(run_cli, tmp_path):
    """One multirun, one job per method (a single process: ~10 s a job on the tiny backbone)."""
    methods = sorted(set(EXPECTED) - {"lora"})
    run_cli("deepprompt.train", "-m", *TINY, "data=rte", f"method={','.join(methods)}")
    summaries = [json.loads((d / "metrics.json").read_text()) for d in run_dirs(tmp_path / "outputs")]
    assert sorted(s["method"] for s in summaries) == methods
    for summary in summaries:
        check(summary)
