"""PNG figures from the aggregated table (best-epoch score, mean ± std over seeds), each made only when the data
has that dimension:

- ``length_<task>.png``: score vs prompt length (log2 axis), one line per method (and other setting);
- ``depth_<task>.png``: score vs k for prompts in the top-k vs the bottom-k layers (``all`` as a dashed line);
- ``reparam.png``: no reparameterization vs MLP, per task (bars from zero);
- ``methods_<task>.png``: the best setting of each method: a dot (mean over seeds) and an interval (± 1 sample
  standard deviation), the seed count under each method, the majority-class line where the task has one;
- ``overview.png``: all tasks x methods in one figure, the same dots and intervals, one panel per task.

Every title names the task, the backbone(s) and the metric; every figure says what the interval is.

Figures are drawn on the Agg canvas directly (no pyplot), so they leave the caller's backend alone.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from deepprompt.report.collect import AXIS_KEYS
from deepprompt.report.settings import drop_keys, natural_key
from deepprompt.report.table import MISSING, is_loss, scale

DEPTH = re.compile(r"^(top|bottom)-(\d+)$")
DPI = 110


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)) or "_"


def _scale(metric: str, data: pd.DataFrame) -> float:
    """Percent for fractions; 1 where the values are already percent (SQuAD logs F1/EM in percent under a name
    shared with entity F1), the same rule as ``table.format_score``: a fraction never exceeds 1."""
    k = scale(metric)
    return 1.0 if k == 100.0 and (data["best_mean"] > 1.0).any() else k


def _ylabel(metric: str) -> str:
    return f"{metric} (best epoch)" + ("" if is_loss(metric) else ", %")


def _prepare(table: pd.DataFrame) -> pd.DataFrame:
    """Finished groups with a score, plus ``other``: the setting without the prompt keys on the plot axes."""
    data = table[(table["n_seeds"] > 0) & table["best_mean"].notna()].copy()
    data["other"] = [drop_keys(s, AXIS_KEYS) for s in data["setting"]]
    data["std0"] = data["best_std"].fillna(0.0)
    return data


def _save(fig: Figure, path: Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=DPI, format="png")
    return path


INTERVAL = "dot: mean over seeds; interval: ± 1 sample s.d. (none for one seed)"


def _backbones(rows: pd.DataFrame) -> str:
    return ", ".join(sorted(str(b) for b in rows["backbone"].dropna().unique())) or "?"


def _seeds(rows: pd.DataFrame) -> str:
    """``1 seed``, ``3 seeds`` or ``1-3 seeds``: how many seeds each point averages."""
    counts = sorted({int(n) for n in rows["n_seeds"]})
    if len(counts) == 1:
        return f"{counts[0]} seed" + ("" if counts[0] == 1 else "s")
    return f"{counts[0]}-{counts[-1]} seeds"


def _majority(ax, rows: pd.DataFrame, scale: float, vertical: bool = False) -> None:
    """The majority-class predictor's score (recorded by classification runs) as a dashed line."""
    if "majority" not in rows:
        return
    values = rows["majority"].dropna()
    if not len(values):
        return
    value = scale * float(values.iloc[0])
    line = ax.axvline if vertical else ax.axhline
    line(value, linestyle="--", color="grey", linewidth=1, label=f"majority class ({value:.1f})")


def _label(method: str, other: str, extra: str = "") -> str:
    details = ", ".join(p for p in (extra, "" if other == "default" else other) if p)
    return f"{method} ({details})" if details else method


def _finish(fig: Figure, ax, rows: pd.DataFrame, scale: float, metric: str, what: str, path: Path) -> Path:
    """A line plot's y label, title (task, backbones: metric vs ``what``), majority line, grid and legend, saved."""
    ax.set(ylabel=_ylabel(metric))
    ax.set_title(f"{rows['task'].iloc[0]}, {_backbones(rows)}: {metric} vs {what}", fontsize=10)
    _majority(ax, rows, scale)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=f"mean ± 1 s.d. over {_seeds(rows)}", title_fontsize=8)
    return _save(fig, path)


