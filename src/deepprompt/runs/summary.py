"""`metrics.json`: one run's results, written atomically into its run directory.

Both the best-epoch and the last-epoch validation scores are recorded: the paper reports the best dev epoch,
honest comparisons also want the last.

The file travels (into reports, into git, to colleagues), so it names no machine: every value that is an
absolute path is written relative to the run folder (``run_dir`` reads ``.``, a multirun's ``sweep_dir`` ``..``),
and the host name is recorded only when asked (``extras.record_host=true``).
"""

from __future__ import annotations

import functools
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from deepprompt.runs.ranks import is_global_zero
from deepprompt.utils.atomic import atomic_write_json
from deepprompt.utils.history import best_and_last

METRICS_FILE = "metrics.json"


def run_task(data_cfg: Any) -> str | None:
    """The task a run reports: ``data.task``, or ``rte+cb`` for a joint multi-task run (``data.tasks``)."""
    task = data_cfg.get("task")
    if task is None and data_cfg.get("tasks"):
        return "+".join(str(t) for t in data_cfg.get("tasks"))
    return task


def relative_paths(value: Any, run_dir: Path) -> Any:
    """``value`` with every string that is an absolute path rewritten relative to ``run_dir`` (dicts and lists
    walked); other strings (overrides, error messages, tracebacks) are kept as they are."""
    if isinstance(value, dict):
        return {key: relative_paths(item, run_dir) for key, item in value.items()}
    if isinstance(value, list):
        return [relative_paths(item, run_dir) for item in value]
    if isinstance(value, str) and os.path.isabs(value) and "\n" not in value:
        return Path(os.path.relpath(value, run_dir)).as_posix()
    return value


def write_summary(run_dir: str | Path, summary: dict[str, Any], record_host: bool = False) -> Path:
    """Write ``summary`` as ``run_dir/metrics.json``: paths relative to ``run_dir``; ``host`` only if asked."""
    run_dir = Path(run_dir)
    summary = relative_paths(summary, run_dir.absolute())
    if record_host:
        summary = {"host": platform.node(), **summary}
    return atomic_write_json(run_dir / METRICS_FILE, summary)


def summary_writer(cfg: Any) -> Callable[[Path, dict[str, Any]], Path]:
    """The ``metrics.json`` writer for a run's config (``extras.record_host`` decides whether the host is kept).

    Under DDP only global rank 0 writes (``rank_zero_writer``); a run that failed before Lightning was imported
    (start-up checks) is no DDP worker yet, and writes without importing Lightning.
    """
    record_host = bool((cfg.get("extras") or {}).get("record_host", False))

    def write(run_dir: Path, summary: dict[str, Any]) -> Path:
        if "lightning" not in sys.modules and is_global_zero():
            return write_summary(run_dir, summary, record_host=record_host)
        from deepprompt.runs.distributed import rank_zero_writer

        return rank_zero_writer(functools.partial(write_summary, record_host=record_host))(run_dir, summary)

    return write


def trainable_line(params: dict[str, Any]) -> str:
    """``74,498 of 22,787,714 parameters (0.327%)``: a share of all parameters, so never above 100%."""
    share = params["trainable"] / params["total"] if params.get("total") else params["trainable_share"]
    return f"{params['trainable']:,} of {params.get('total', params['backbone']):,} parameters ({100 * share:.3g}%)"


def summarise(
    cfg: DictConfig,
    module: Any,
    datamodule: Any,
    trainer: Any,
    params: dict[str, Any],
    ckpt_path: Path | None,
    started: float,
) -> dict[str, Any]:
    """The ``metrics.json`` of a finished training run: best and last epochs, history, sizes, the key config."""
    best, last = best_and_last(module.history, cfg.monitor, cfg.monitor_mode)
    summary = {
        "status": "finished",
        "task": run_task(cfg.data),
        "method": cfg.method.name,
        "backbone": cfg.backbone.name,
        "seed": cfg.seed,
        "monitor": cfg.monitor,
        "best": best,
        "last": last,
        "history": module.history,
        "params": params,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "wall_time_s": round(time.time() - started, 2),
        "resumed_from": str(ckpt_path) if ckpt_path else None,
        "config": {
            "method": OmegaConf.to_container(cfg.method, resolve=True),
            "data": {
                k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "_target_"
            },
            "optim": OmegaConf.to_container(cfg.optim, resolve=True),
            "max_epochs": cfg.trainer.get("max_epochs"),
        },
    }
    if hasattr(
        module, "task_summaries"
    ):  # a joint multi-task run: per-task results, rows in deepprompt-report
        summary["tasks"] = list(module.tasks)
        summary["per_task"] = module.task_summaries(cfg.monitor, cfg.monitor_mode)
        summary["multitask"] = datamodule.sampling_summary()
    return summary


def objective(summary: dict[str, Any] | None, monitor: str) -> float:
    """The number a sweeper optimises: the best monitored value (NaN for a failed run)."""
    if not summary or summary.get("status") != "finished" or monitor not in summary.get("best", {}):
        return math.nan
    return float(summary["best"][monitor])
