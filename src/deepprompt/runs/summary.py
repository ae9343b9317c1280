"""`metrics.json`: one run's results, written atomically into its run directory.

Both the best-epoch and the last-epoch validation scores are recorded: the paper reports the best dev epoch,
honest comparisons also want the last.

The file travels (into reports, into git, to colleagues), so it names no machine: every value that is an
absolute path is written relative to the run folder (``run_dir`` reads ``.``, a multirun's ``sweep_dir`` ``..``),
and the host name is recorded only when asked (``extras.record_host=true``).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
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
    """The ``metrics.json`` writer for a run's config (``extras.record_host`` decides whether the host is kept)."""
    record_host = bool((cfg.get("extras") or {}).get("record_host", False))
    return lambda run_dir, summary: write_summary(run_dir, summary, record_host=record_host)
