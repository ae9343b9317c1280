"""The tuned comparison: one hyper-parameter (``KEY``, e.g. ``lr``) chosen on seed 1, then mean ± std at that value.

A method comparison runs, per (task, method), a grid over ``KEY`` on seed 1 and more seeds at the grid's best value.
:func:`tuned_table` groups the runs by (task, method, backbone, setting without ``KEY``) and picks the value whose
seed-1 run scored best at its best epoch (the lowest seed present when there is no seed 1; lower is better for loss
metrics; ties go to the lower value, compared as numbers when the values parse as floats). Best- and last-epoch
scores are then the mean and sample std (ddof=1) over the finished runs at the chosen value only. Runs whose setting
lacks ``KEY`` form their own group, chosen value ``–``. With a reference method, each row also gets the difference of
means to the reference on the same task and backbone. :func:`tuned_markdown` renders a method × task matrix.
"""

from __future__ import annotations

import math

import pandas as pd

from deepprompt.report.settings import drop_keys, natural_key, parse_setting
from deepprompt.report.table import GROUP, MISSING, SEED_COLUMNS, format_score, is_loss, markdown_table

TUNED_COLUMNS = [
    *GROUP,  # setting: the run's setting without KEY
    "tuned",  # False for the runs whose setting lacks KEY
    "chosen",
    "grid",
    "select_seed",
    "select_score",
    *SEED_COLUMNS,
    "reference",
    "best_diff",
    "last_diff",
]


def value_key(value: str) -> tuple:
    """Sort key of a ``KEY`` value: numeric where it parses as a float (``1e-3`` < ``2e-2`` < ``0.1``)."""
    try:
        return (0, float(value), ())
    except (TypeError, ValueError):
        return (1, 0.0, natural_key(value))


def choose_value(runs: pd.DataFrame, metric: str) -> tuple[str | None, float | None, float]:
    """``(value, seed, score)`` chosen among ``runs`` (columns ``value``, ``seed``, ``score``, finished runs only).

    The selection seed is 1, or the lowest seed present when no scored run has seed 1; several runs of that seed at
    one value count with their mean. Higher wins, lower for loss metrics; exact ties go to the lower value.
    """
    scored = runs.dropna(subset=["score"])
    if scored.empty:
        return None, None, math.nan
    seeds = pd.to_numeric(scored["seed"], errors="coerce").dropna()
    seed = 1.0 if (seeds == 1).any() else (float(seeds.min()) if len(seeds) else None)
    if seed is not None:
        scored = scored[pd.to_numeric(scored["seed"], errors="coerce") == seed]
    per_value = scored.groupby("value", sort=False)["score"].mean()
    sign = 1.0 if is_loss(metric) else -1.0
    value, score = min(per_value.items(), key=lambda item: (sign * item[1], value_key(item[0])))
    return value, seed, float(score)


def _first(values: pd.Series):
    values = values.dropna()
    return values.iloc[0] if len(values) else None


def _mean_std(values: pd.Series) -> tuple[float, float]:
    values = values.dropna()
    return (
        values.mean() if len(values) else math.nan,
        values.std(ddof=1) if len(values) > 1 else math.nan,
    )


def _reference_row(table: pd.DataFrame, row: pd.Series, reference: str) -> pd.Series | None:
    """The reference method's row on the same task and backbone: the same setting first, then a tuned one."""
    candidates = table[
        (table["method"] == reference)
        & (table["task"] == row["task"])
        & (table["backbone"] == row["backbone"])
    ]
    narrowing = (
        lambda c: (c["setting"] == row["setting"]) & (c["tuned"] == row["tuned"]),
        lambda c: c["setting"] == row["setting"],
        lambda c: c["tuned"],
    )
    for narrow in narrowing:
        if len(candidates) <= 1:
            break
        subset = candidates[narrow(candidates)]
        if len(subset):
            candidates = subset
    return candidates.iloc[0] if len(candidates) == 1 else None  # none, or ambiguous: no difference shown


