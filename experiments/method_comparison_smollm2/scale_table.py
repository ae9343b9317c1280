"""MiniLM (22.7M) beside SmolLM2 (135M): each method's dev score per task at both scales, and the gap between
P-Tuning v2 and full fine-tuning with its standard error, in one table (scales.md / scales.csv) and one figure
(gap.png).

    python scale_table.py --smollm2 runs.jsonl --minilm minilm_budget.jsonl --out .
    python scale_table.py --smollm2 runs.jsonl --minilm ../method_comparison_minilm/runs.jsonl \
        --minilm-tuned ../method_comparison_minilm/tuned.csv --out .

A cell is the mean over seeds ± its standard error (std / sqrt(n), in points). A gap is the difference of the two
methods' means; its standard error is sqrt(SE_a^2 + SE_b^2) (`deepprompt.report.seeds.versus`, with Welch's p).
``--minilm-tuned``: the MiniLM record holds lr grids; keep each method's runs at its chosen rate (tuned.csv).

A method whose mean is less than ``--majority-margin`` points (default 1) above the dev set's majority-class
accuracy (the runs' ``baselines.majority``) is marked: it has not learned the task beyond the class prior. Where
both P-Tuning v2 and fine-tuning are at the majority class at one scale, that scale's gap measures nothing and the
change of the gap is "not measurable".
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from deepprompt.report.collect import collect_runs
from deepprompt.report.seeds import versus
from deepprompt.report.table import markdown_table

METHODS = ("ptuning_v2", "prefix", "lora", "finetune")
TASKS = ("sst2", "boolq", "rte", "cb")
NAMES = {"sst2": "SST-2", "boolq": "BoolQ", "rte": "RTE", "cb": "CB"}


def scores(record: Path, metric: str, tuned: Path | None = None) -> pd.DataFrame:
    """``task, method, seed, score, majority`` (points) of the finished runs of ``record`` (at the tuned rates);
    ``majority``: the dev set's majority-class score (NaN where the runs do not record it)."""
    runs = collect_runs([record])
    runs = runs[(runs["status"] == "finished") & runs["method"].isin(METHODS)]
    if tuned is not None:
        chosen = pd.read_csv(tuned, dtype=str)[["task", "method", "chosen"]]
        runs = runs.merge(chosen, on=["task", "method"])
        runs = runs[(runs["lr"].astype(float) - runs["chosen"].astype(float)).abs() < 1e-12]
    out = runs[["task", "method", "seed"]].copy()
    out["score"] = 100.0 * runs[metric].astype(float)
    base = f"majority_{metric.split('_', 1)[1]}"  # best_val/acc -> majority_val/acc
    out["majority"] = 100.0 * runs[base].astype(float) if base in runs else math.nan
    return out.drop_duplicates(["task", "method", "seed"], keep="last")


def cell(values: pd.Series) -> tuple[float, float, int]:
    n = len(values)
    se = values.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan
    return values.mean(), se, n


def fmt(mean: float, se: float, n: int, signed: bool = False) -> str:
    if n == 0 or math.isnan(mean):
        return "—"
    value = f"{mean:+.1f}" if signed else f"{mean:.1f}"
    return f"{value} ± {se:.1f} (n={n})" if not math.isnan(se) else f"{value} (n={n})"


