"""Load every run of run folders, sweep folders and compact records into a DataFrame, one row per run.

Runs are found and read by `deepprompt.report.summaries`; a row's ``setting`` column is the run's setting
(`deepprompt.report.settings`). A joint multi-task run (``data=multitask``, ``metrics.json`` with ``per_task``)
gives one row for the joint run (task ``rte+cb``, scores averaged over the tasks) and one row per task (task
``rte``, that task's scores at its own best epoch, its own prompt + head parameters), whose setting adds
``joint=rte+cb``: the per-task rows sit next to the separate single-task runs of the same task in the report.
Column ``joint`` names the tasks trained together (empty for single-task runs).

The names of `deepprompt.report.settings` and `deepprompt.report.summaries` are importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from deepprompt.report.settings import (
    DEFAULT_SETTING,
    IGNORED_KEYS,
    IGNORED_PREFIXES,
    drop_keys,
    format_setting,
    natural_key,
    parse_setting,
    setting_parts,
)
from deepprompt.report.summaries import (
    RECORD_FILES,
    RECORD_SUFFIX,
    find_metrics,
    load_summaries,
    lookup,
    read_record,
    record_line,
    run_overrides,
    unreadable_summary,
    write_record,
)
from deepprompt.runs.summary import METRICS_FILE

# the prompt dimensions the plots put on an axis: column -> where a run's config (config.method) or setting
# holds it, first found wins (P-Tuning v2's prompt.*, the peft methods' num_virtual_tokens, prefix_projection ...)
PROMPT_KEYS = {
    "prompt_length": ("prompt.length", "num_virtual_tokens"),
    "prompt_layers": ("prompt.layers",),
    "prompt_reparam": ("prompt.reparam", "reparam", "prefix_projection"),
}
AXIS_KEYS = frozenset(key for keys in PROMPT_KEYS.values() for key in keys)
# keys of metrics.json that describe the machine, shown in the report header when present
HARDWARE_KEYS = ("hardware", "gpu", "device_name", "accelerator")


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _hardware(summary: dict[str, Any]) -> str | None:
    for key in HARDWARE_KEYS:
        value = summary.get(key)
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, ""))
        if value:
            return str(value)
    return None


def _prompt_value(config_method: dict[str, Any], parts: dict[str, str], column: str) -> Any:
    value = None
    for key in PROMPT_KEYS[column]:
        value = lookup(config_method, key)
        if value is None:
            value = parts.get(key)
        if value is not None:
            if key == "prefix_projection":
                value = "mlp" if str(value).lower() == "true" else "none"
            break
    if value is None:
        return None
    if column == "prompt_length":
        return _number(value)
    return "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


def run_row(summary: dict[str, Any], file: Path, ignore: Iterable[str] = ()) -> dict[str, Any]:
    """One DataFrame row from one ``metrics.json``."""
    run_dir = file.parent
    overrides = run_overrides(summary, run_dir)
    parts = setting_parts(overrides, ignore)
    config = summary.get("config") or {}
    config_method = config.get("method") or {}
    params = summary.get("params") or {}
    best, last = summary.get("best") or {}, summary.get("last") or {}
    error = summary.get("error")
    row: dict[str, Any] = {
        "task": summary.get("task") or (config.get("data") or {}).get("task"),
        "method": summary.get("method") or config_method.get("name"),
        "backbone": summary.get("backbone"),
        "seed": summary.get("seed"),
        "setting": format_setting(parts),
        "status": summary.get("status", "unknown"),
        "error": str(error).strip().splitlines()[0] if error else None,
        "monitor": summary.get("monitor"),
        "best_epoch": _number(best.get("epoch")),
        "last_epoch": _number(last.get("epoch")),
        "epochs": _number(summary.get("epochs")),
        "steps": _number(summary.get("steps")),
        "trainable": _number(params.get("trainable")),
        "backbone_params": _number(params.get("backbone")),
        # of all parameters where the run recorded them (never above 100%: finetune also trains the head)
        "trainable_share": _number(
            params["trainable"] / params["total"]
            if params.get("total") and params.get("trainable") is not None
            else params.get("trainable_share")
        ),
        "wall_time_s": _number(summary.get("wall_time_s")),
        "lr": _number(config_method.get("lr", parts.get("lr"))),
        **{column: _prompt_value(config_method, parts, column) for column in PROMPT_KEYS},
        "host": summary.get("host"),
        "hardware": _hardware(summary),
        "overrides": " ".join(overrides),
        "job_num": summary.get("job_num"),
        "joint": None,
        "run_dir": str(run_dir),
    }
    for prefix, entry in (("best", best), ("last", last)):
        for key, value in entry.items():
            if key not in ("epoch", "step"):
                row[f"{prefix}_{key}"] = _number(value)
    for key, value in ((summary.get("baselines") or {}).get("majority") or {}).items():
        row[f"majority_{key}"] = _number(value)  # the majority-class predictor's score (report figures)
    return row


def run_rows(summary: dict[str, Any], file: Path, ignore: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The rows of one ``metrics.json``: one, or for a joint multi-task run the joint row and one per task."""
    row = run_row(summary, file, ignore)
    per_task = summary.get("per_task")
    if not isinstance(per_task, dict) or not per_task:
        return [row]
    joint = "+".join(per_task)
    row["joint"] = joint
    rows = [row]
    parts = setting_parts(run_overrides(summary, file.parent), {*ignore, "data.tasks"})
    params = (summary.get("params") or {}).get("per_task") or {}
    for task, result in per_task.items():
        task_row = {k: v for k, v in row.items() if not k.startswith(("best_", "last_"))}
        best, last = result.get("best") or {}, result.get("last") or {}
        task_counts = params.get(task) or {}
        task_row |= {
            "task": task,
            "setting": format_setting({**parts, "joint": joint}),
            "monitor": result.get("monitor"),
            "best_epoch": _number(best.get("epoch")),
            "last_epoch": _number(last.get("epoch")),
            "trainable": _number(task_counts.get("trainable")),
            "trainable_share": _number(task_counts.get("trainable_share")),
        }
        for prefix, entry in (("best", best), ("last", last)):
            for key, value in entry.items():
                if key not in ("epoch", "step"):
                    task_row[f"{prefix}_{key}"] = _number(value)
        rows.append(task_row)
    return rows


