"""A NaN/inf loss or gradient stops the run cleanly; the same seed gives the same metrics; W&B falls back to offline."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import run_dirs
from tests.runs.helpers import TINY, env_with_repo, metrics


@pytest.mark.parametrize(
    ("poison", "message"),
    [
        ("PoisonLoss", "training loss is NaN at step 6 (epoch 1"),
        # a finite loss with an infinite gradient: that step is named, not the next one whose loss the applied
        # update would have turned into NaN
        ("PoisonGrad", "gradients are not finite at step 6 (epoch 1"),
    ],
)
def test_non_finite_loss_or_gradients_stop_before_the_update_and_keep_the_last_good_checkpoint(
    run_cli, tmp_path, poison, message
):
    run = tmp_path / "run"
    proc = run_cli(
        "deepprompt.train",
        *TINY,
        "data=rte",
        f"hydra.run.dir={run}",
        "callbacks.step_checkpoint.every_n_train_steps=1",
        f"+callbacks.poison._target_=tests.runs.helpers.{poison}",
        "+callbacks.poison.at_step=6",
        env=env_with_repo(),
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert "last good checkpoint is" in proc.stderr
    if poison == "PoisonGrad":
        assert "although the training loss is finite (" in proc.stderr
    summary = metrics(run)
    assert summary["status"] == "failed" and "NonFiniteLossError" in summary["error"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 5  # the step before; stopped before the update
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())


@pytest.mark.slow
def test_same_seed_same_metrics(run_cli, tmp_path):
    """CPU runs are bit-identical. On GPU, cuBLAS/SDPA reductions make metrics agree to ~1e-4 (val/loss) and
    accuracies to one example unless trainer.deterministic=true and CUBLAS_WORKSPACE_CONFIG=:4096:8."""
    for name in ("a", "b"):
        run_cli("deepprompt.train", *TINY, "data=rte", f"hydra.run.dir={tmp_path / name}")
    a, b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert a["best"] == b["best"] and a["last"] == b["last"] and a["history"] == b["history"]


@pytest.mark.slow
def test_wandb_online_failure_falls_back_to_offline(run_cli, tmp_path):
    env = {
        "WANDB_MODE": "online",
        "WANDB_API_KEY": "",
        "WANDB_BASE_URL": "http://127.0.0.1:9",  # nothing listens there
        "WANDB_INIT_TIMEOUT": "20",
        "HOME": str(tmp_path),  # no ~/.netrc credentials
    }
    run_cli("deepprompt.train", *TINY, "data=rte", "logger=wandb", env=env)
    [run] = run_dirs(tmp_path / "outputs")
    assert metrics(run)["status"] == "finished"
    assert list((run / "wandb").glob("offline-run-*"))
