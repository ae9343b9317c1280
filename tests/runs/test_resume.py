"""Exact resume after SIGKILL, atomic/corrupt checkpoints, and skipping finished sweep jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deepprompt.errors import ConfigError
from deepprompt.runs.resume import resolve_ckpt_path
from tests.conftest import run_dirs
from tests.runs.helpers import TINY, env_with_repo, metrics

# 4 batches an epoch (debug=limit), 3 epochs, a mid-epoch last.ckpt after every step
RESUMABLE = (*TINY, "data=rte", "trainer.max_epochs=3", "callbacks.step_checkpoint.every_n_train_steps=1")
STEPS_PER_EPOCH = 4


def _step(ckpt: Path) -> int:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]


def _close(a, b, tol=1e-6):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= tol
    return a == b


@pytest.mark.slow
def test_sigkill_mid_epoch_then_relaunch_matches_uninterrupted_run(run_cli, benchmark_dir, tmp_path):
    full = tmp_path / "full"
    run_cli("deepprompt.train", *RESUMABLE, f"hydra.run.dir={full}")

    killed = tmp_path / "killed"
    args = [
        *RESUMABLE,
        f"hydra.run.dir={killed}",
        "+callbacks.slow._target_=tests.runs.helpers.SlowSteps",
        "+callbacks.slow.seconds=0.5",
    ]
    env = {
        **os.environ,
        **env_with_repo(),
        "DEEPPROMPT_DATA_DIR": str(benchmark_dir),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepprompt.train", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    try:
        # wait for a mid-epoch checkpoint of the second epoch (after one validation), then kill -9
        while time.time() < deadline and proc.poll() is None:
            if last.is_file() and STEPS_PER_EPOCH < _step(last) < 2 * STEPS_PER_EPOCH:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before a mid-epoch checkpoint could be caught"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    killed_at = _step(last)
    assert killed_at % STEPS_PER_EPOCH != 0, "the kill must leave a mid-epoch checkpoint"
    assert not (killed / "metrics.json").exists()

    # relaunched into the same run directory: resume=auto picks up checkpoints/last.ckpt
    run_cli("deepprompt.train", *RESUMABLE, f"hydra.run.dir={killed}")
    a, b = metrics(full), metrics(killed)
    assert b["status"] == "finished" and b["resumed_from"] == str(last)
    assert b["steps"] == a["steps"] == 3 * STEPS_PER_EPOCH and b["epochs"] == a["epochs"]
    for key in ("best", "last", "history"):
        assert _close(a[key], b[key]), (key, a[key], b[key])
    # the final trained prompts and head (exported at the end of training) are those of the uninterrupted run
    pa = load_file(full / "prompts" / "last" / "prompts.safetensors")
    pb = load_file(killed / "prompts" / "last" / "prompts.safetensors")
    assert pa.keys() == pb.keys()
    for name, tensor in pa.items():
        torch.testing.assert_close(pb[name], tensor, atol=1e-6, rtol=0)


def test_truncated_checkpoint_is_named_in_one_line(run_cli, tmp_path):
    run = tmp_path / "run"
    ckpt = tmp_path / "broken.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 half a checkpoint")  # what a kill during a non-atomic save leaves behind
    proc = run_cli(
        "deepprompt.train", *TINY, "data=rte", f"hydra.run.dir={run}", f"ckpt_path={ckpt}", check=False
    )
    assert proc.returncode == 1
    assert f"{ckpt}: not a readable checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert metrics(run)["status"] == "failed"


def test_ckpt_path_resolution(tmp_path):
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert resolve_ckpt_path(None, "auto", tmp_path) is None
    with pytest.raises(ConfigError, match="no checkpoint file at .*last.ckpt"):
        resolve_ckpt_path("last", "auto", tmp_path)
    last.parent.mkdir()
    last.write_bytes(b"x")
    assert resolve_ckpt_path(None, "auto", tmp_path) == last  # re-launched into its run dir
    assert resolve_ckpt_path(None, "never", tmp_path) is None
    assert resolve_ckpt_path("last", "never", tmp_path) == last
    assert resolve_ckpt_path(str(last), "auto", tmp_path) == last
    with pytest.raises(ConfigError, match="resume must be"):
        resolve_ckpt_path(None, "sometimes", tmp_path)


@pytest.mark.slow
def test_rerunning_a_sweep_reruns_only_unfinished_jobs(run_cli, tmp_path):
    sweep = tmp_path / "sweep"
    args = ("-m", *TINY, "data=sst2", "method.prompt.length=2,4", f"hydra.sweep.dir={sweep}")
    run_cli("deepprompt.train", *args)
    first, second = run_dirs(sweep)
    kept = (first / "metrics.json").stat().st_mtime_ns
    before = metrics(second)
    (second / "metrics.json").unlink()
    run_cli("deepprompt.train", *args)
    assert (first / "metrics.json").stat().st_mtime_ns == kept  # finished: skipped
    again = metrics(second)
    assert again["status"] == "finished" and again["best"] == before["best"]
    for summary in (metrics(first), again):  # the fields a report reads
        for key in (
            "task",
            "method",
            "backbone",
            "seed",
            "best",
            "last",
            "sweep_dir",
            "job_num",
            "overrides",
        ):
            assert key in summary, key