def build(small: pd.DataFrame, large: pd.DataFrame, margin: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per task and method at both scales (``*_at_majority``: the mean is less than ``margin`` points above the
    majority class), and per task the gap ptuning_v2 - finetune at both scales (``*_gap_measurable``: False
    where both methods are at the majority class)."""
    rows, gaps = [], []
    for task in TASKS:
        majority = pd.concat([small[small.task == task]["majority"], large[large.task == task]["majority"]])
        majority = majority.dropna().iloc[0] if majority.notna().any() else math.nan
        for method in METHODS:
            row = {"task": task, "method": method, "majority": majority}
            for scale, data in (("minilm", small), ("smollm2", large)):
                mean, se, n = cell(data[(data.task == task) & (data.method == method)]["score"])
                row |= {f"{scale}_mean": mean, f"{scale}_se": se, f"{scale}_n": n}
                row[f"{scale}_at_majority"] = bool(n) and mean - majority < margin
            rows.append(row)
        gap = {"task": task}
        for scale, data in (("minilm", small), ("smollm2", large)):
            at_majority = [
                r[f"{scale}_at_majority"]
                for r in rows[-len(METHODS) :]
                if r["method"] in ("ptuning_v2", "finetune")
            ]
            gap[f"{scale}_gap_measurable"] = not all(at_majority)
            ours = data[(data.task == task) & (data.method == "ptuning_v2")].set_index("seed")["score"]
            ref = data[(data.task == task) & (data.method == "finetune")].set_index("seed")["score"]
            gap |= {f"{scale}_n_ptuning_v2": len(ours), f"{scale}_n_finetune": len(ref)}
            if len(ours) > 1 and len(ref) > 1:
                v = versus(ours, ref)
                gap |= {
                    f"{scale}_gap": v["diff"],
                    f"{scale}_gap_se": v["se"],
                    f"{scale}_welch_p": v["welch_p"],
                }
            else:
                gap |= {f"{scale}_gap": math.nan, f"{scale}_gap_se": math.nan, f"{scale}_welch_p": math.nan}
        gap["change"] = gap["smollm2_gap"] - gap["minilm_gap"]
        gap["change_se"] = math.hypot(gap["smollm2_gap_se"], gap["minilm_gap_se"])
        gaps.append(gap)
    return pd.DataFrame(rows), pd.DataFrame(gaps)


MARK = " †"  # a mean less than the margin above the majority class


def gap_cell(g, scale: str, full: int) -> str:
    """``-5.1 ± 0.3``, with ``(n=3/2)`` (P-Tuning v2 / fine-tuning seeds) where a side has fewer than ``full``."""
    text = fmt(getattr(g, f"{scale}_gap"), getattr(g, f"{scale}_gap_se"), 1, signed=True).replace(
        " (n=1)", ""
    )
    ours, ref = int(getattr(g, f"{scale}_n_ptuning_v2")), int(getattr(g, f"{scale}_n_finetune"))
    if text != "—" and (ours < full or ref < full):
        text += f" (n={ours}/{ref})"
    if text != "—" and not getattr(g, f"{scale}_gap_measurable"):
        text += MARK
    return text


def markdown(
    table: pd.DataFrame, gaps: pd.DataFrame, metric: str, minilm_label: str, margin: float = 1.0
) -> str:
    header = ["task", "method", "MiniLM-L6 (22.7M)", "SmolLM2 (135M)"]
    body = []
    for r in table.itertuples():
        cells = []
        for scale in ("minilm", "smollm2"):
            text = fmt(getattr(r, f"{scale}_mean"), getattr(r, f"{scale}_se"), int(getattr(r, f"{scale}_n")))
            cells.append(text + (MARK if getattr(r, f"{scale}_at_majority") else ""))
        majority = "" if math.isnan(r.majority) else f" (majority class {r.majority:.1f})"
        body.append([NAMES[r.task] + majority if r.method == METHODS[0] else NAMES[r.task], r.method, *cells])
    full = int(max(table["minilm_n"].max(), table["smollm2_n"].max()))
    gap_header = ["task", "MiniLM gap", "SmolLM2 gap", "change (SmolLM2 - MiniLM)", "shrinks?"]
    gap_body = []
    for g in gaps.itertuples():
        if not (g.minilm_gap_measurable and g.smollm2_gap_measurable):
            verdict = "not measurable (both methods at the majority class" + (
                " at both scales)"
                if not (g.minilm_gap_measurable or g.smollm2_gap_measurable)
                else (" on MiniLM)" if not g.minilm_gap_measurable else " on SmolLM2)")
            )
        elif math.isnan(g.change):
            verdict = "not measured"
        elif abs(g.smollm2_gap) < abs(g.minilm_gap) and abs(g.change) > 2 * g.change_se:
            verdict = "yes (> 2 SE)"
        elif abs(g.smollm2_gap) < abs(g.minilm_gap):
            verdict = "smaller, within 2 SE"
        else:
            verdict = "no"
        gap_body.append(
            [
                NAMES[g.task],
                gap_cell(g, "minilm", full),
                gap_cell(g, "smollm2", full),
                fmt(g.change, g.change_se, 1, signed=True).replace(" (n=1)", ""),
                verdict,
            ]
        )
    return "\n".join(
        [
            f"# P-Tuning v2 vs fine-tuning at two scales ({metric}, points)",
            "",
            f"MiniLM runs: {minilm_label}. Mean over seeds ± standard error (n seeds).",
            f"†: less than {margin:g} point above the dev set's majority-class accuracy (not learned beyond the "
            "class prior).",
            "",
            markdown_table(header, body),
            "",
            "## The gap: ptuning_v2 - finetune (± its standard error, sqrt(SE_a^2 + SE_b^2))",
            "",
            f"(n=a/b): seeds of P-Tuning v2 / fine-tuning where fewer than {full}. †: both methods at the majority "
            "class at that scale, the gap measures nothing.",
            "",
            markdown_table(gap_header, gap_body),
            "",
        ]
    )


def figure(gaps: pd.DataFrame, out: Path, metric: str, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    x = range(len(gaps))
    for offset, scale, label, color in (
        (-0.18, "minilm", "MiniLM-L6 (22.7M)", "#8da0cb"),
        (0.18, "smollm2", "SmolLM2 (135M)", "#fc8d62"),
    ):
        bars = ax.bar(
            [i + offset for i in x],
            gaps[f"{scale}_gap"],
            width=0.36,
            yerr=gaps[f"{scale}_gap_se"],
            capsize=3,
            label=label,
            color=color,
        )
        full = int(max(gaps[[c for c in gaps if c.endswith(("_n_ptuning_v2", "_n_finetune"))]].max()))
        for bar, g in zip(bars, gaps.itertuples(), strict=True):
            notes = []
            ours, ref = int(getattr(g, f"{scale}_n_ptuning_v2")), int(getattr(g, f"{scale}_n_finetune"))
            if ours < full or ref < full:
                notes.append(f"n={ours}/{ref}")
            if not getattr(g, f"{scale}_gap_measurable"):
                bar.set_hatch("//")
                bar.set_edgecolor("#555555")
                notes.append("majority\nclass")
            if notes:
                ax.annotate(
                    "\n".join(notes),
                    (bar.get_x() + bar.get_width() / 2, 0),
                    xytext=(0, -4 if bar.get_height() >= 0 else 4),
                    textcoords="offset points",
                    ha="center",
                    va="top" if bar.get_height() >= 0 else "bottom",
                    fontsize=6.5,
                )
    ax.axhline(0, color="black", linewidth=0.8)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.12 * (high - low))  # room for the change above each pair
    for i, g in enumerate(gaps.itertuples()):
        if not (g.minilm_gap_measurable and g.smollm2_gap_measurable):
            change = "change: not measurable"
        elif math.isnan(g.change):
            change = "change: —"
        else:
            change = f"change {g.change:+.1f} ± {g.change_se:.1f}"
        ax.text(i, 0.98, change, transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=7)
    ax.set_xticks(list(x), [NAMES[t] for t in gaps["task"]])
    ax.set_ylabel(f"ptuning_v2 - finetune ({metric}, points)")
    ax.set_title(title or "Gap to full fine-tuning at two scales (± 1 SE)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "gap.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smollm2", type=Path, required=True, help="SmolLM2 runs (runs.jsonl or run folders)"
    )
    parser.add_argument("--minilm", type=Path, required=True, help="MiniLM runs (runs.jsonl or run folders)")
    parser.add_argument("--minilm-tuned", type=Path, help="tuned.csv: keep MiniLM's runs at the chosen lr")
    parser.add_argument("--label", default="", help="what the MiniLM runs are (printed above the table)")
    parser.add_argument("--metric", default="val/acc")
    parser.add_argument("--epoch", choices=("best", "last"), default="best")
    parser.add_argument("--majority-margin", type=float, default=1.0, help="points above the majority class")
    parser.add_argument("--figure-title", default="", help="the figure's title")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    column = f"{args.epoch}_{args.metric}"
    small = scores(args.minilm, column, args.minilm_tuned)
    large = scores(args.smollm2, column)
    table, gaps = build(small, large, args.majority_margin)
    args.out.mkdir(parents=True, exist_ok=True)
    table.merge(gaps, on="task").to_csv(args.out / "scales.csv", index=False, float_format="%.4f")
    text = markdown(
        table,
        gaps,
        f"{args.metric}, {args.epoch} epoch",
        args.label or str(args.minilm),
        args.majority_margin,
    )
    (args.out / "scales.md").write_text(text)
    figure(gaps, args.out, args.metric, args.figure_title)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
