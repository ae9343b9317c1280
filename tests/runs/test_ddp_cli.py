"""`deepprompt-train trainer=ddp_cpu` end to end: 2 processes (gloo, CPU) on the tiny backbone.

Slow (each DDP run starts a second Python process that imports torch, transformers and Lightning).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import run_dirs

pytestmark = pytest.mark.slow

# Fixture data: 48 training examples (3 global batches of 16), 16 validation examples of which we keep 15,
# so that 2 ranks get uneven shards (8 + 7) and a padding sampler would score one example twice.
BASE = (
    "backbone=tiny",
    "data=sst2",
    "extras.print_config=false",
    "callbacks=none",
    "~logger",
    "data.num_workers=0",
    "data.group_by_length=true",
    "data.limit_eval_examples=15",
    "data.eval_batch_size=16",
    "trainer.num_sanity_val_steps=0",
)
# No randomness left in a training step: the two runs differ only in how the batch is split.
NO_DROPOUT = (
    "method.prompt.dropout=0",
    "head.dropout=0",
    "+backbone.config_overrides.hidden_dropout_prob=0.0",
    "+backbone.config_overrides.attention_probs_dropout_prob=0.0",
)
VAL_ACC_ATOL = 0.0  # accuracy: exactly equal (a near-tie logit could flip one example: 1/15 would show it)
VAL_LOSS_ATOL = 1e-5  # observed: 6e-8
PARAM_ATOL, PARAM_RTOL = 1e-5, 1e-4  # observed: 2.4e-7 (prompts), 6e-9 (head)


def _summary(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _trained_state(run: Path) -> dict[str, torch.Tensor]:
    [ckpt] = sorted((run / "checkpoints").glob("*.ckpt"))
    return torch.load(ckpt, weights_only=False, map_location="cpu")["state_dict"]


def test_two_processes_match_one_process_with_the_same_global_batch(run_cli, tmp_path):
    """1 x 16 vs 2 x 8: the same optimizer steps on the same examples, the same validation metrics.

    LengthGroupedSampler deals the k-th window of 16 length-sorted indices round-robin to the ranks, so
    global batch k holds the same 16 examples in both runs; DDP averages the two ranks' mean-loss gradients
    (equal halves: the mean over 16). Validation shards 15 examples 8 + 7 without repeats.
    """
    single_out, ddp_out = tmp_path / "single", tmp_path / "ddp"
    common = (*BASE, *NO_DROPOUT, "trainer.max_epochs=2")
    run_cli(
        "deepprompt.train", *common, "trainer=cpu", "data.batch_size=16",
        env={"DEEPPROMPT_OUTPUT_DIR": str(single_out)},
    )  # fmt: skip
    run_cli(
        "deepprompt.train", *common, "trainer=ddp_cpu", "data.batch_size=8",
        env={"DEEPPROMPT_OUTPUT_DIR": str(ddp_out)},
    )  # fmt: skip
    [single_run], [ddp_run] = run_dirs(single_out), run_dirs(ddp_out)
    single, ddp = _summary(single_run), _summary(ddp_run)
    assert single["status"] == ddp["status"] == "finished"
    assert single["steps"] == ddp["steps"] == 2 * 3  # 48 / 16 global batches per epoch, 2 epochs
    assert (ddp_run / "train_rank1.log").is_file()  # the second process logged into this run's folder

    for one, two in zip(single["history"], ddp["history"], strict=True):
        assert round(one["val/acc"] * 15, 4).is_integer()  # 15 examples, each counted once
        assert abs(one["val/acc"] - two["val/acc"]) <= VAL_ACC_ATOL
        assert abs(one["val/loss"] - two["val/loss"]) <= VAL_LOSS_ATOL

    # the trained parameters (prompts + head) agree: the steps were the same, not just the scores
    a, b = _trained_state(single_run), _trained_state(ddp_run)
    assert set(a) == set(b) == {"encoder.prompt_encoder.prefix", "classifier.weight", "classifier.bias"}
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=PARAM_ATOL, rtol=PARAM_RTOL, msg=name)
    # training moved the model between the epochs: the agreement is not that of two untouched models
    assert abs(single["history"][1]["val/loss"] - single["history"][0]["val/loss"]) > 10 * VAL_LOSS_ATOL
    print(
        "max |delta| single vs ddp:",
        {k: float((a[k] - b[k]).abs().max()) for k in a},
        "val/loss:",
        [abs(x["val/loss"] - y["val/loss"]) for x, y in zip(single["history"], ddp["history"], strict=True)],
        "val/loss per epoch:",
        [x["val/loss"] for x in single["history"]],
    )


def test_multirun_of_ddp_jobs_leaves_one_folder_per_job(run_cli, tmp_path):
    """`-m` with trainer=ddp_cpu: each job's second process joins that job (no sweep re-run, no new folder),
    and the second job starts its own process group (the first job's is released)."""
    out = tmp_path / "outputs"
    run_cli(
        "deepprompt.train", "-m", *BASE, "trainer=ddp_cpu", "trainer.max_epochs=1", "data.batch_size=8",
        "method.prompt.length=2,4",
    )  # fmt: skip
    runs = run_dirs(out)
    assert len(runs) == 2
    [sweep] = (out / "train" / "multiruns").iterdir()
    assert sorted(p.name for p in (out / "train").iterdir()) == ["multiruns"]  # no stray runs/<time>
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    assert sorted(runs) == [sweep / "0", sweep / "1"]
    lengths = []
    for run in runs:
        summary = _summary(run)
        assert summary["status"] == "finished"
        assert summary["steps"] == 3  # 48 examples / (2 processes x 8): the data was sharded
        lengths.append(summary["config"]["method"]["prompt"]["length"])
        assert (run / "train_rank1.log").is_file()
        assert sorted(p.name for p in run.iterdir() if p.is_dir()) == [".deepprompt", ".hydra", "checkpoints"]
    assert sorted(lengths) == [2, 4]


def test_submitit_local_launcher_runs_single_and_ddp_jobs(run_cli, tmp_path):
    """hydra/launcher=local (submitit_local): each job runs in its own submitit process; the DDP job's second
    process is started as `python -m deepprompt.train` (not submitit's entry point) and joins the job."""
    out = tmp_path / "outputs"
    run_cli(
        "deepprompt.train", "-m", "hydra/launcher=local", *BASE, "trainer.max_epochs=1", "data.batch_size=8",
        "trainer=cpu,ddp_cpu", "extras.record_host=true",
    )  # fmt: skip
    runs = run_dirs(out)
    assert len(runs) == 2
    [sweep] = (out / "train" / "multiruns").iterdir()
    assert (sweep / ".submitit").is_dir()
    steps = {}
    for run in runs:
        summary = _summary(run)
        assert summary["status"] == "finished"
        assert summary["host"] and (run / summary["sweep_dir"]).resolve() == sweep.resolve()
        steps[run.name] = summary["steps"]
    assert steps == {"0": 6, "1": 3}  # single process: 48 / 8; DDP: 48 / (2 x 8)
    assert (sweep / "1" / "train_rank1.log").is_file()
