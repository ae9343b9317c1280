"""MiniLM (22.7M) beside SmolLM2 (135M): each method's dev score per task at both scales, and the gap between
P-Tuning v2 and full fine-tuning with its standard error, in one table (scales.md / scales.csv) and one figure
(gap.png).

    python scale_table.py --smollm2 runs.jsonl --minilm minilm_budget.jsonl --out .
    python scale_table.py --smollm2 runs.jsonl --minilm ../method_comparison_minilm/runs.jsonl \
        --minilm-tuned ../method_comparison_minilm/tuned.csv --out .

A cell is the mean over seeds ± its standard error (std / sqrt(n), in points). A gap is the difference of the two
methods' means; its standard error is sqrt(SE_a^2 + SE_b^2) (`deepprompt.report.seeds.versus`, with Welch's p).
``--minilm-tuned``: the MiniLM record holds lr grids; keep each method's runs at its chosen rate (tuned.csv).
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
    """``task, method, seed, score`` (points) of the finished runs of ``record`` (at the tuned rates)."""
    runs = collect_runs([record])
    runs = runs[(runs["status"] == "finished") & runs["method"].isin(METHODS)]
    if tuned is not None:
        chosen = pd.read_csv(tuned, dtype=str)[["task", "method", "chosen"]]
        runs = runs.merge(chosen, on=["task", "method"])
        runs = runs[(runs["lr"].astype(float) - runs["chosen"].astype(float)).abs() < 1e-12]
    out = runs[["task", "method", "seed"]].copy()
    out["score"] = 100.0 * runs[metric].astype(float)
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


def build(small: pd.DataFrame, large: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per task and method at both scales, and per task the gap ptuning_v2 - finetune at both scales."""
    rows, gaps = [], []
    for task in TASKS:
        for method in METHODS:
            row = {"task": task, "method": method}
            for scale, data in (("minilm", small), ("smollm2", large)):
                mean, se, n = cell(data[(data.task == task) & (data.method == method)]["score"])
                row |= {f"{scale}_mean": mean, f"{scale}_se": se, f"{scale}_n": n}
            rows.append(row)
        gap = {"task": task}
        for scale, data in (("minilm", small), ("smollm2", large)):
            ours = data[(data.task == task) & (data.method == "ptuning_v2")].set_index("seed")["score"]
            ref = data[(data.task == task) & (data.method == "finetune")].set_index("seed")["score"]
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


def markdown(table: pd.DataFrame, gaps: pd.DataFrame, metric: str, minilm_label: str) -> str:
    header = ["task", "method", "MiniLM-L6 (22.7M)", "SmolLM2 (135M)"]
    body = [
        [
            NAMES[r.task],
            r.method,
            fmt(r.minilm_mean, r.minilm_se, int(r.minilm_n)),
            fmt(r.smollm2_mean, r.smollm2_se, int(r.smollm2_n)),
        ]
        for r in table.itertuples()
    ]
    gap_header = ["task", "MiniLM gap", "SmolLM2 gap", "change (SmolLM2 - MiniLM)", "shrinks?"]
    gap_body = []
    for g in gaps.itertuples():
        if math.isnan(g.change):
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
                fmt(g.minilm_gap, g.minilm_gap_se, 1, signed=True).replace(" (n=1)", ""),
                fmt(g.smollm2_gap, g.smollm2_gap_se, 1, signed=True).replace(" (n=1)", ""),
                fmt(g.change, g.change_se, 1, signed=True).replace(" (n=1)", ""),
                verdict,
            ]
        )
    return "\n".join(
        [
            f"# P-Tuning v2 vs fine-tuning at two scales ({metric}, best epoch, points)",
            "",
            f"MiniLM runs: {minilm_label}. Mean over seeds ± standard error (n seeds).",
            "",
            markdown_table(header, body),
            "",
            "## The gap: ptuning_v2 - finetune (± its standard error, sqrt(SE_a^2 + SE_b^2))",
            "",
            markdown_table(gap_header, gap_body),
            "",
        ]
    )


def figure(gaps: pd.DataFrame, out: Path, metric: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    x = range(len(gaps))
    for offset, scale, label, color in (
        (-0.18, "minilm", "MiniLM-L6 (22.7M)", "#8da0cb"),
        (0.18, "smollm2", "SmolLM2 (135M)", "#fc8d62"),
    ):
        ax.bar(
            [i + offset for i in x],
            gaps[f"{scale}_gap"],
            width=0.36,
            yerr=gaps[f"{scale}_gap_se"],
            capsize=3,
            label=label,
            color=color,
        )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(list(x), [NAMES[t] for t in gaps["task"]])
    ax.set_ylabel(f"ptuning_v2 - finetune ({metric}, points)")
    ax.set_title("Gap to full fine-tuning at two scales (± 1 SE)", fontsize=10)
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
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    column = f"{args.epoch}_{args.metric}"
    small = scores(args.minilm, column, args.minilm_tuned)
    large = scores(args.smollm2, column)
    table, gaps = build(small, large)
    args.out.mkdir(parents=True, exist_ok=True)
    table.merge(gaps, on="task").to_csv(args.out / "scales.csv", index=False, float_format="%.4f")
    text = markdown(table, gaps, f"{args.metric}, {args.epoch} epoch", args.label or str(args.minilm))
    (args.out / "scales.md").write_text(text)
    figure(gaps, args.out, args.metric)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
