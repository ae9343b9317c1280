"""Run one job so that a failure is recorded, not lost, and does not sink a multirun sweep.

- Success: ``metrics.json`` with ``status: finished``.
- Failure: ``metrics.json`` with ``status: failed`` and the error; in a multirun the sweep goes on; a single run
  prints one clear line (the full traceback with ``DEEPPROMPT_DEBUG=1``) and exits with status 1.
- SIGTERM/SIGINT: ``metrics.json`` with ``status: interrupted``, the checkpoint and the command that resumes
  the run (or the sweep), exit status 143/130; a sweep stops there (:mod:`deepprompt.runs.interrupt`).
- One process at a time in a run folder (:mod:`deepprompt.runs.lock`); a second one exits with one line.
- A relaunch into an existing folder must have the run's configuration (:mod:`deepprompt.runs.relaunch`);
  a job whose run directory (or, in a sweep, another job folder with the same configuration) already holds a
  finished ``metrics.json`` is skipped, its record left as it was (re-running a sweep with a fixed
  ``hydra.sweep.dir`` resumes it).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from deepprompt.errors import DeepPromptError
from deepprompt.runs import interrupt, relaunch
from deepprompt.runs.lock import RunLock
from deepprompt.runs.ranks import is_global_zero
from deepprompt.runs.summary import METRICS_FILE, run_task

log = logging.getLogger("deepprompt")


def _job_info() -> tuple[Path, bool, dict[str, Any]]:
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    info = {"overrides": list(hc.overrides.task), "run_dir": hc.runtime.output_dir}
    if multirun:
        info |= {"sweep_dir": hc.sweep.dir, "job_num": hc.job.num}
    return Path(hc.runtime.output_dir), multirun, info


def _finished(run_dir: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads((run_dir / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return summary if summary.get("status") == "finished" else None


def debug_enabled() -> bool:
    return os.environ.get("DEEPPROMPT_DEBUG", "") not in ("", "0")


def _fail_fast(message: str, code: int = 1) -> None:
    """One line on stderr and exit: for what stops a whole sweep (a locked folder, another configuration)."""
    log.error(message)
    print(f"deepprompt: error: {message}", file=sys.stderr)
    sys.exit(code)


def run_guarded(
    cfg: DictConfig,
    task: Callable[[DictConfig, Path], dict[str, Any]],
    write: Callable[[Path, dict[str, Any]], Any],
) -> dict[str, Any] | None:
    run_dir, multirun, info = _job_info()
    if not is_global_zero():  # DDP children work in rank 0's folder
        return _run(cfg, task, write, run_dir, multirun, info)
    try:
        lock = RunLock(run_dir).acquire()
    except DeepPromptError as err:
        _fail_fast(str(err))
    try:
        config = OmegaConf.to_container(cfg, resolve=False)
        try:
            relaunch.check(run_dir, config, info["overrides"])
        except relaunch.ConfigMismatch as err:
            sweep_dir = Path(info["sweep_dir"]) if multirun else None
            done = sweep_dir and relaunch.finished_sibling(run_dir, sweep_dir, config, _finished)
            if not done:
                _fail_fast(str(err))
            log.info("Skipping %s: this configuration already finished in %s", run_dir, done)
            return _finished(done)
        done = _finished(run_dir)
        if done is not None:
            relaunch.restore(run_dir)  # Hydra rewrote .hydra: the finished run's record stays as it was
            log.info("Skipping %s: it already finished (metrics.json)", run_dir)
            return done
        relaunch.snapshot(run_dir)  # an unfinished run continues under this (equivalent) config
        return _run(cfg, task, write, run_dir, multirun, info)
    finally:
        lock.release()


def _interrupted(
    err: interrupt.RunInterrupted, cfg: DictConfig, run_dir: Path, multirun: bool, info: dict[str, Any]
) -> dict[str, Any]:
    command = interrupt.resume_command(str(run_dir), info.get("sweep_dir") if multirun else None)
    return {
        "status": "interrupted",
        "signal": signal_name(err.signum),
        "error": f"interrupted by {signal_name(err.signum)}",
        "checkpoint": err.checkpoint,
        "resume_command": command,
        "requeued": err.requeue,
        "task": run_task(cfg.data),
        "method": cfg.method.get("name"),
        "backbone": cfg.backbone.get("name"),
        "seed": cfg.get("seed"),
        **info,
    }


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _run(
    cfg: DictConfig,
    task: Callable[[DictConfig, Path], dict[str, Any]],
    write: Callable[[Path, dict[str, Any]], Any],
    run_dir: Path,
    multirun: bool,
    info: dict[str, Any],
) -> dict[str, Any] | None:
    started = time.time()
    with interrupt.stop_signals() as stop:
        try:
            summary = {**task(cfg, run_dir), **info}
        except interrupt.RunInterrupted as err:
            summary = _interrupted(err, cfg, run_dir, multirun, info)
            summary["wall_time_s"] = round(time.time() - started, 2)
            write(run_dir, summary)
            if err.requeue:
                interrupt.requeue_slurm_job()
            what = "sweep" if multirun else "run"
            message = (
                f"{what} interrupted by {summary['signal']}"
                + (f"; last checkpoint {err.checkpoint}" if err.checkpoint else "")
                + f"; resume with: {summary['resume_command']}"
            )
            _fail_fast(message, err.exit_code)
        except Exception as err:  # recorded, then re-raised or swallowed depending on the mode
            summary = {
                "status": "failed",
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(),
                "wall_time_s": round(time.time() - started, 2),
                "task": run_task(cfg.data),
                "method": cfg.method.get("name"),
                "backbone": cfg.backbone.get("name"),
                "seed": cfg.get("seed"),
                **info,
            }
            try:
                write(run_dir, summary)
            except OSError as write_err:
                log.error("could not record the failure in %s: %s", run_dir, write_err)
            if debug_enabled():
                raise
            message = str(err) if isinstance(err, DeepPromptError) else f"{type(err).__name__}: {err}"
            log.error("Run failed: %s", message)
            if multirun:
                log.error("  recorded in %s; the sweep goes on", run_dir / METRICS_FILE)
                return summary
            print(f"deepprompt: error: {message}", file=sys.stderr)
            print("  (set DEEPPROMPT_DEBUG=1 for the full traceback)", file=sys.stderr)
            sys.exit(1)
        write(run_dir, summary)
        if stop.signum is not None and multirun:  # the job finished as the signal came: stop the sweep here
            command = interrupt.resume_command(str(run_dir), info.get("sweep_dir"))
            _fail_fast(
                f"sweep interrupted by {signal_name(stop.signum)} after {run_dir} finished; resume with: {command}",
                128 + stop.signum,
            )
    return summary
