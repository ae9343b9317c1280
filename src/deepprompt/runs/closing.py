"""What a run says when it ends: one summary block for a single run, one line per job and a table for a multirun.

The block goes to the ``deepprompt`` logger (``train.log`` and stdout)::

    ==== run finished ====
    recipe      CPU quick run: ...
    task        sst2 / ptuning_v2 / minilm / seed 42
    best        val/acc 0.8326 at epoch 2/2 (step 376)
    last        val/acc 0.8326 at epoch 2/2 (step 376)
    trainable   74,498 of 22,787,714 parameters (0.327%)
    wall time   13m05s
    run folder  <repository>/outputs/train/runs/2026-01-01_12-00-00
    next        deepprompt-eval run_dir=<run folder>
                deepprompt-report <run folder> --out <run folder>/report
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig

from deepprompt.runs.summary import METRICS_FILE

log = logging.getLogger("deepprompt")
_sweep_dir: Path | None = None  # set by the jobs of a multirun run in this process (the basic launcher)


def _duration(seconds: Any) -> str:
    from deepprompt.utils.durations import format_duration  # no torch: the launching process of a sweep

    return format_duration(float(seconds)) if isinstance(seconds, int | float) else "?"


def _score(entry: dict[str, Any], monitor: str, epochs: int | None) -> str:
    if not entry or monitor not in entry:
        return "-"
    of = f"/{epochs}" if epochs else ""
    return f"{monitor} {entry[monitor]:.4f} at epoch {int(entry['epoch']) + 1}{of} (step {entry.get('step', '?')})"


def _trainable(params: dict[str, Any]) -> str:
    if not params:
        return "-"
    total = params.get("total") or params.get("backbone")
    share = params["trainable"] / total if total else 0.0
    return f"{params['trainable']:,} of {total:,} parameters ({100 * share:.3g}%)"


def summary_block(summary: dict[str, Any], recipe: str | None = None) -> str:
    run_dir = Path(summary.get("run_dir") or ".").resolve()
    monitor = summary.get("monitor") or "val/acc"
    epochs = (summary.get("config") or {}).get("max_epochs")
    status = summary.get("status", "?")
    q = shlex.quote
    rows = [
        ("recipe", recipe),
        (
            "task",
            " / ".join(str(summary.get(k)) for k in ("task", "method", "backbone"))
            + f" / seed {summary.get('seed')}",
        ),
        ("best", _score(summary.get("best") or {}, monitor, epochs)),
        ("last", _score(summary.get("last") or {}, monitor, epochs)),
        ("trainable", _trainable(summary.get("params") or {})),
        ("wall time", _duration(summary.get("wall_time_s"))),
        ("run folder", str(run_dir)),
        ("next", f"deepprompt-eval run_dir={q(str(run_dir))}"),
        ("", f"deepprompt-report {q(str(run_dir))} --out {q(str(run_dir / 'report'))}"),
    ]
    if status != "finished":
        rows.insert(1, ("error", summary.get("error", "")))
    lines = [f"==== run {status} ===="]
    lines += [f"{name:<11s} {value}" for name, value in rows if value is not None]
    return "\n".join(lines)


def job_line(summary: dict[str, Any]) -> str:
    """One line per multirun job: number, status, best/last, time, overrides, folder."""
    monitor = summary.get("monitor") or "val/acc"
    best, last = summary.get("best") or {}, summary.get("last") or {}
    scores = (
        f"best {monitor} {best[monitor]:.4f} (epoch {int(best['epoch']) + 1})  last {last.get(monitor, float('nan')):.4f}"
        if monitor in best
        else summary.get("error", "")[:120]
    )
    return (
        f"job {summary.get('job_num', '?')}: {summary.get('status')}  {scores}  "
        f"{_duration(summary.get('wall_time_s'))}  {' '.join(summary.get('overrides') or [])}"
    )


def recipe_line(cfg: Any) -> str:
    """A preset's own description (``recipe``), else what the config runs."""
    if cfg.get("recipe"):
        return str(cfg.recipe)
    choices = _choices()
    names = ", ".join(f"{k}={choices[k]}" for k in ("data", "backbone", "method") if choices.get(k))
    epochs = cfg.trainer.get("max_epochs")
    return f"as configured (no preset): {names or cfg.data.get('task')}, {epochs} epochs"


def _choices() -> dict[str, Any]:
    try:
        return dict(HydraConfig.get().runtime.choices)
    except ValueError:  # composed outside a Hydra app
        return {}


def report_job(summary: dict[str, Any] | None, cfg: Any) -> None:
    """The end of one job: the block for a single run, one line for a job of a multirun."""
    global _sweep_dir
    if not summary:
        return
    if summary.get("sweep_dir"):
        _sweep_dir = Path(summary["sweep_dir"])
        log.info(job_line(summary))
    elif summary.get("status") == "finished":
        log.info("\n%s", summary_block(summary, recipe_line(cfg)))


def sweep_table(sweep_dir: Path) -> str:
    rows = []
    for path in sorted(
        sweep_dir.glob(f"*/{METRICS_FILE}"), key=lambda p: (len(p.parent.name), p.parent.name)
    ):
        try:
            rows.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    if not rows:
        return f"no finished jobs under {sweep_dir}"
    monitor = rows[0].get("monitor") or "val/acc"
    lines = [
        f"| job | status | best {monitor} | last {monitor} | time | overrides |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        best = (r.get("best") or {}).get(monitor)
        last = (r.get("last") or {}).get(monitor)
        lines.append(
            f"| {r.get('job_num', '?')} | {r.get('status')} | {'-' if best is None else f'{best:.4f}'} | "
            f"{'-' if last is None else f'{last:.4f}'} | {_duration(r.get('wall_time_s'))} | "
            f"{' '.join(r.get('overrides') or [])} |"
        )
    folder = sweep_dir.resolve()
    lines += [
        "",
        f"sweep folder {folder}",
        f"next         deepprompt-report {shlex.quote(str(folder))} "
        f"--out {shlex.quote(str(folder / 'report'))}",
    ]
    return "\n".join(lines)


def _launched_sweep_dir() -> Path | None:
    """The folder of the multirun this process launched, where its jobs ran in other processes
    (``hydra/launcher=parallel``, submitit): Hydra's config of the sweep itself."""
    from hydra.types import RunMode

    try:
        hc = HydraConfig.get()
    except ValueError:  # no Hydra app ran in this process
        return None
    return Path(str(hc.sweep.dir)) if hc.mode == RunMode.MULTIRUN else None


def report_sweep() -> None:
    """After a multirun: the table of its jobs (read back from their metrics.json files)."""
    sweep_dir = _sweep_dir or _launched_sweep_dir()
    if sweep_dir is not None and sweep_dir.is_dir():
        print("\n" + sweep_table(sweep_dir), flush=True)
