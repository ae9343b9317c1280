"""Exact resume after SIGKILL, atomic/corrupt checkpoints, and skipping finished sweep jobs."""

from __future__ import annotations

import csv
import gc
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deepprompt.data.samplers import LengthGroupedSampler
from deepprompt.errors import ConfigError
from deepprompt.runs.resume import make_resumable, resolve_ckpt_path
from tests.conftest import run_dirs
from tests.runs.helpers import TINY, env_with_repo, metrics

# 4 batches an epoch (debug=limit), 3 epochs, a mid-epoch last.ckpt after every step
RESUMABLE = (*TINY, "data=rte", "trainer.max_epochs=3", "callbacks.step_checkpoint.every_n_train_steps=1")
# a metrics.csv row every step, written at once (rows still in memory at a kill are lost, not the file)
CSV_EVERY_STEP = ("trainer.log_every_n_steps=1", "+logger.csv.flush_logs_every_n_steps=1")
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


def _loader(sampler: str, workers: int, persistent: bool):
    data = list(range(40))
    if sampler == "random":
        order = torch.utils.data.RandomSampler(data, generator=torch.Generator().manual_seed(3))
    else:
        order = LengthGroupedSampler([(7 * i) % 13 for i in data], batch_size=4, seed=3, megabatch_mult=2)
    loader = torch.utils.data.DataLoader(
        data, batch_size=4, sampler=order, num_workers=workers, persistent_workers=persistent
    )
    return make_resumable(loader)


def _epoch(loader, epoch: int, stop: int | None = None) -> list[list[int]]:
    getattr(loader.sampler, "set_epoch", lambda e: None)(epoch)  # what Lightning does before each epoch
    batches = []
    for batch in loader:
        batches.append(batch.tolist())
        if len(batches) == stop:
            break
    return batches


@pytest.mark.parametrize("sampler", ["random", "length-grouped"])
@pytest.mark.parametrize(("workers", "persistent"), [(0, False), (2, False), (2, True)])
def test_loader_state_resumes_mid_epoch_at_the_next_batch(sampler, workers, persistent):
    """The train loader's saved state (what a mid-epoch checkpoint holds) gives, in a fresh loader, exactly the
    batches the uninterrupted loader goes on to draw: the rest of the epoch, then the next epochs."""
    full = _loader(sampler, workers, persistent)
    uninterrupted = [_epoch(full, epoch) for epoch in range(3)]

    first = _loader(sampler, workers, persistent)
    _epoch(first, 0)
    assert _epoch(first, 1, stop=3) == uninterrupted[1][:3]
    state = first.state_dict()
    assert state["epoch"] == 1 and state["batches"] == 3

    resumed = _loader(sampler, workers, persistent)
    resumed.load_state_dict(state)
    assert _epoch(resumed, 1) == uninterrupted[1][3:]
    assert _epoch(resumed, 2) == uninterrupted[2]


@pytest.mark.parametrize("sampler", ["random", "length-grouped"])
def test_a_dropped_resumable_loader_stops_its_persistent_workers_at_once(sampler):
    """A job's train loader, once dropped, is freed by reference counting and stops its workers then: the loader
    must not sit in a reference cycle with its persistent iterator. In a cycle it waits for the cyclic collector
    (in a multirun process: some later job), whose finalizing order can close the workers' queues first; each
    worker is then joined for 5 s and killed."""
    gc.disable()  # only reference counting may free it
    try:
        loader = _loader(sampler, workers=2, persistent=True)
        _epoch(loader, 0)
        _epoch(loader, 1, stop=2)  # a resumed-style break mid-epoch: the iterator stays with the loader
        workers = list(loader._iterator._workers)
        assert all(w.is_alive() for w in workers)
        alive = weakref.ref(loader)
        del loader
        assert alive() is None, "the loader is kept alive by a reference cycle"
        for w in workers:
            w.join(timeout=3)
        assert not any(w.is_alive() for w in workers), "the persistent workers did not stop with their loader"
    finally:
        gc.enable()


@pytest.mark.slow
@pytest.mark.parametrize(
    "loading",
    [
        pytest.param(("data.num_workers=0",), id="main-process"),
        # persistent workers (the default with workers): the resumed epoch's iterator is built afresh
        pytest.param(("data.num_workers=2", *CSV_EVERY_STEP), id="workers"),
        pytest.param(("data.num_workers=2", "data.group_by_length=false"), id="workers-random-sampler"),
    ],
)
def test_sigkill_mid_epoch_then_relaunch_matches_uninterrupted_run(run_cli, benchmark_dir, tmp_path, loading):
    full = tmp_path / "full"
    run_cli("deepprompt.train", *RESUMABLE, *loading, f"hydra.run.dir={full}")

    killed = tmp_path / "killed"
    slow = ["+callbacks.slow._target_=tests.runs.helpers.SlowSteps", "+callbacks.slow.seconds=0.5"]
    args = [*RESUMABLE, *loading, f"hydra.run.dir={killed}", *slow]
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
    run_cli("deepprompt.train", *args, env=env_with_repo())  # the same configuration (a relaunch checks it)
    a, b = metrics(full), metrics(killed)
    assert b["status"] == "finished" and b["resumed_from"] == str(
        last.relative_to(killed)
    )  # relative to the run
    assert b["steps"] == a["steps"] == 3 * STEPS_PER_EPOCH and b["epochs"] == a["epochs"]
    for key in ("best", "last", "history"):
        assert _close(a[key], b[key]), (key, a[key], b[key])
    # the final trained prompts and head (exported at the end of training) are those of the uninterrupted run
    pa = load_file(full / "prompts" / "last" / "prompts.safetensors")
    pb = load_file(killed / "prompts" / "last" / "prompts.safetensors")
    assert pa.keys() == pb.keys()
    for name, tensor in pa.items():
        torch.testing.assert_close(pb[name], tensor, atol=1e-6, rtol=0)
    if (
        "trainer.log_every_n_steps=1" in loading
    ):  # metrics.csv: the history before the kill kept, each step once
        rows_a, rows_b = _csv_steps(full), _csv_steps(killed)
        assert sorted(rows_b) == sorted(rows_a) == list(range(3 * STEPS_PER_EPOCH))
        for step, loss in rows_a.items():
            assert abs(float(rows_b[step]) - float(loss)) <= 1e-6, step


def _csv_steps(run: Path) -> dict[int, str]:
    with open(run / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    steps = [int(r["step"]) for r in rows]
    assert len(steps) == len(set(steps)), f"repeated steps in {run}/csv/metrics.csv"
    return {int(r["step"]): r["train/loss"] for r in rows}


# slow: the default suite checks its parts: a ckpt_path load_checkpoint refuses, named in one line with the run
# recorded as failed, in test_checkpoint_files.py::test_malicious_checkpoint_runs_no_code_in_training, and the
# truncated file's message in test_checkpoint_files.py::test_load_checkpoint_refuses_code_and_reads_real_checkpoints
@pytest.mark.slow
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