def tuned_table(
    runs: pd.DataFrame, key: str = "lr", metric: str = "val/acc", reference: str | None = None
) -> pd.DataFrame:
    """One row per (task, method, backbone, setting without ``key``): the chosen value and its scores."""
    key = key.removeprefix("method.")
    if runs.empty:
        return pd.DataFrame(columns=TUNED_COLUMNS)
    runs = runs.copy()
    for column in ("task", "method", "backbone", "setting"):
        runs[column] = runs[column].fillna("?").astype(str)
    runs["value"] = runs["setting"].map(lambda s: parse_setting(s).get(key))
    runs["tuned"] = runs["value"].notna()
    runs["setting"] = runs["setting"].map(lambda s: drop_keys(s, [key]))
    runs["score"] = runs.get(f"best_{metric}", pd.Series(math.nan, index=runs.index))
    runs["last"] = runs.get(f"last_{metric}", pd.Series(math.nan, index=runs.index))
    done_mask = runs["status"] == "finished"
    runs.loc[~done_mask, ["score", "last"]] = math.nan
    rows = []
    for group_key, group in runs.groupby([*GROUP, "tuned"], sort=False):
        row = dict(zip([*GROUP, "tuned"], group_key, strict=True))
        done = group[group["status"] == "finished"]
        if row["tuned"]:
            chosen, seed, score = choose_value(done, metric)
            at = done[done["value"] == chosen] if chosen is not None else done.iloc[0:0]
            failed = group[(group["status"] != "finished") & (group["value"] == chosen)]
            grid = " ".join(sorted(group["value"].unique(), key=value_key))
        else:
            chosen, seed, score, at, grid = None, None, math.nan, done, ""
            failed = group[group["status"] != "finished"]
        best_mean, best_std = _mean_std(at["score"])
        last_mean, last_std = _mean_std(at["last"])
        row |= {
            "chosen": MISSING if chosen is None else chosen,
            "grid": grid,
            "select_seed": None if seed is None else int(seed),
            "select_score": score,
            "n_seeds": len(at),
            "n_failed": len(failed),
            "seeds": " ".join(map(str, sorted({int(s) for s in at["seed"].dropna()}))),
            "trainable": _first(at["trainable"]),
            "trainable_share": _first(at["trainable_share"]),
            "best_mean": best_mean,
            "best_std": best_std,
            "last_mean": last_mean,
            "last_std": last_std,
        }
        rows.append(row)
    table = pd.DataFrame(rows, columns=TUNED_COLUMNS)
    table["trainable"] = table["trainable"].astype("Int64")
    table["select_seed"] = table["select_seed"].astype("Int64")
    order = sorted(
        range(len(table)),
        key=lambda i: (*(natural_key(table.at[i, c]) for c in GROUP), not table.at[i, "tuned"]),
    )
    table = table.iloc[order].reset_index(drop=True)
    table["reference"] = reference or ""
    if reference:
        for i in range(len(table)):
            ref = _reference_row(table, table.iloc[i], reference)
            if ref is not None:
                table.at[i, "best_diff"] = table.at[i, "best_mean"] - ref["best_mean"]
                table.at[i, "last_diff"] = table.at[i, "last_mean"] - ref["last_mean"]
    table[["best_diff", "last_diff"]] = table[["best_diff", "last_diff"]].astype(float)
    return table


# ---------------------------------------------------------------------------------------------- Markdown


def format_diff(diff: float | None, metric: str) -> str:
    """``+1.2`` / ``−3.5`` (points; loss metrics as they are, 3 decimals), ``±0.0`` where it rounds to zero."""
    if diff is None or pd.isna(diff):
        return MISSING
    text = f"{diff:+.3f}" if is_loss(metric) else f"{100 * diff:+.1f}"
    if float(text) == 0:
        return "±" + text[1:]
    return text.replace("-", "\u2212")


def _label_setting(row, key: str) -> str:
    return row.setting if row.tuned else f"{row.setting} ({key} not set)"


def _details(row, key: str) -> str:
    seeds = f"{row.n_seeds} seed{'s' if row.n_seeds != 1 else ''}"
    failed = f", {row.n_failed} failed" if row.n_failed else ""
    return f"({key} {row.chosen}, {seeds}{failed})"


