"""Run one job so that a failure is recorded, not lost, and does not sink a multirun sweep.

- Success: ``metrics.json`` with ``status: finished``.
- Failure: ``metrics.json`` with ``status: failed`` and the error; in a multirun the sweep goes on; a single run
  prints one clear line (the full traceback with ``DEEPPROMPT_DEBUG=1``) and exits with status 1.
- A job whose run directory already holds a finished ``metrics.json`` is skipped (re-running a sweep with a
  fixed ``hydra.sweep.dir`` resumes it).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from deepprompt.errors import DeepPromptError
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


def run_guarded(
    cfg: DictConfig,
    task: Callable[[DictConfig, Path], dict[str, Any]],
    write: Callable[[Path, dict[str, Any]], Any],
) -> dict[str, Any] | None:
    run_dir, multirun, info = _job_info()
    done = _finished(run_dir)
    if done is not None:
        log.info("Skipping %s: it already finished (metrics.json)", run_dir)
        return done
    started = time.time()
    try:
        summary = {**task(cfg, run_dir), **info}
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
    return summary
