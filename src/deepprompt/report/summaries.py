"""Find and read run summaries: every ``metrics.json`` below run and sweep folders, or the lines of a compact record.

A *compact record* is a JSON-lines file (``runs.jsonl``), one run per line, each line the run's ``metrics.json``
plus ``"run"`` (the run folder's name, relative to the record's folder) and optionally ``"files"`` (``{name:
content}`` of small JSON files the run left beside its ``metrics.json``, e.g. ``compression.json``). A study keeps
its record in git instead of the run folders, and its reports regenerate from it. ``runs.jsonl:GLOB`` reads only
the runs whose name matches GLOB (``runs.jsonl:knobs/rte_*``). :func:`write_record` makes a record from run
folders. `deepprompt.report.collect` turns the summaries into a DataFrame.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from deepprompt.report.settings import natural_key
from deepprompt.runs.summary import METRICS_FILE

log = logging.getLogger("deepprompt.report")

RECORD_SUFFIX = ".jsonl"
# small JSON files a run leaves beside metrics.json that a compact record keeps under "files"
RECORD_FILES = ("compression.json",)


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


def run_overrides(summary: dict[str, Any], run_dir: Path) -> list[str]:
    """The run's Hydra overrides: from ``metrics.json``, else ``.hydra/overrides.yaml``, else none."""
    if isinstance(summary.get("overrides"), list):
        return [str(o) for o in summary["overrides"]]
    hydra_file = run_dir / ".hydra" / "overrides.yaml"
    if hydra_file.is_file():
        loaded = yaml.safe_load(hydra_file.read_text()) or []
        return [str(o) for o in loaded]
    return []


def lookup(tree: dict[str, Any], dotted: str) -> Any:
    """``tree[a][b]`` for ``dotted`` ``a.b``; None where a part is missing."""
    """``tree[a][b]`` for ``dotted`` ``a.b``; None where a part is missing."""
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def unreadable_summary(file: Path, err: Exception) -> dict[str, Any]:
    """What a report knows of a run whose ``metrics.json`` cannot be read: the error, and what its Hydra
    config names (task, method, backbone, seed; interpolations left out)."""
    summary: dict[str, Any] = {"status": "unreadable", "error": f"unreadable {METRICS_FILE}: {err}"}
    try:
        config = yaml.safe_load((file.parent / ".hydra" / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return summary
    for key, dotted in (("task", "data.task"), ("method", "method.name"), ("backbone", "backbone.name")):
        value = lookup(config, dotted) if isinstance(config, dict) else None
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
    line["overrides"] = run_overrides(summary, run_dir)
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
