"""`metrics.json`: one run's results, written atomically into its run directory.

Both the best-epoch and the last-epoch validation scores are recorded: the paper reports the best dev epoch,
honest comparisons also want the last.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from deepprompt.utils.atomic import atomic_write_json

METRICS_FILE = "metrics.json"


def run_task(data_cfg: Any) -> str | None:
    """The task a run reports: ``data.task``, or ``rte+cb`` for a joint multi-task run (``data.tasks``)."""
    task = data_cfg.get("task")
    if task is None and data_cfg.get("tasks"):
        return "+".join(str(t) for t in data_cfg.get("tasks"))
    return task


def best_and_last(history: list[dict[str, float]], monitor: str, mode: str = "max") -> tuple[dict, dict]:
    if not history:
        return {}, {}
    pick = max if mode == "max" else min
    best = pick(history, key=lambda entry: entry[monitor])  # first epoch wins ties
    return dict(best), dict(history[-1])


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    summary = {"host": platform.node(), **summary}
    return atomic_write_json(Path(run_dir) / METRICS_FILE, summary)