def plot_length(data: pd.DataFrame, out: Path, metric: str) -> list[Path]:
    files = []
    scale = _scale(metric, data)
    sub = data[data["prompt_length"].notna()]
    for task, rows in sub.groupby("task", sort=False):
        lines = []
        keys = ["method", "backbone", "prompt_layers", "prompt_reparam", "other"]
        for key, line in rows.groupby(keys, sort=False, dropna=False):
            if line["prompt_length"].nunique() >= 2:
                lines.append((key, line.sort_values("prompt_length")))
        if not lines:
            continue
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        lengths = set()
        for (method, _backbone, layers, reparam, other), line in lines:
            extra = ", ".join(
                p
                for p in (
                    f"layers={layers}" if layers not in (None, "all") else "",
                    f"reparam={reparam}" if reparam not in (None, "none") else "",
                )
                if p
            )
            ax.errorbar(
                line["prompt_length"],
                scale * line["best_mean"],
                yerr=scale * line["std0"],
                marker="o",
                capsize=3,
                label=_label(method, other, extra),
            )
            lengths |= set(line["prompt_length"])
        ax.set_xscale("log", base=2)
        ticks = sorted(lengths)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.set(xlabel="prompt length (log2)")
        files.append(
            _finish(fig, ax, rows, scale, metric, "prompt length", out / f"length_{_safe(task)}.png")
        )
    return files


def plot_depth(data: pd.DataFrame, out: Path, metric: str) -> list[Path]:
    files = []
    scale = _scale(metric, data)
    parsed = data["prompt_layers"].astype(str).str.extract(DEPTH.pattern)
    depth = data.assign(direction=parsed[0], k=pd.to_numeric(parsed[1]))
    keys = ["method", "backbone", "prompt_length", "prompt_reparam", "other"]
    for task, rows in depth[depth["direction"].notna()].groupby("task", sort=False):
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        many = rows[keys].drop_duplicates().shape[0] > 1
        for key, group in rows.groupby(keys, sort=False, dropna=False):
            method, backbone, length, reparam, other = key
            base = _label(method, other, f"length={length:g}" if many and pd.notna(length) else "")
            for direction, line in group.groupby("direction", sort=False):
                line = line.sort_values("k")
                ax.errorbar(
                    line["k"],
                    scale * line["best_mean"],
                    yerr=scale * line["std0"],
                    marker="o",
                    capsize=3,
                    label=f"{base}: {direction}-k",
                )
            full = data[
                (data["task"] == task)
                & (data["method"] == method)
                & (data["backbone"] == backbone)
                & (data["prompt_layers"] == "all")
                & (data["other"] == other)
                & (data["prompt_length"] == length)
                & (data["prompt_reparam"] == reparam)
            ]
            if len(full):
                ax.axhline(
                    scale * full["best_mean"].iloc[0], linestyle="--", color="grey", label=f"{base}: all"
                )
        ks = sorted(rows["k"].unique())
        ax.xaxis.set_major_locator(FixedLocator(ks))
        ax.set(xlabel="k (layers with prompts)")
        files.append(_finish(fig, ax, rows, scale, metric, "prompt depth", out / f"depth_{_safe(task)}.png"))
    return files


