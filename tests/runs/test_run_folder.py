"""The pieces of a run folder's safety, in process: the lock's fallback without flock, the config comparison."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time

import pytest

from deepprompt.runs import lock as lock_module
from deepprompt.runs.lock import RunLock, RunLocked
from deepprompt.runs.relaunch import differing_keys


def test_lock_is_exclusive_and_released(tmp_path):
    message = f"in use by pid {os.getpid()} on {platform.node()}"
    with RunLock(tmp_path), pytest.raises(RunLocked, match=message):
        RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()  # free again


def test_a_killed_holders_forked_children_do_not_keep_the_lock(tmp_path):
    """kill -9 of a run with DataLoader workers, then a relaunch at once: the workers (forked, alive until their
    watchdog sees the parent gone, up to seconds later) must not hold the folder for the dead run."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import multiprocessing as mp, sys, time\n"
            "from deepprompt.runs.lock import RunLock\n"
            "RunLock(sys.argv[1]).acquire()\n"
            "child = mp.get_context('fork').Process(target=time.sleep, args=(60,))\n"
            "child.start()\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(60)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    child = int(holder.stdout.readline())
    try:
        with pytest.raises(RunLocked, match=f"pid {holder.pid} "):
            RunLock(tmp_path).acquire()  # held while the run lives
        holder.kill()
        holder.wait(timeout=30)
        os.kill(child, 0)  # the forked child outlives it
        RunLock(tmp_path).acquire().release()  # and the folder is free at once
    finally:
        holder.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, 9)


def test_lock_without_flock_detects_a_stale_holder_by_pid_and_age(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "fcntl", None)
    held = tmp_path / ".deepprompt" / "lock.held"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    held.parent.mkdir()
    stale = {"pid": int(dead.stdout), "host": platform.node(), "started": time.time()}
    held.write_text(json.dumps(stale))
    with RunLock(tmp_path):  # the holder's pid is gone: taken over
        assert json.loads(held.read_text())["pid"] == os.getpid()
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not held.exists()

    elsewhere = {"pid": 1, "host": "another-host", "started": time.time()}
    held.write_text(json.dumps(elsewhere))
    with pytest.raises(RunLocked, match="pid 1 on another-host"):
        RunLock(tmp_path).acquire()
    held.write_text(json.dumps({**elsewhere, "started": time.time() - 2 * 24 * 3600}))
    RunLock(tmp_path).acquire().release()  # older than DEEPPROMPT_LOCK_STALE_S: stale


def test_config_comparison_ignores_only_the_documented_keys():
    old = {
        "seed": 42,
        "method": {"lr": 0.01, "prompt": {"length": 4}},
        "trainer": {"max_epochs": 2, "precision": "32-true"},
        "logger": {"csv": {"save_dir": "a"}},
        "data": {"data_dir": "/x", "num_workers": 2, "batch_size": 8},
    }
    new = {
        "seed": 42,
        "method": {"lr": 0.01, "prompt": {"length": 8}},
        "trainer": {"max_epochs": 5, "precision": "bf16-mixed"},
        "logger": {"wandb": {"project": "p"}},
        "data": {"data_dir": "/y", "num_workers": 0, "batch_size": 8, "group_by_length": False},
    }
    assert differing_keys(old, new) == ["data.group_by_length", "method.prompt.length", "trainer.precision"]
    assert differing_keys(old, old) == []
