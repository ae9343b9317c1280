"""Walk run and sweep folders and load every ``metrics.json`` into a DataFrame, one row per run.

A run's *setting* is what tells it apart from its siblings in a sweep: its Hydra overrides minus the seed, the
group selections that have their own column (``data=``, ``method=``, ``backbone=``) and the switches that do not
change the result (``debug=``, ``extras.*``, ``hydra.*``, ...). ``method.`` is dropped from the keys, so
``method.prompt.length=16`` reads ``prompt.length=16``. Rows that differ only by seed share a setting.

A joint multi-task run (``data=multitask``, ``metrics.json`` with ``per_task``) gives one row for the joint
run (task ``rte+cb``, scores averaged over the tasks) and one row per task (task ``rte``, that task's scores at
its own best epoch, its own prompt + head parameters), whose setting adds ``joint=rte+cb``: the per-task rows
sit next to the separate single-task runs of the same task in the report. Column ``joint`` names the tasks
trained together (empty for single-task runs).

Runs are read from run folders (every ``metrics.json`` below them) or from a *compact record*: a JSON-lines file
(``runs.jsonl``), one run per line, each line the run's ``metrics.json`` plus ``"run"`` (the run folder's name,
relative to the record's folder) and optionally ``"files"`` (``{name: content}`` of small JSON files the run left
beside its ``metrics.json``, e.g. ``compression.json``). A study keeps its record in git instead of the run folders,
and its reports regenerate from it. ``runs.jsonl:GLOB`` reads only the runs whose name matches GLOB
(``runs.jsonl:knobs/rte_*``). :func:`write_record` makes a record from run folders.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from deepprompt.runs.summary import METRICS_FILE

log = logging.getLogger("deepprompt.report")

DEFAULT_SETTING = "default"
# override keys that are not part of a setting: the seed, selections with their own column, run plumbing
IGNORED_KEYS = frozenset(
    {
        "seed",
        "data",
        "method",
        "backbone",
        "debug",
        "task_name",
        "tags",
        "local",
        "hparams_search",
        "ckpt_path",
        "resume",
    }
)
IGNORED_PREFIXES = ("extras.", "hydra.", "paths.", "logger")
# the prompt dimensions the plots put on an axis: column -> where a run's config (config.method) or setting
# holds it, first found wins (P-Tuning v2's prompt.*, the peft methods' num_virtual_tokens, prefix_projection ...)
PROMPT_KEYS = {
    "prompt_length": ("prompt.length", "num_virtual_tokens"),
    "prompt_layers": ("prompt.layers",),
    "prompt_reparam": ("prompt.reparam", "reparam", "prefix_projection"),
}
AXIS_KEYS = frozenset(key for keys in PROMPT_KEYS.values() for key in keys)
RECORD_SUFFIX = ".jsonl"
# small JSON files a run leaves beside metrics.json that a compact record keeps under "files"
RECORD_FILES = ("compression.json",)
# keys of metrics.json that describe the machine, shown in the report header when present
HARDWARE_KEYS = ("hardware", "gpu", "device_name", "accelerator")


def _split_override(override: str) -> tuple[str, str] | None:
    override = override.strip().lstrip("~+")
    if "=" not in override:
        return None
    key, value = override.split("=", 1)
    return key.strip(), value.strip()


def setting_parts(overrides: Iterable[str], ignore: Iterable[str] = ()) -> dict[str, str]:
    """``{key: value}`` of the overrides that make up a setting (``method.`` dropped from keys), sorted by key."""
    ignored = IGNORED_KEYS | set(ignore)
    parts: dict[str, str] = {}
    for override in overrides:
        split = _split_override(str(override))
        if split is None:
            continue
        key, value = split
        if key in ignored or key.startswith(IGNORED_PREFIXES):
            continue
        key = key.removeprefix("method.")
        if key in ignored:
            continue
        parts[key] = value
    return dict(sorted(parts.items(), key=lambda kv: natural_key(kv[0])))


def format_setting(parts: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in parts.items()) or DEFAULT_SETTING


def parse_setting(setting: str) -> dict[str, str]:
    """Inverse of :func:`format_setting` (values holding ``", "`` are not supported)."""
    if not setting or setting == DEFAULT_SETTING:
        return {}
    return dict(part.split("=", 1) for part in setting.split(", ") if "=" in part)


def drop_keys(setting: str, keys: Iterable[str]) -> str:
    keys = set(keys)
    return format_setting({k: v for k, v in parse_setting(setting).items() if k not in keys})


def natural_key(text: Any) -> tuple:
    """Sort key that puts ``length=2`` before ``length=16``."""
    return tuple(
        (0, float(tok), "") if re.fullmatch(r"\d+(\.\d+)?", tok) else (1, 0.0, tok)
        for tok in re.split(r"(\d+(?:\.\d+)?)", str(text))
        if tok
    )


def find_metrics(paths: Sequence[str | Path]) -> list[Path]:
    """Every ``metrics.json`` below the given folders (or the given files themselves), sorted, no duplicates."""
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if path.is_file():
            found[path.resolve()] = None
        elif path.is_dir():
            for file in sorted(path.rglob(METRICS_FILE)):
                found[file.resolve()] = None
        else:
            raise FileNotFoundError(f"no such run or sweep folder: {path}")
    return sorted(found, key=lambda p: natural_key(p.as_posix()))


def _overrides(summary: dict[str, Any], run_dir: Path) -> list[str]:
    if isinstance(summary.get("overrides"), list):
        return [str(o) for o in summary["overrides"]]
    hydra_file = run_dir / ".hydra" / "overrides.yaml"
    if hydra_file.is_file():
        loaded = yaml.safe_load(hydra_file.read_text()) or []
        return [str(o) for o in loaded]
    return []


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


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _prompt_value(config_method: dict[str, Any], parts: dict[str, str], column: str) -> Any:
    value = None
    for key in PROMPT_KEYS[column]:
        value = _lookup(config_method, key)
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
    overrides = _overrides(summary, run_dir)
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
    parts = setting_parts(_overrides(summary, file.parent), {*ignore, "data.tasks"})
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


def unreadable_summary(file: Path, err: Exception) -> dict[str, Any]:
    """What a report knows of a run whose ``metrics.json`` cannot be read: the error, and what its Hydra
    config names (task, method, backbone, seed; interpolations left out)."""
    summary: dict[str, Any] = {"status": "unreadable", "error": f"unreadable {METRICS_FILE}: {err}"}
    try:
        config = yaml.safe_load((file.parent / ".hydra" / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return summary
    for key, dotted in (("task", "data.task"), ("method", "method.name"), ("backbone", "backbone.name")):
        value = _lookup(config, dotted) if isinstance(config, dict) else None
        if value is not None and "${" not in str(value):
            summary[key] = value
    if isinstance(config, dict) and isinstance(config.get("seed"), int):
        summary["seed"] = config["seed"]
    return summary


def _split_record(path: str | Path) -> tuple[Path, str | None] | None:
    """``(record, glob)`` if ``path`` names a compact record (``runs.jsonl`` or ``runs.jsonl:GLOB``), else None."""
    text = str(path)
    at = text.find(RECORD_SUFFIX + ":")
    if at >= 0:
        return Path(text[: at + len(RECORD_SUFFIX)]), text[at + len(RECORD_SUFFIX) + 1 :]
    return (Path(text), None) if text.endswith(RECORD_SUFFIX) else None


def read_record(path: str | Path, pattern: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """``(run folder, summary)`` of each line of a compact record (its runs whose name matches ``pattern``).

    The run folder is the record's folder joined with the line's ``"run"``: it names the run in reports, it
    need not exist. A line that is not a JSON object with ``"run"`` and ``"status"`` is an error naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such run record: {path}")
    runs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            summary = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}:{number}: not a JSON object ({err})") from None
        if not isinstance(summary, dict) or "run" not in summary or "status" not in summary:
            raise ValueError(
                f'{path}:{number}: a run record needs "run" and "status" (a metrics.json plus "run")'
            )
        if pattern is None or fnmatch.fnmatchcase(str(summary["run"]), pattern):
            runs.append((path.parent / str(summary["run"]), summary))
    if pattern is not None and not runs:
        raise FileNotFoundError(f"no run in {path} matches {pattern!r}")
    return runs