def plot_reparam(data: pd.DataFrame, out: Path, metric: str) -> list[Path]:
    scale = _scale(metric, data)
    keys = ["task", "method", "backbone", "prompt_length", "prompt_layers", "other"]
    pairs = []
    for key, group in data[data["prompt_reparam"].isin(["none", "mlp"])].groupby(
        keys, sort=False, dropna=False
    ):
        by = group.set_index("prompt_reparam")
        if {"none", "mlp"} <= set(by.index):
            pairs.append((key, by.loc["none"], by.loc["mlp"]))
    if not pairs:
        return []
    pairs.sort(key=lambda p: tuple(natural_key(k) for k in p[0]))
    tasks = {p[0][0] for p in pairs}
    labels = []
    for (task, method, _backbone, length, layers, other), _none, _mlp in pairs:
        detail = (
            [] if len(pairs) == len(tasks) else [method, f"m={length:g}" if pd.notna(length) else "", layers]
        )
        if other != "default" and len(pairs) != len(tasks):
            detail.append(other)
        labels.append("\n".join([task, *[d for d in detail if d]]))
    fig = Figure(figsize=(max(4, 1.4 * len(pairs) + 2), 4))
    ax = fig.subplots()
    width = 0.38
    xs = range(len(pairs))
    for offset, name, index in ((-width / 2, "none", 1), (width / 2, "mlp", 2)):
        means = [scale * p[index]["best_mean"] for p in pairs]
        stds = [scale * p[index]["std0"] for p in pairs]
        ax.bar([x + offset for x in xs], means, width, yerr=stds, capsize=3, label=f"reparam={name}")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylim(bottom=0)
    rows = pd.DataFrame([p[i] for p in pairs for i in (1, 2)])
    ax.set(ylabel=_ylabel(metric))
    ax.set_title(f"reparameterization, none vs MLP ({_backbones(rows)}, {metric})", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, title=f"bar: mean, whisker: ± 1 s.d. over {_seeds(rows)}", title_fontsize=8)
    return [_save(fig, out / "reparam.png")]


