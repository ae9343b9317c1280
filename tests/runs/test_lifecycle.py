"""A run's life in its folder, with real processes and real signals: SIGTERM/SIGINT stop cleanly and resume,
one process at a time per folder, a relaunch must keep the run's configuration, and the CSV history survives."""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import TINY_RUN, run_dirs
from tests.runs.helpers import TINY, env_with_repo, metrics

# 4 batches an epoch (debug=limit), 2 epochs, a mid-epoch last.ckpt after every step, a CSV row every step
RUN = (
    *TINY,
    "data=rte",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "callbacks.step_checkpoint.every_n_train_steps=1",
)
SLOW = ("+callbacks.slow._target_=tests.runs.helpers.SlowSteps", "+callbacks.slow.seconds=0.4")


def _env(benchmark_dir: Path, tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        **env_with_repo(),
        "DEEPPROMPT_DATA_DIR": str(benchmark_dir),
        "DEEPPROMPT_OUTPUT_DIR": str(tmp_path / "outputs"),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("DEEPPROMPT_DEBUG", None)
    return env


def _start(args, benchmark_dir: Path, tmp_path: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "deepprompt.train", *args],
        cwd=tmp_path,
        env={**_env(benchmark_dir, tmp_path), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _step(ckpt: Path) -> int:
    try:
        return torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
    except Exception:  # being replaced: try again
        return -1


def _wait_for_step(proc: subprocess.Popen, ckpt: Path, low: int, timeout: float = 300) -> None:
    """Until ``ckpt`` holds a step in ``[low, low + 2]`` (mid-epoch for low=5: epoch 1, batch 1..3)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ckpt.is_file() and low <= _step(ckpt) <= low + 2:
            return
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step {low}..{low + 2} (exit {proc.poll()}): {proc.stderr.read()}")


def _csv_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _resume_args(command: str, run: Path) -> list[str]:
    words = shlex.split(command)
    assert words[0] == "deepprompt-train" and words[-1] == f"hydra.run.dir={run}"
    return words[1:]


def _stop_mid_epoch(run: Path, signum: int, benchmark_dir: Path, tmp_path: Path) -> tuple[int, str]:
    """Start a run, send ``signum`` once a mid-epoch checkpoint of epoch 1 exists; (exit status, stderr)."""
    proc = _start([*RUN, *SLOW, f"hydra.run.dir={run}"], benchmark_dir, tmp_path)
    try:
        _wait_for_step(proc, run / "checkpoints" / "last.ckpt", low=5)  # epoch 1, after one validation
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, err


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_flushes_a_checkpoint_and_records_the_resume_command(
    benchmark_dir, tmp_path, signum, status
):
    run = tmp_path / "run"
    code, err = _stop_mid_epoch(run, signum, benchmark_dir, tmp_path)
    assert code == status, err[-3000:]
    summary = metrics(run)
    assert summary["status"] == "interrupted" and summary["signal"] == signal.Signals(signum).name
    assert summary["checkpoint"] == "checkpoints/last.ckpt"  # metrics.json: paths relative to the run folder
    stopped_at = _step(run / "checkpoints" / "last.ckpt")
    assert 5 <= stopped_at < 8  # flushed at the batch boundary after the signal, mid-epoch
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith(f"deepprompt: error: run interrupted by {signal.Signals(signum).name}")
    assert last_line.endswith(f"resume with: {summary['resume_command']}")
    assert _resume_args(summary["resume_command"], run)[:2] == list(RUN[:2])
    assert "Traceback" not in err
    rows = _csv_rows(run)
    assert {int(r["step"]) for r in rows if r.get("train/loss")} == set(range(stopped_at))  # history on disk


@pytest.mark.slow
def test_run_stopped_by_sigterm_resumes_with_its_command_like_an_uninterrupted_run(
    run_cli, benchmark_dir, tmp_path
):
    run = tmp_path / "run"
    code, err = _stop_mid_epoch(run, signal.SIGTERM, benchmark_dir, tmp_path)
    assert code == 143, err[-3000:]
    run_cli("deepprompt.train", *_resume_args(metrics(run)["resume_command"], run), env=env_with_repo())
    full = tmp_path / "full"
    run_cli("deepprompt.train", *RUN, f"hydra.run.dir={full}")
    a, b = metrics(full), metrics(run)
    assert b["status"] == "finished" and b["steps"] == a["steps"] == 8
    assert b["resumed_from"] == "checkpoints/last.ckpt"  # metrics.json: paths relative to the run folder
    assert a["history"] == b["history"] and a["best"] == b["best"] and a["last"] == b["last"]
    # metrics.csv kept the steps before the stop and has each step once, with the uninterrupted run's losses
    steps = [int(r["step"]) for r in _csv_rows(run) if r.get("train/loss")]
    losses = {int(r["step"]): r["train/loss"] for r in _csv_rows(run) if r.get("train/loss")}
    expected = {int(r["step"]): r["train/loss"] for r in _csv_rows(full) if r.get("train/loss")}
    assert sorted(steps) == list(range(8)) and losses == expected


@pytest.mark.slow
def test_stop_signal_stops_a_sweep_which_resumes_when_rerun(run_cli, benchmark_dir, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *RUN, "method.prompt.length=2,4", f"hydra.sweep.dir={sweep}"]
    proc = _start([*args, *SLOW], benchmark_dir, tmp_path)
    try:
        _wait_for_step(proc, sweep / "0" / "checkpoints" / "last.ckpt", low=5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-3000:]
    assert metrics(sweep / "0")["status"] == "interrupted"
    assert not (sweep / "1").exists()  # the later job was not started, and not lost:
    command = metrics(sweep / "0")["resume_command"]
    assert f"sweep interrupted by SIGTERM; last checkpoint {sweep / '0' / 'checkpoints' / 'last.ckpt'}" in err
    words = shlex.split(command)
    assert words[:2] == ["deepprompt-train", "-m"] and words[-1] == f"hydra.sweep.dir={sweep}"
    run_cli("deepprompt.train", *words[1:], env=env_with_repo())
    assert [metrics(d)["status"] for d in run_dirs(sweep)] == ["finished", "finished"]
    assert metrics(sweep / "0")["resumed_from"] == "checkpoints/last.ckpt"  # relative to the run folder


def test_second_process_in_a_run_folder_fails_and_a_dead_holder_does_not_block(
    run_cli, benchmark_dir, tmp_path
):
    run = tmp_path / "run"
    # slow enough to outlive the second process's start-up
    first = _start(
        [*RUN, *SLOW, f"hydra.run.dir={run}"], benchmark_dir, tmp_path, DEEPPROMPT_TEST_SLOW_S="20"
    )
    try:
        _wait_for_step(first, run / "checkpoints" / "last.ckpt", low=1)
        second = run_cli("deepprompt.train", *RUN, f"hydra.run.dir={run}", check=False)
        assert first.poll() is None  # untouched by the second
        os.kill(first.pid, signal.SIGKILL)  # leaves its lock file behind
    finally:
        first.kill()
        first.wait(timeout=60)
    assert second.returncode == 1
    [line] = [x for x in second.stderr.splitlines() if x.startswith("deepprompt: error:")]
    assert f"run folder {run} is in use by pid {first.pid}" in line
    assert "Traceback" not in second.stderr
    assert not (run / "metrics.json").exists()  # the second process recorded nothing in the first's folder

    assert (run / ".deepprompt" / "lock").is_file()
    # the same run (SLOW is in its config), at full pace: the environment's pace is not part of the config
    run_cli(
        "deepprompt.train",
        *RUN,
        *SLOW,
        f"hydra.run.dir={run}",
        env={**env_with_repo(), "DEEPPROMPT_TEST_SLOW_S": "0"},
    )
    assert metrics(run)["status"] == "finished" and metrics(run)["resumed_from"]


def test_relaunch_with_another_config_is_refused_and_a_finished_record_kept(run_cli, tiny_run_copy):
    run = tiny_run_copy  # a finished run of deepprompt-train TINY_RUN (2 epochs), relaunched into its folder
    args = (*TINY_RUN, f"hydra.run.dir={run}")
    record = {p.name: p.read_bytes() for p in (run / ".hydra").iterdir()}
    summary = (run / "metrics.json").read_bytes()

    other = run_cli("deepprompt.train", *args, "method.lr=0.5", "seed=3", check=False)
    assert other.returncode == 1
    [line] = [x for x in other.stderr.splitlines() if x.startswith("deepprompt: error:")]
    assert f"{run} holds a run with another configuration: method.lr (0.01 -> 0.5), seed (42 -> 3)" in line

    # the same run with keys that may change on a relaunch: skipped as finished
    same = run_cli("deepprompt.train", *args, "trainer.max_epochs=3", "data.num_workers=1", "logger=csv")
    assert "already finished" in same.stdout + same.stderr
    assert {p.name: p.read_bytes() for p in (run / ".hydra").iterdir()} == record  # as it was
    assert (run / "metrics.json").read_bytes() == summary


@pytest.mark.slow
def test_rerunning_a_sweep_folder_with_other_values_never_reuses_results(run_cli, tmp_path):
    sweep = tmp_path / "sweep"
    common = ("-m", *TINY, "data=sst2", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}")
    run_cli("deepprompt.train", *common, "method.prompt.length=2,4")
    records = {d.name: (d / ".hydra" / "config.yaml").read_bytes() for d in run_dirs(sweep)}

    # job 0 (length=4) finished in folder 1: skipped; job 1 (length=8) meets folder 1's length=4: refused
    proc = run_cli("deepprompt.train", *common, "method.prompt.length=4,8", check=False)
    assert proc.returncode == 1
    assert "method.prompt.length (4 -> 8)" in proc.stderr
    assert {d.name: (d / ".hydra" / "config.yaml").read_bytes() for d in run_dirs(sweep)} == records
    for job, length in (("0", 2), ("1", 4)):
        config = yaml.safe_load((sweep / job / ".hydra" / "config.yaml").read_text())
        assert config["method"]["prompt"]["length"] == length
        assert f"method.prompt.length={length}" in metrics(sweep / job)["overrides"]


@pytest.mark.slow
def test_slurm_requeue_signal_stops_cleanly_and_requeues_the_job(benchmark_dir, tmp_path):
    """Under SLURM with Lightning's auto-requeue, the requeue signal (SIGUSR1) stops the run like SIGTERM and
    then runs ``scontrol requeue <job id>`` (a stand-in ``scontrol`` records its arguments here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    run = tmp_path / "run"
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "deepprompt",
        "SLURM_NTASKS": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    proc = _start([*RUN, *SLOW, f"hydra.run.dir={run}"], benchmark_dir, tmp_path, **slurm)
    try:
        _wait_for_step(proc, run / "checkpoints" / "last.ckpt", low=5)
        proc.send_signal(signal.SIGUSR1)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-3000:]
    summary = metrics(run)
    assert summary["status"] == "interrupted" and summary["requeued"] is True
    assert calls.read_text().split() == ["requeue", "4242"]
    assert not list(run.glob("hpc_ckpt_*.ckpt"))  # not Lightning's mid-step save from the signal handler