def tuned_matrix(tuned: pd.DataFrame, metric: str, key: str, epoch: str = "best") -> str:
    """Methods (× backbone × base setting where there are several) down, tasks across; ``epoch``: best or last."""
    reference = next((r for r in tuned["reference"] if r), None) if len(tuned) else None
    tasks = sorted(tuned["task"].unique(), key=natural_key)
    tuned = tuned.assign(label=[_label_setting(r, key) for r in tuned.itertuples(index=False)])
    show_backbone = tuned["backbone"].nunique() > 1
    show_setting = tuned.groupby(["method", "backbone"])["label"].nunique().max() > 1
    lines = tuned[["method", "backbone", "label"]].drop_duplicates()
    lines = sorted(
        lines.itertuples(index=False),
        key=lambda r: (
            r.method != reference,
            natural_key(r.method),
            natural_key(r.backbone),
            natural_key(r.label),
        ),
    )
    header = [
        "method",
        *(["backbone"] if show_backbone else []),
        *(["setting"] if show_setting else []),
        *tasks,
    ]
    if reference:
        header.append("mean over tasks")
    rows = []
    for line in lines:
        mine = tuned[
            (tuned["method"] == line.method)
            & (tuned["backbone"] == line.backbone)
            & (tuned["label"] == line.label)
        ]
        name = f"{line.method} (reference)" if line.method == reference else line.method
        cells = [name, *([line.backbone] if show_backbone else []), *([line.label] if show_setting else [])]
        means, diffs = [], []
        for task in tasks:
            found = mine[mine["task"] == task]
            if found.empty:
                cells.append(MISSING)
                continue
            r = found.iloc[0]
            mean, std, diff = r[f"{epoch}_mean"], r[f"{epoch}_std"], r[f"{epoch}_diff"]
            text = format_score(mean, std, metric)
            if reference and line.method != reference and not pd.isna(diff):
                text += f" ({format_diff(diff, metric)})"
            cells.append(f"{text} {_details(r, key)}")
            if not pd.isna(mean):
                means.append(mean)
            if not pd.isna(diff):
                diffs.append(diff)
        if reference:
            text = format_score(sum(means) / len(means), math.nan, metric) if means else MISSING
            if means and diffs and line.method != reference:
                text += f" ({format_diff(sum(diffs) / len(diffs), metric)})"
            if means and len(means) < len(tasks):
                text += f" ({len(means)}/{len(tasks)} tasks)"
            cells.append(text)
        rows.append(cells)
    return markdown_table(header, rows)


def tuned_markdown(
    tuned: pd.DataFrame, metric: str = "val/acc", key: str = "lr", reference: str | None = None
) -> str:
    """The section ``## Tuned comparison (KEY chosen on seed 1)``: a best-epoch and a last-epoch matrix."""
    key = key.removeprefix("method.")
    parts = [f"## Tuned comparison ({key} chosen on seed 1)", ""]
    if tuned.empty:
        return "\n".join([*parts, "No runs found."])
    order = "lower" if is_loss(metric) else "higher"
    text = (
        f"Per task, method and setting, the `{key}` whose seed-1 run has the best `{metric}` at its best epoch"
        f" ({order} is better; ties: the lower value), then mean ± std over the seeds run at that value."
    )
    if reference:
        unit = "" if is_loss(metric) else ", in points"
        text += f" In brackets: the difference of means to `{reference}` on that task{unit}; the chosen `{key}` and"
        text += " the number of seeds at it."
        if not (tuned["method"] == reference).any():
            text += f" No runs of `{reference}` were found."
    else:
        text += f" In brackets: the chosen `{key}` and the number of seeds at it."
    text += " Grids and selection scores: `tuned.csv`."
    parts += [text, "", "### Best epoch", "", tuned_matrix(tuned, metric, key, "best")]
    parts += ["", f"### Last epoch (at the {key} chosen on the best epoch)", ""]
    parts.append(tuned_matrix(tuned, metric, key, "last"))
    return "\n".join(parts)
