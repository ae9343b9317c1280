"""Issue 9 prompt compression: score vs size over seeds, from the ``compression.json`` files of several runs.

``python -m deepprompt.compress run_dir=<run>`` writes one ``compression.json`` per run (one row per ratio: ranks,
dense/factored/stored floats, relative error, validation metrics; see src/deepprompt/compress.py and
src/deepprompt/prompts/compression.py). It has no option to combine runs, so this script does:

- compression.md / compression.csv: per ratio, the per-seed scores, mean ± std (ddof=1) over the runs, the drop
  from the same seed's ratio-1 score (mean ± std), stored floats and their share of the dense prompt, the relative
  reconstruction error and the validation loss (mean ± std);
- a check that each run's ratio-1 re-evaluation matches its metrics.json best score (same checkpoint);
- with --trained: runs trained directly with a smaller prompt (their prompt floats and best/last score), the
  "train small" alternative at a similar size;
- compression.png: score vs stored floats.

    PYTHONPATH=src python experiments/results/issue9_compression_sst2/compression_table.py \
        experiments/results/minilm_h100_runs/knobs/sst2_uniform_s{1,2,3} \
        --trained experiments/results/minilm_h100_runs/length_sweep/sst2_length{1,4,16,32} \
        --out experiments/results/issue9_compression_sst2
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from deepprompt.report.collect import load_summaries  # noqa: E402


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def compressed_rows(run_dirs: list[Path]) -> pd.DataFrame:
    rows = []
    for run, summary in load_summaries(run_dirs):
        comp = summary["files"]["compression.json"] if "files" in summary else _load(run / "compression.json")
        for r in comp["rows"]:
            rows.append(
                {
                    "run": run.name,
                    "seed": int(summary["seed"]),
                    "checkpoint": Path(comp["checkpoint"]).name,
                    "ratio": float(r["ratio"]),
                    "ranks": ",".join(str(v) for v in r["ranks"].values()),
                    "dense_floats": int(r["dense_floats"]),
                    "stored_floats": int(r["stored_floats"]),
                    "relative_error": float(r["relative_error"]),
                    "score_name": r["score_name"],
                    "score": 100 * float(r["score"]),
                    "loss": float(r["metrics"].get("val/loss", math.nan)),
                    "trained_best": 100 * float(summary["best"][r["score_name"]]),
                    "trained_best_epoch": int(summary["best"]["epoch"]),
                }
            )
    frame = pd.DataFrame(rows)
    full = frame[frame["ratio"] == 1.0].set_index("seed")["score"]
    frame["drop"] = frame["score"] - frame["seed"].map(full)
    return frame


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    out = []
    seeds = sorted(frame["seed"].unique())
    for ratio, g in frame.groupby("ratio", sort=False):
        g = g.set_index("seed")
        row = {
            "ratio": ratio,
            "ranks": "/".join(sorted(set(g["ranks"]))),
            "stored_floats": "/".join(str(v) for v in sorted(set(g["stored_floats"]))),
            "dense_floats": int(g["dense_floats"].iloc[0]),
            "stored_share": float(g["stored_floats"].mean() / g["dense_floats"].iloc[0]),
            "n_runs": len(g),
        }
        row |= {f"score_s{s}": g["score"].get(s, math.nan) for s in seeds}
        for col in ("score", "drop", "relative_error", "loss"):
            row |= {f"{col}_mean": g[col].mean(), f"{col}_std": g[col].std(ddof=1)}
        out.append(row)
    return pd.DataFrame(out).sort_values("ratio", ascending=False).reset_index(drop=True)


def trained_rows(run_dirs: list[Path]) -> pd.DataFrame:
    rows = []
    for run, s in load_summaries(run_dirs):
        per_layer = s["params"]["prompt_per_layer"]
        rows.append(
            {
                "run": run.name,
                "seed": int(s["seed"]),
                "prompt_length": s["config"]["method"]["prompt"]["length"],
                "prompt_floats": int(sum(per_layer.values())),
                "best": 100 * float(s["best"][s["monitor"]]),
                "last": 100 * float(s["last"][s["monitor"]]),
                "lr": s["config"]["method"]["lr"],
                "epochs": s["epochs"],
            }
        )
    return pd.DataFrame(rows).sort_values("prompt_floats").reset_index(drop=True)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def markdown(agg: pd.DataFrame, frame: pd.DataFrame, trained: pd.DataFrame | None, sources: list[str]) -> str:
    name = frame["score_name"].iloc[0]
    seeds = sorted(frame["seed"].unique())
    parts = [
        f"# Prompt compression (truncated SVD per layer of K and V): score vs size, {len(sources)} runs",
        "",
        "Generated by `compression_table.py` from the `compression.json` of: "
        + ", ".join(f"`{s}`" for s in sources)
        + f". `{name}` in %, mean ± std (ddof=1) over seeds {', '.join(map(str, seeds))}; drop = score minus the"
        " same seed's ratio-1 score. Stored floats = min(r (m + d), m d) per K and V matrix summed over layers"
        " (m prompt vectors, d = key/value width); dense = the uncompressed prompt.",
        "",
        "## Score vs size",
        "",
    ]
    header = ["ratio", "rank per layer", "stored floats", "share of dense"]
    header += [f"seed {s}" for s in seeds] + [
        f"{name} mean ± std",
        "drop mean ± std",
        "rel. error",
        "val/loss",
    ]
    rows = []
    for r in agg.to_dict("records"):
        rows.append(
            [f"{r['ratio']:g}", r["ranks"], r["stored_floats"], f"{100 * r['stored_share']:.1f}%"]
            + [f"{r[f'score_s{s}']:.2f}" for s in seeds]
            + [
                f"{r['score_mean']:.2f} ± {r['score_std']:.2f}",
                f"{r['drop_mean']:+.2f} ± {r['drop_std']:.2f}",
                f"{r['relative_error_mean']:.3f} ± {r['relative_error_std']:.3f}",
                f"{r['loss_mean']:.4f} ± {r['loss_std']:.4f}",
            ]
        )
    parts.append(table(header, rows))
    check = frame[frame["ratio"] == 1.0].sort_values("seed")
    parts += [
        "",
        "## Check: ratio 1 re-evaluated vs the training run's best epoch (same checkpoint)",
        "",
        table(
            ["run", "checkpoint", "best epoch", f"metrics.json best {name}", f"ratio 1 {name}", "difference"],
            [
                [
                    r.run,
                    r.checkpoint,
                    r.trained_best_epoch,
                    f"{r.trained_best:.2f}",
                    f"{r.score:.2f}",
                    f"{r.score - r.trained_best:+.2f}",
                ]
                for r in check.itertuples()
            ],
        ),
    ]
    if trained is not None and len(trained):
        parts += [
            "",
            "## Trained directly with a shorter (or longer) prompt, uniform length, no compression",
            "",
            table(
                [
                    "run",
                    "seed",
                    "prompt length",
                    "prompt floats",
                    f"best {name}",
                    f"last {name}",
                    "lr",
                    "epochs",
                ],
                [
                    [
                        r.run,
                        r.seed,
                        r.prompt_length,
                        r.prompt_floats,
                        f"{r.best:.2f}",
                        f"{r.last:.2f}",
                        r.lr,
                        r.epochs,
                    ]
                    for r in trained.itertuples()
                ],
            ),
        ]
    return "\n".join(parts) + "\n"


def plot(agg: pd.DataFrame, trained: pd.DataFrame | None, path: Path, name: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    floats = agg["stored_floats"].str.split("/").str[0].astype(float)
    ax.errorbar(
        floats,
        agg["score_mean"],
        yerr=agg["score_std"],
        marker="o",
        capsize=3,
        label=f"length 16 compressed by SVD (mean ± std, {int(agg['n_runs'].max())} seeds)",
    )
    for x, y, ratio in zip(floats, agg["score_mean"], agg["ratio"], strict=True):
        ax.annotate(f"ratio {ratio:g}", (x, y), textcoords="offset points", xytext=(4, -12), fontsize=8)
    if trained is not None and len(trained):
        ax.plot(
            trained["prompt_floats"],
            trained["best"],
            "s--",
            color="gray",
            label="trained with length m, no compression (seed 1)",
        )
        for x, y, m in zip(trained["prompt_floats"], trained["best"], trained["prompt_length"], strict=True):
            ax.annotate(f"m={m}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8, color="gray")
    ax.set_xscale("log")
    ax.set_xlabel("prompt floats stored (log)")
    ax.set_ylabel(f"{name} (%)")
    ax.set_title("SST-2, MiniLM, P-Tuning v2: prompt size vs dev accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs",
        nargs="+",
        help="run folders with compression.json and metrics.json, or run records (runs.jsonl[:GLOB])",
    )
    parser.add_argument("--trained", nargs="*", default=[], help="runs trained at other lengths")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    frame = compressed_rows(args.runs)
    agg = aggregate(frame)
    trained = trained_rows(args.trained) if args.trained else None
    args.out.mkdir(parents=True, exist_ok=True)
    agg.to_csv(args.out / "compression.csv", index=False)
    text = markdown(agg, frame, trained, [str(p) for p in args.runs])
    (args.out / "compression.md").write_text(text)
    plot(agg, trained, args.out / "compression.png", frame["score_name"].iloc[0])
    print(text, end="")


if __name__ == "__main__":
    main()