def load_summaries(paths: Sequence[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """``(run folder, summary)`` of every run in ``paths``: run or sweep folders (every ``metrics.json`` below
    them) and compact records (``runs.jsonl`` or ``runs.jsonl:GLOB``), in the order given.

    A ``metrics.json`` that cannot be read or parsed (a truncated write, a disk error) is a failed run: a summary
    with status ``unreadable`` (see :func:`unreadable_summary`), listed in the report's failures. JSON without
    ``status`` (not a run summary) is skipped with a warning; records are checked line by line.
    """
    runs: list[tuple[Path, dict[str, Any]]] = []
    folders: list[str | Path] = []

    def flush() -> None:
        for file in find_metrics(folders):
            try:
                summary = json.loads(file.read_text())
                if not isinstance(summary, dict):
                    raise ValueError(f"a JSON {type(summary).__name__}, not an object")
            except (OSError, ValueError) as err:
                log.warning("unreadable %s (listed as failed): %s", file, err)
                runs.append((file.parent, unreadable_summary(file, err)))
                continue
            if "status" not in summary:
                log.warning("skipping %s: not a deepprompt run summary", file)
                continue
            runs.append((file.parent, summary))
        folders.clear()

    for path in paths:
        record = _split_record(path)
        if record is None:
            folders.append(path)
            continue
        flush()
        runs.extend(read_record(*record))
    flush()
    return runs


def record_line(run_dir: Path, summary: dict[str, Any], base: Path) -> dict[str, Any]:
    """One line of a compact record: ``summary`` with ``"run"`` (``run_dir`` relative to ``base``), the
    overrides (from ``.hydra/overrides.yaml`` when ``metrics.json`` lacks them) and the run's small JSON files."""
    line = {"run": Path(os.path.relpath(run_dir, base)).as_posix(), **summary}
    line["overrides"] = _overrides(summary, run_dir)
    files = {
        name: json.loads((run_dir / name).read_text()) for name in RECORD_FILES if (run_dir / name).is_file()
    }
    if files:
        line["files"] = files
    return line


def write_record(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Write the runs of ``paths`` (run folders or records) as one compact record ``out`` (``runs.jsonl``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for run_dir, summary in load_summaries(paths):
        if "run" in summary:  # already a record line: keep its files, rename its run
            summary = {k: v for k, v in summary.items() if k != "run"}
        lines.append(json.dumps(record_line(run_dir, summary, out.parent), sort_keys=False))
    out.write_text("".join(line + "\n" for line in lines))
    return out


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
