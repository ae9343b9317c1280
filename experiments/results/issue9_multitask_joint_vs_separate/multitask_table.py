"""Issue 9 multi-task: per task, joint (mixed / homogeneous batches) vs separate runs, from their metrics.json.

``deepprompt-report`` (report.md) already gives one row per task of a joint run next to the single-task runs; this
script puts the same numbers side by side (joint_vs_separate.md / .csv) and adds what the report does not show:
the best epoch of each, CB's macro-F1, the majority-class rate of each dev set (with --data-dir), each task's
training exposure (separate: epochs x train size; joint: the expected rows steps x batch x p_task of the
sampler, as recorded in metrics.json's ``multitask``) and the runs' wall time and steps.

    PYTHONPATH=src python experiments/results/issue9_multitask_joint_vs_separate/multitask_table.py \
        experiments/results/minilm_h100_runs/multitask --data-dir ../shared/data \
        --out experiments/results/issue9_multitask_joint_vs_separate
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

import pandas as pd

JOINT = {"mixed": "joint mixed", "homogeneous": "joint homogeneous"}
COLUMNS = ["separate", "joint mixed", "joint homogeneous"]


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def majority(data_dir: Path | None, task: str) -> tuple[int | None, float | None]:
    if data_dir is None:
        return None, None
    with gzip.open(data_dir / task / "val.jsonl.gz", "rt") as fh:
        labels = Counter(str(json.loads(line)["label"]) for line in fh if line.strip())
    n = sum(labels.values())
    return n, 100 * max(labels.values()) / n


def collect(root: Path):
    """(per-task results, per-run info) from every metrics.json below root."""
    results, runs = [], []
    for file in sorted(root.rglob("metrics.json")):
        s = _load(file)
        cfg = s["config"]
        batch = cfg["data"]["batch_size"]
        if s.get("per_task"):
            mt = s["multitask"]
            kind = JOINT[mt["batch_mode"]]
            for task, r in s["per_task"].items():
                rows = s["steps"] * batch * mt["probabilities"][task]
                results.append(
                    {
                        "task": task,
                        "kind": kind,
                        "run": file.parent.name,
                        "best": r["best"],
                        "last": r["last"],
                        "train_size": mt["train_sizes"][task],
                        "rows": rows,
                        "passes": rows / mt["train_sizes"][task],
                        "p": mt["probabilities"][task],
                    }
                )
        else:
            kind, task = "separate", s["task"]
            results.append(
                {
                    "task": task,
                    "kind": kind,
                    "run": file.parent.name,
                    "best": s["best"],
                    "last": s["last"],
                    "train_size": None,
                    "rows": None,
                    "passes": s["epochs"],
                    "p": 1.0,
                }
            )
        runs.append(
            {
                "run": file.parent.name,
                "kind": kind,
                "tasks": "+".join(s.get("tasks") or [s["task"]]),
                "epochs": s["epochs"],
                "steps": s["steps"],
                "batch": batch,
                "prompt_length": cfg["method"]["prompt"]["length"],
                "lr": cfg["method"]["lr"],
                "warmup_ratio": cfg["optim"]["warmup_ratio"],
                "seed": s["seed"],
                "wall_time_s": s["wall_time_s"],
            }
        )
    results = pd.DataFrame(results)
    # separate runs: their train size is the joint runs' record of the same task
    sizes = results.dropna(subset=["train_size"]).groupby("task")["train_size"].first()
    sep = results["kind"] == "separate"
    results.loc[sep, "train_size"] = results.loc[sep, "task"].map(sizes)
    results.loc[sep, "rows"] = results.loc[sep, "passes"] * results.loc[sep, "train_size"]
    return results, pd.DataFrame(runs)


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def score_rows(results: pd.DataFrame, data_dir: Path | None) -> tuple[list[list], list[dict]]:
    md, csv = [], []
    for task in ["rte", "cb", "boolq"]:
        n, maj = majority(data_dir, task)
        metrics = ["val/acc"] + (["val/f1_macro"] if task == "cb" else [])
        for metric in metrics:
            cells = [
                f"{task} {metric.removeprefix('val/')}",
                n or "",
                f"{maj:.1f}" if maj and metric == "val/acc" else "",
            ]
            record = {"task": task, "metric": metric, "dev_size": n, "majority_pct": maj}
            for which in ("best", "last"):
                for kind in COLUMNS:
                    r = results[(results["task"] == task) & (results["kind"] == kind)].iloc[0]
                    value = 100 * r[which][metric]
                    epoch = r[which]["epoch"]
                    cells.append(f"{value:.1f} (ep {epoch})" if which == "best" else f"{value:.1f}")
                    record[f"{which}_{kind.replace(' ', '_')}"] = value
                    record[f"{which}_epoch_{kind.replace(' ', '_')}"] = epoch
            md.append(cells)
            csv.append(record)
    return md, csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--data-dir", type=Path, default=None, help="for the dev sizes and majority classes")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    results, runs = collect(args.root)
    md_rows, csv_rows = score_rows(results, args.data_dir)
    pd.DataFrame(csv_rows).to_csv(args.out / "joint_vs_separate.csv", index=False)
    header = ["task, metric", "dev size", "majority %"]
    header += [f"best: {k} (epoch)" for k in COLUMNS] + [f"last: {k}" for k in COLUMNS]
    budget = []
    for task in ["rte", "cb", "boolq"]:
        cells = [task, int(results[results["task"] == task]["train_size"].iloc[0])]
        for kind in COLUMNS:
            r = results[(results["task"] == task) & (results["kind"] == kind)].iloc[0]
            cells.append(f"{r['rows']:,.0f} ({r['passes']:.1f} passes, p = {r['p']:.2f})")
        budget.append(cells)
    run_rows = [
        [
            r.run,
            r.kind,
            r.tasks,
            r.epochs,
            r.steps,
            r.batch,
            r.prompt_length,
            r.lr,
            r.warmup_ratio,
            r.seed,
            f"{r.wall_time_s:.0f}",
        ]
        for r in runs.sort_values(["kind", "run"]).itertuples()
    ]
    sep_total = runs[runs["kind"] == "separate"]["wall_time_s"].sum()
    text = (
        "\n".join(
            [
                "# Joint multi-task vs separate runs, per task (one seed)",
                "",
                f"Generated by `multitask_table.py` from the metrics.json below `{args.root}`. Dev = validation split,"
                " in %. Joint runs: each task's best epoch is picked by that task's own dev accuracy (as for a separate run).",
                "",
                "## Dev scores",
                "",
                table(header, md_rows),
                "",
                "## Training exposure per task (rows seen in training)",
                "",
                "Separate: epochs x train size. Joint: expected rows, steps x batch x p (the sampler is random). Passes = rows / train size.",
                "",
                table(["task", "train size", *COLUMNS], budget),
                "",
                "## Runs (wall time: up to 14 jobs shared the GPU, so only indicative)",
                "",
                table(
                    [
                        "run",
                        "kind",
                        "tasks",
                        "epochs",
                        "steps",
                        "batch",
                        "prompt length",
                        "lr",
                        "warm-up",
                        "seed",
                        "wall time (s)",
                    ],
                    run_rows,
                ),
                "",
                f"Sum of the three separate runs' wall time: {sep_total:.0f} s.",
            ]
        )
        + "\n"
    )
    (args.out / "joint_vs_separate.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
