"""SIGTERM and SIGINT end a run cleanly: a last checkpoint, ``metrics.json`` with ``status: interrupted`` and the
command that resumes it, exit status 143 / 130 (128 + the signal number).

``timeout``, ``docker stop``, SLURM pre-emption and Ctrl+C all stop a run this way. While the training loop runs,
the signal is only noted: :class:`deepprompt.callbacks.GracefulStop` stops at the next batch boundary, where
the state is that of a mid-epoch checkpoint (exact resume); before training starts (data loading, model
building) the run stops at once. A second signal stops at once too. A sweep stops after the interrupted job
(its later jobs are not started) with the same exit status; re-running the same command resumes it: finished
jobs are skipped, the interrupted one resumes from its checkpoint.

Under SLURM with Lightning's auto-requeue (``SLURMEnvironment(auto_requeue=True)``, the default inside an
``sbatch`` job) the requeue signal (``SIGUSR1`` unless configured otherwise, sent with ``--signal=USR1@90``)
stops the run the same way and then requeues the job with ``scontrol requeue``; the requeued job resumes when
it relaunches into the same folder (a fixed ``hydra.run.dir``, e.g. one named after ``$SLURM_JOB_ID``).
Lightning's own handlers, which would save from inside the signal handler (mid-step) and exit with status 0
on SIGTERM, are replaced while training runs.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

log = logging.getLogger("deepprompt")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt: not caught by `except Exception`
    """Raised to unwind a run on a stop signal; ``checkpoint`` is the state it can resume from (or None)."""

    def __init__(self, signum: int, checkpoint: str | None = None, requeue: bool = False) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum, self.checkpoint, self.requeue = signum, checkpoint, requeue

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


class _State:
    signum: int | None = None
    requeue = False
    deferred = False  # True while the training loop runs: the signal waits for a batch boundary
    requeue_signal: int | None = None


STATE = _State()


def _handler(signum: int, frame: FrameType | None) -> None:
    first = STATE.signum is None
    if signum == STATE.requeue_signal:  # stop as on SIGTERM, then requeue
        STATE.requeue, signum = True, signal.SIGTERM
    if first:
        STATE.signum = signum
    if STATE.deferred and first:
        log.warning("Received %s: stopping at the end of this batch", signal.Signals(signum).name)
        return
    raise RunInterrupted(STATE.signum or signum, requeue=STATE.requeue)


def install_handlers(requeue_signal: int | None = None) -> None:
    """Route the stop signals (and SLURM's requeue signal, if given) to this module (main thread only)."""
    if requeue_signal is not None:
        STATE.requeue_signal = requeue_signal
    for signum in (*STOP_SIGNALS, *([STATE.requeue_signal] if STATE.requeue_signal else [])):
        signal.signal(signum, _handler)


@contextmanager
def stop_signals() -> Iterator[_State]:
    """Handle SIGTERM/SIGINT for the duration of one job; the previous handlers come back after it."""
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    STATE.signum, STATE.requeue, STATE.deferred, STATE.requeue_signal = None, False, False, None
    install_handlers()
    try:
        yield STATE
    finally:
        STATE.deferred = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def resume_command(run_dir: str, sweep_dir: str | None) -> str:
    """The command line that resumes this run or sweep: the one that started it, pointed at its folder."""
    drop = ("hydra.run.dir=", "hydra.sweep.dir=")
    args = [a for a in sys.argv[1:] if not a.startswith(drop)]
    folder = f"hydra.sweep.dir={sweep_dir}" if sweep_dir else f"hydra.run.dir={run_dir}"
    return shlex.join(["deepprompt-train", *args, folder])


def requeue_slurm_job() -> None:
    """``scontrol requeue`` this SLURM job (array task included), as Lightning's auto-requeue does."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID")
    if not job:
        log.warning("no SLURM job id: not requeued")
        return
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        log.warning("scontrol not found: SLURM job %s not requeued", job)
        return
    if result.returncode == 0:
        log.warning("Requeued SLURM job %s", job)
    else:
        log.warning("Requeueing SLURM job %s failed: %s", job, result.stderr.strip())


def slurm_requeue_signal(trainer: Any) -> int | None:
    """The requeue signal when Lightning's SLURM environment auto-requeues this job, else None."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    env = getattr(trainer._accelerator_connector, "cluster_environment", None)
    if isinstance(env, SLURMEnvironment) and env.auto_requeue:
        return int(env.requeue_signal or signal.SIGUSR1)
    return None
