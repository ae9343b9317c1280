"""Issue 9 multi-task: per task, joint (mixed / homogeneous batches) vs separate runs, from their metrics.json.

``deepprompt-report`` (report.md) already gives one row per task of a joint run next to the single-task runs,
mean ± std over seeds; this script puts the same numbers side by side and adds what the report does not show:

- joint_vs_separate.md / .csv: per task, metric (CB: accuracy and macro-F1) and kind of run, every seed's
  best-epoch and last-epoch dev score, the best epochs, mean ± std (ddof=1) over seeds, the dev size and
  majority-class rate (with --data-dir);
- differences.csv (and a section of the .md): joint mixed - separate, joint homogeneous - separate, joint mixed -
  joint homogeneous: difference of means, its SE sqrt(s_a^2/n_a + s_b^2/n_b), diff/SE, Welch's two-sided p
  (scipy), the per-seed differences (runs with the same seed number) and how many seeds are above. No correction
  for the multiple comparisons;
- each task's training exposure (separate: epochs x train size; joint: the expected rows steps x batch x p_task
  of the sampler, as recorded in metrics.json's ``multitask``) and the runs' wall time and steps.

A run is joint if its metrics.json has ``per_task`` (kind from ``multitask.batch_mode``), separate otherwise;
seeds are read from metrics.json, so the run folders' names do not matter.

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

from deepprompt.report.collect import load_summaries
from deepprompt.report.seeds import versus

JOINT = {"mixed": "joint mixed", "homogeneous": "joint homogeneous"}
COLUMNS = ["separate", "joint mixed", "joint homogeneous"]
TASKS = ["rte", "cb", "boolq"]
# (a, b): a - b
PAIRS = [("joint mixed", "separate"), ("joint homogeneous", "separate"), ("joint mixed", "joint homogeneous")]


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
    """(per-task results, per-run info) from every metrics.json below root, one result row per task and run."""
    results, runs = [], []
    for file, s in load_summaries([root]):
        if s.get("status") != "finished":
            raise SystemExit(f"multitask_table.py: {file} has status {s.get('status')!r}, not finished")
        cfg = s["config"]
        batch = cfg["data"]["batch_size"]
        seed = int(s["seed"])
        if s.get("per_task"):
            mt = s["multitask"]
            kind = JOINT[mt["batch_mode"]]
            for task, r in s["per_task"].items():
                rows = s["steps"] * batch * mt["probabilities"][task]
                results.append(
                    {
                        "task": task,
                        "kind": kind,
                        "seed": seed,
                        "run": file.name,
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
                    "seed": seed,
                    "run": file.name,
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
                "run": file.name,
                "kind": kind,
                "tasks": "+".join(s.get("tasks") or [s["task"]]),
                "epochs": s["epochs"],
                "steps": s["steps"],
                "batch": batch,
                "prompt_length": cfg["method"]["prompt"]["length"],
                "lr": cfg["method"]["lr"],
                "warmup_ratio": cfg["optim"]["warmup_ratio"],
                "seed": seed,
                "wall_time_s": s["wall_time_s"],
            }
        )
    results = pd.DataFrame(results)
    duplicated = results.duplicated(["task", "kind", "seed"], keep=False)
    if duplicated.any():
        raise SystemExit(f"multitask_table.py: two runs of one task, kind and seed:\n{results[duplicated]}")
    # separate runs: their train size is the joint runs' record of the same task
    sizes = results.dropna(subset=["train_size"]).groupby("task")["train_size"].first()
    sep = results["kind"] == "separate"
    results.loc[sep, "train_size"] = results.loc[sep, "task"].map(sizes)
    results.loc[sep, "rows"] = results.loc[sep, "passes"] * results.loc[sep, "train_size"]
    return results, pd.DataFrame(runs)


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def _metrics(task: str) -> list[str]:
    return ["val/acc"] + (["val/f1_macro"] if task == "cb" else [])


def _label(task: str, metric: str) -> str:
    return f"{task} {metric.removeprefix('val/')}"


def scores(results: pd.DataFrame, task: str, kind: str, which: str, metric: str) -> pd.Series:
    """Dev score in % per seed (index) of one task, kind of run, epoch choice (best / last) and metric."""
    sel = results[(results["task"] == task) & (results["kind"] == kind)].set_index("seed").sort_index()
    if sel.empty:
        raise SystemExit(f"multitask_table.py: no {kind} run of {task}")
    return sel[which].map(lambda r: 100 * r[metric])


def epochs(results: pd.DataFrame, task: str, kind: str, which: str) -> pd.Series:
    sel = results[(results["task"] == task) & (results["kind"] == kind)].set_index("seed").sort_index()
    return sel[which].map(lambda r: int(r["epoch"]))


def _ms(x: pd.Series) -> str:
    return f"{x.mean():.1f} ± {x.std(ddof=1):.1f}"


def score_rows(results: pd.DataFrame, data_dir: Path | None, seeds: list[int]):
    """(mean ± std table rows, per-seed table rows, csv records)."""
    summary, per_seed, csv = [], [], []
    for task in TASKS:
        n, maj = majority(data_dir, task)
        for metric in _metrics(task):
            maj_text = f"{maj:.1f}" if maj and metric == "val/acc" else ""
            cells = [_label(task, metric), n or "", maj_text]
            for which in ("best", "last"):
                cells += [_ms(scores(results, task, kind, which, metric)) for kind in COLUMNS]
            summary.append(cells)
            for kind in COLUMNS:
                best, last = (scores(results, task, kind, w, metric) for w in ("best", "last"))
                best_ep = epochs(results, task, kind, "best")
                cells = [_label(task, metric), kind]
                cells += [f"{best[s]:.1f} (ep {best_ep[s]})" if s in best.index else "" for s in seeds]
                cells += [f"{last[s]:.1f}" if s in last.index else "" for s in seeds]
                cells += [_ms(best), _ms(last)]
                per_seed.append(cells)
                record = {
                    "task": task,
                    "metric": metric,
                    "kind": kind,
                    "dev_size": n,
                    "majority_pct": maj,
                    "seeds": " ".join(map(str, best.index)),
                }
                for which, values in (("best", best), ("last", last)):
                    record |= {f"{which}_s{s}": values[s] for s in values.index}
                    record |= {f"{which}_mean": values.mean(), f"{which}_std": values.std(ddof=1)}
                    record[f"{which}_epochs"] = " ".join(map(str, epochs(results, task, kind, which)))
                csv.append(record)
    return summary, per_seed, csv


def difference_rows(results: pd.DataFrame) -> list[dict]:
    rows = []
    for task in TASKS:
        for metric in _metrics(task):
            for a_kind, b_kind in PAIRS:
                for which in ("best", "last"):
                    a = scores(results, task, a_kind, which, metric)
                    b = scores(results, task, b_kind, which, metric)
                    rows.append(
                        {
                            "task": task,
                            "metric": metric,
                            "a": a_kind,
                            "b": b_kind,
                            "epoch": which,
                            "a_mean": a.mean(),
                            "a_std": a.std(ddof=1),
                            "b_mean": b.mean(),
                            "b_std": b.std(ddof=1),
                        }
                        | versus(a, b, digits=1)
                    )
    return rows


def _same_or_range(values: pd.Series, fmt: str) -> str:
    low, high = values.min(), values.max()
    return fmt.format(low) if low == high else f"{fmt.format(low)}-{fmt.format(high)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="run folders root, or a run record (runs.jsonl[:GLOB])")
    parser.add_argument("--data-dir", type=Path, default=None, help="for the dev sizes and majority classes")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    results, runs = collect(args.root)
    seeds = sorted(results["seed"].unique())
    seeds_text = ", ".join(map(str, seeds))
    summary, per_seed, csv_rows = score_rows(results, args.data_dir, seeds)
    pd.DataFrame(csv_rows).to_csv(args.out / "joint_vs_separate.csv", index=False)
    diffs = pd.DataFrame(difference_rows(results))
    diffs.to_csv(args.out / "differences.csv", index=False)

    header = ["task, metric", "dev size", "majority %"]
    header += [f"best: {k}" for k in COLUMNS] + [f"last: {k}" for k in COLUMNS]
    seed_header = ["task, metric", "kind"]
    seed_header += [f"best, seed {s} (epoch)" for s in seeds] + [f"last, seed {s}" for s in seeds]
    seed_header += ["best mean ± std", "last mean ± std"]
    diff_rows = [
        [
            _label(r["task"], r["metric"]),
            f"{r['a']} - {r['b']}",
            r["epoch"],
            f"{r['a_mean']:.1f} ± {r['a_std']:.1f}",
            f"{r['b_mean']:.1f} ± {r['b_std']:.1f}",
            f"{r['diff']:+.1f}",
            f"{r['se']:.1f}",
            f"{r['diff_over_se']:+.1f}",
            f"{r['welch_p']:.2f}",
            r["paired_diffs"],
            r["seeds_above"],
        ]
        for r in diffs.to_dict("records")
    ]
    budget = []
    for task in TASKS:
        cells = [task, int(results[results["task"] == task]["train_size"].iloc[0])]
        for kind in COLUMNS:
            r = results[(results["task"] == task) & (results["kind"] == kind)]
            cells.append(
                f"{_same_or_range(r['rows'], '{:,.0f}')} ({_same_or_range(r['passes'], '{:.1f}')} passes,"
                f" p = {_same_or_range(r['p'], '{:.2f}')})"
            )
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
        for r in runs.sort_values(["kind", "seed", "run"]).itertuples()
    ]
    walls = runs.groupby(["kind", "seed"])["wall_time_s"].sum()
    wall_text = "; ".join(
        f"{kind} " + ", ".join(f"{walls[kind, s]:.0f}" for s in seeds if (kind, s) in walls.index)
        for kind in COLUMNS
    )
    text = (
        "\n".join(
            [
                f"# Joint multi-task vs separate runs, per task (seeds {seeds_text})",
                "",
                f"Generated by `multitask_table.py` from the metrics.json below `{args.root}`"
                f" ({len(runs)} runs). Dev = validation split, in %. Joint runs: each task's best epoch is picked"
                " by that task's own dev accuracy (as for a separate run). Mean ± std (ddof=1) over the seeds.",
                "",
                "## Dev scores, mean ± std over seeds",
                "",
                table(header, summary),
                "",
                "## Dev scores per seed",
                "",
                table(seed_header, per_seed),
                "",
                "## Differences (a - b), in points",
                "",
                "diff = difference of means; SE = sqrt(s_a²/n_a + s_b²/n_b); p = Welch's two-sided t-test, no"
                " correction for the multiple comparisons; per-seed diffs pair runs with the same seed number"
                " (same seed, but joint and separate runs draw different data orders, so the pairing is nominal).",
                "",
                table(
                    [
                        "task, metric",
                        "a - b",
                        "epoch",
                        "a mean ± std",
                        "b mean ± std",
                        "diff",
                        "SE",
                        "diff/SE",
                        "Welch p",
                        "per-seed diffs",
                        "seeds above",
                    ],
                    diff_rows,
                ),
                "",
                "## Training exposure per task (rows seen in training)",
                "",
                "Separate: epochs x train size. Joint: expected rows, steps x batch x p (the sampler is random)."
                " Passes = rows / train size. One value where all seeds agree, else the range.",
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
                f"Wall time in s, seeds {seeds_text} (separate: a seed's three runs together): {wall_text}.",
            ]
        )
        + "\n"
    )
    (args.out / "joint_vs_separate.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