def collect_runs(paths: Sequence[str | Path], ignore: Iterable[str] = ()) -> pd.DataFrame:
    """Load every run of ``paths`` (run or sweep folders searched recursively, compact records) into one
    DataFrame, one row per run (see :func:`load_summaries`)."""
    rows = []
    for run_dir, summary in load_summaries(paths):
        rows.extend(run_rows(summary, run_dir / METRICS_FILE, ignore))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    base = {"best_epoch", "last_epoch"}
    metric_columns = [c for c in frame.columns if c.startswith(("best_", "last_")) and c not in base]
    metric_columns.sort(key=lambda c: (not c.startswith("best_"), c))
    front = [c for c in frame.columns if c not in metric_columns]
    at = front.index("best_epoch")
    return frame[front[:at] + metric_columns + front[at:]]


__all__ = [
    "AXIS_KEYS",
    "DEFAULT_SETTING",
    "HARDWARE_KEYS",
    "IGNORED_KEYS",
    "IGNORED_PREFIXES",
    "PROMPT_KEYS",
    "RECORD_FILES",
    "RECORD_SUFFIX",
    "collect_runs",
    "drop_keys",
    "find_metrics",
    "format_setting",
    "load_summaries",
    "natural_key",
    "parse_setting",
    "read_record",
    "record_line",
    "run_row",
    "run_rows",
    "setting_parts",
    "unreadable_summary",
    "write_record",
]