def _best_per_method(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    pick = "idxmin" if is_loss(metric) else "idxmax"
    best = rows.loc[getattr(rows.groupby(["method", "backbone"], sort=False)["best_mean"], pick)()]
    return best.sort_values(["method", "backbone"], key=lambda s: s.map(natural_key))


def _method_labels(best: pd.DataFrame, several_backbones: bool) -> list[str]:
    labels = []
    for r in best.itertuples(index=False):
        name = f"{r.method} ({r.backbone})" if several_backbones else r.method
        setting = "" if r.setting == "default" else f"\n{r.setting}"
        labels.append(f"{name}{setting}\nn={int(r.n_seeds)}")
    return labels


def plot_methods(
    data: pd.DataFrame, out: Path, metric: str, title: str = "best setting per method"
) -> list[Path]:
    """Per task: each method at its best setting (by mean), or the rows given (a tuned comparison's), as a dot
    and an interval, with the seed count under each method and the majority-class line."""
    files = []
    scale = _scale(metric, data)
    for task, rows in data.groupby("task", sort=False):
        if rows["method"].nunique() < 2:
            continue
        best = _best_per_method(rows, metric)
        fig = Figure(figsize=(max(4.5, 1.3 * len(best) + 2), 4.4))
        ax = fig.subplots()
        xs = list(range(len(best)))
        for i, (mean, std) in enumerate(zip(best["best_mean"], best["std0"], strict=True)):
            ax.errorbar(i, scale * mean, yerr=scale * std, fmt="o", capsize=4, color=f"C{i}", markersize=7)
        _majority(ax, rows, scale)
        ax.set_xticks(xs)
        ax.set_xticklabels(_method_labels(best, best["backbone"].nunique() > 1), fontsize=8)
        ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.set_ylabel(_ylabel(metric))
        heading = f"{task}, {_backbones(best)}: {metric}, {title}"
        ax.set_title(textwrap.fill(heading, width=max(48, 12 * len(best) + 24)), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
        fig.text(0.5, 0.005, INTERVAL + "; n = seeds", ha="center", va="bottom", fontsize=7, color="dimgrey")
        files.append(_save(fig, out / f"methods_{_safe(task)}.png", rect=(0, 0.03, 1, 1)))
    return files


def plot_overview(
    data: pd.DataFrame, out: Path, metric: str, title: str = "best setting per method"
) -> list[Path]:
    """Tasks x methods in one figure: a panel per task, a row per method (dot and interval), majority line."""
    tasks = [t for t in data["task"].drop_duplicates() if pd.notna(t)]
    if not tasks or (len(tasks) < 2 and data["method"].nunique() < 2):
        return []
    scale = _scale(metric, data)
    methods = sorted(
        {(m, b) for m, b in zip(data["method"], data["backbone"], strict=True)},
        key=lambda mb: (natural_key(mb[0]), natural_key(mb[1])),
    )
    several = len({b for _, b in methods}) > 1
    fig = Figure(figsize=(2.6 * len(tasks) + 1.8, 0.45 * len(methods) + 1.9))
    axes = fig.subplots(1, len(tasks), sharey=True, squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        rows = data[data["task"] == task]
        best = _best_per_method(rows, metric).set_index(["method", "backbone"])
        for i, key in enumerate(methods):
            if key not in best.index:
                continue
            r = best.loc[key]
            x = scale * r["best_mean"]
            ax.errorbar(x, i, xerr=scale * r["std0"], fmt="o", capsize=3, color=f"C{i}")
            ax.annotate(
                f"n={int(r['n_seeds'])}",
                (x, i),
                xytext=(0, 5),
                textcoords="offset points",
                ha="center",
                fontsize=6,
                color="dimgrey",
            )
        _majority(ax, rows, scale, vertical=True)
        ax.set_title(task, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel(_ylabel(metric), fontsize=8)
    axes[0].set_yticks(range(len(methods)))
    axes[0].set_yticklabels([f"{m} ({b})" if several else m for m, b in methods], fontsize=8)
    axes[0].set_ylim(len(methods) - 0.4, -0.7)
    has_majority = "majority" in data and data["majority"].notna().any()
    note = " (dashed: majority class)" if has_majority else ""
    fig.suptitle(f"{_backbones(data)}: {metric}, {title}{note}", fontsize=10, wrap=True)
    fig.text(0.5, 0.005, INTERVAL + "; n = seeds", ha="center", va="bottom", fontsize=7, color="dimgrey")
    return [_save(fig, out / "overview.png", rect=(0, 0.04, 1, 1))]


def tuned_bars(tuned: pd.DataFrame, key: str) -> pd.DataFrame:
    """The tuned comparison's rows as plot_methods' input, finished rows only. The label keeps the rest of the
    setting (e.g. ``prompt.dropout=0.0, lr=2e-2``): a method with several tuned settings gets its best bar, and
    the bar must say which setting that is."""
    rows = tuned.copy()
    rows["setting"] = [
        setting
        if chosen == MISSING
        else f"{key}={chosen}"
        if setting == "default"
        else f"{setting}, {key}={chosen}"
        for chosen, setting in zip(rows["chosen"], rows["setting"], strict=True)
    ]
    rows = rows[(rows["n_seeds"] > 0) & rows["best_mean"].notna()].copy()
    rows["std0"] = rows["best_std"].fillna(0.0)
    return rows


def make_plots(
    table: pd.DataFrame,
    out: str | Path,
    metric: str = "val/acc",
    tuned: pd.DataFrame | None = None,
    tuned_key: str = "lr",
) -> list[Path]:
    """Write every figure the data supports into ``out``; returns their paths.

    With ``tuned`` (the rows of :func:`deepprompt.report.tuned.tuned_table`), the method bars show each method at
    its tuned value (chosen on seed 1, all its seeds) rather than at the setting with the best mean, which would
    favour settings run with a single seed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if table.empty:
        return []
    data = _prepare(table)
    files: list[Path] = []
    for plot in (plot_length, plot_depth, plot_reparam):
        files += plot(data, out, metric)
    if tuned is not None and len(tuned):
        key = tuned_key.removeprefix("method.")
        title = f"each method at its tuned {key} (chosen on seed 1)"
        bars = tuned_bars(tuned, key)
        if "majority" not in bars:  # the tuned rows lack it: each task's from the aggregated table
            by_task = data.groupby("task")["majority"].first() if "majority" in data else {}
            bars["majority"] = [by_task.get(t) for t in bars["task"]]
        files += plot_methods(bars, out, metric, title=title)
        files += plot_overview(bars, out, metric, title=title)
    else:
        files += plot_methods(data, out, metric)
        files += plot_overview(data, out, metric)
    return files
