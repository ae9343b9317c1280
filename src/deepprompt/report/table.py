"""Aggregate runs over seeds per (task, method, backbone, setting); render Markdown and CSV.

Scores are the mean and the sample standard deviation (ddof=1) over the finished seeds, shown in percent with one
decimal (``71.2 ± 0.8``); a single seed shows its score alone. Loss metrics are shown as they are, and so are
metrics the modules already log in percent (BLEU, ROUGE, SQuAD exact match: see `scale`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from deepprompt.report.collect import PROMPT_KEYS
from deepprompt.report.settings import natural_key

GROUP = ["task", "method", "backbone", "setting"]
# a setting's seeds, size and scores over its seeds (the results table and the tuned table)
SEED_COLUMNS = [
    "n_seeds",
    "n_failed",
    "seeds",
    "trainable",
    "trainable_share",
    "best_mean",
    "best_std",
    "last_mean",
    "last_std",
]
CSV_COLUMNS = [
    *GROUP,
    *SEED_COLUMNS,
    "best_epoch_mean",
    "wall_time_s_mean",
    "majority",
    *PROMPT_KEYS,
]
MISSING = "–"


PERCENT_METRICS = ("bleu", "rouge", "exact_match")  # logged x100 by their modules (sacrebleu's scale)


def is_loss(metric: str) -> bool:
    return "loss" in metric


def scale(metric: str) -> float:
    """The factor that shows ``metric`` in percent: 1 for losses and for metrics already logged in percent."""
    if is_loss(metric) or any(name in metric for name in PERCENT_METRICS):
        return 1.0
    return 100.0


def _first(values: pd.Series):
    values = values.dropna()
    return values.iloc[0] if len(values) else None


def aggregate(runs: pd.DataFrame, metric: str = "val/acc") -> pd.DataFrame:
    """One row per (task, method, backbone, setting): seeds, failures, parameters, best and last mean ± std."""
    if runs.empty:
        return pd.DataFrame(columns=CSV_COLUMNS)
    runs = runs.copy()
    for column in GROUP:
        runs[column] = runs[column].fillna("?").astype(str)
    rows = []
    for key, group in runs.groupby(GROUP, sort=False):
        done = group[group["status"] == "finished"]
        row = dict(zip(GROUP, key, strict=True))
        best = done.get(f"best_{metric}", pd.Series(dtype=float)).dropna()
        last = done.get(f"last_{metric}", pd.Series(dtype=float)).dropna()
        seeds = sorted({int(s) for s in done["seed"].dropna()})
        row |= {
            "n_seeds": len(done),
            "n_failed": int((group["status"] != "finished").sum()),
            "seeds": " ".join(map(str, seeds)),
            "trainable": _first(done["trainable"]),
            "trainable_share": _first(done["trainable_share"]),
            "best_mean": best.mean() if len(best) else math.nan,
            "best_std": best.std(ddof=1) if len(best) > 1 else math.nan,
            "last_mean": last.mean() if len(last) else math.nan,
            "last_std": last.std(ddof=1) if len(last) > 1 else math.nan,
            "best_epoch_mean": done["best_epoch"].mean() if len(done) else math.nan,
            "wall_time_s_mean": done["wall_time_s"].mean() if len(done) else math.nan,
            # the majority-class predictor's score on this task's validation split (classification only)
            "majority": _first(done.get(f"majority_{metric}", pd.Series(dtype=float))),
        }
        row |= {column: _first(group[column]) for column in PROMPT_KEYS}
        rows.append(row)
    table = pd.DataFrame(rows, columns=CSV_COLUMNS)
    table["trainable"] = table["trainable"].astype("Int64")
    order = sorted(range(len(table)), key=lambda i: tuple(natural_key(table.at[i, c]) for c in GROUP))
    return table.iloc[order].reset_index(drop=True)


def failed_runs(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty:
        return runs
    failed = runs[runs["status"] != "finished"]
    return failed[
        ["task", "method", "backbone", "setting", "seed", "status", "error", "run_dir"]
    ].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- formatting


def format_score(mean: float, std: float, metric: str) -> str:
    if mean is None or pd.isna(mean):
        return MISSING
    if is_loss(metric):
        return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"
    k = scale(metric)
    if k == 100.0 and mean > 1.0:  # SQuAD's F1 is logged in percent too, under a name shared with entity F1
        k = 1.0  # (a fraction never exceeds 1)
    return f"{k * mean:.1f}" if pd.isna(std) else f"{k * mean:.1f} ± {k * std:.1f}"


def format_count(value: float | None) -> str:
    if value is None or pd.isna(value):
        return MISSING
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{int(value)}"


def format_params(trainable: float | None, share: float | None) -> str:
    text = format_count(trainable)
    if share is not None and not pd.isna(share):
        text += f" ({100 * share:.2f}%)"
    return text


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _cell(value) -> str:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def results_markdown(table: pd.DataFrame, metric: str = "val/acc") -> str:
    """The results table: one line per (task, method, backbone, setting)."""
    header = ["task", "method", "backbone", "setting", "seeds", "failed"]
    header += ["trainable params", f"best {metric}", f"last {metric}"]
    rows = [
        [
            r.task,
            r.method,
            r.backbone,
            r.setting,
            r.n_seeds,
            r.n_failed,
            format_params(r.trainable, r.trainable_share),
            format_score(r.best_mean, r.best_std, metric),
            format_score(r.last_mean, r.last_std, metric),
        ]
        for r in table.itertuples(index=False)
    ]
    return markdown_table(header, rows)


def failed_markdown(failed: pd.DataFrame) -> str:
    rows = [
        [
            r.task,
            r.method,
            r.setting,
            "" if pd.isna(r.seed) else int(r.seed),
            r.error or r.status,
            f"`{r.run_dir}`",
        ]
        for r in failed.itertuples(index=False)
    ]
    return markdown_table(["task", "method", "setting", "seed", "error", "run dir"], rows)


def header_markdown(runs: pd.DataFrame, sources: Sequence[str | Path], metric: str, title: str) -> str:
    if "run_dir" in runs:  # a joint multi-task run has a row per task: count (and time) it once
        runs = runs.drop_duplicates("run_dir")
    n = len(runs)
    finished = int((runs["status"] == "finished").sum()) if n else 0
    failed = n - finished
    unit = "" if is_loss(metric) else " (%)"
    lines = [
        f"# {title}",
        "",
        "- Sources: " + ", ".join(f"`{s}`" for s in sources),
        f"- Runs: {n} ({finished} finished, {failed} failed)",
    ]
    for column, label in (("hardware", "Hardware"), ("host", "Hosts")):
        if n and column in runs and runs[column].notna().any():
            counts = runs[column].dropna().value_counts()
            lines.append(
                f"- {label}: " + ", ".join(f"{k} ({v} run{'s' if v != 1 else ''})" for k, v in counts.items())
            )
    if n and runs["wall_time_s"].notna().any():
        lines.append(f"- Total wall time: {format_duration(runs['wall_time_s'].sum())}")
    lines.append(f"- Metric: `{metric}` at the best epoch and at the last epoch, mean ± std over seeds{unit}")
    return "\n".join(lines)


def report_markdown(
    runs: pd.DataFrame,
    table: pd.DataFrame,
    sources: Sequence[str | Path],
    metric: str = "val/acc",
    title: str = "deepprompt report",
    figures: Sequence[str | Path] = (),
    tuned: str | None = None,
) -> str:
    """The whole report.md; ``tuned``: the tuned-comparison section, placed after the results table."""
    parts = [header_markdown(runs, sources, metric, title), "", "## Results", ""]
    parts.append(results_markdown(table, metric) if len(table) else "No runs found.")
    if tuned:
        parts += ["", tuned]
    failed = failed_runs(runs)
    if len(failed):
        parts += ["", f"## Failed runs ({len(failed)})", "", failed_markdown(failed)]
    if figures:
        parts += ["", "## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    return "\n".join(parts) + "\n"


def write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    table.to_csv(path, index=False)
    return path
