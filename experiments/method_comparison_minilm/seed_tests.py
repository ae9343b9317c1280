"""Issue 3 method comparison, seed by seed: every method at its tuned lr, P-Tuning v2 against each, the targets.

Reads the runs with ``deepprompt.report.collect.collect_runs`` (the ignore keys of COMMAND.txt) and the lr that
``deepprompt-report --tuned lr`` chose on seed 1 (``tuned.csv`` in --out, written by the first command of
COMMAND.txt), and writes ``seed_tests.md`` and ``seed_tests.csv`` into --out:

- the majority-class rate of each task's dev set (counted from the local data files, --data-dir), the score of a
  model that predicts one class for every example;
- per task and method, at the tuned lr: the best-epoch and last-epoch dev accuracy of each seed, mean ± std
  (ddof=1), and which tuned (task, method) pairs lack one of the seeds 1, 2, 3;
- P-Tuning v2 (``ptuning_v2``) minus every other method: difference of means, its standard error
  sqrt(s_a^2/n_a + s_b^2/n_b), the ratio of the two, Welch's two-sided p-value (scipy), the per-seed differences
  (same seed number) and how many seeds P-Tuning v2 is above. No correction for the many comparisons;
- the issue's targets: gap to ``finetune`` on SST-2 and BoolQ (target <= 1.0 point) and the difference to
  ``prefix`` (peft prefix tuning) on the four tasks (target >= 0).

    PYTHONPATH=src python experiments/results/issue3_method_comparison/seed_tests.py \
        experiments/results/minilm_h100_runs/method_comparison --out experiments/results/issue3_method_comparison \
        --data-dir "${DEEPPROMPT_DATA_DIR:-../shared/data}"
"""

from __future__ import annotations

import argparse
import math
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from deepprompt.data.readers import read_jsonl, read_tsv, resolve_split_file
from deepprompt.report.collect import collect_runs
from deepprompt.report.seeds import PLUMBING_KEYS, versus
from deepprompt.tasks.classification.tasks import get_task

IGNORE = list(PLUMBING_KEYS)
OURS = "ptuning_v2"
SEEDS = (1, 2, 3)
FINETUNE_TASKS = ("sst2", "boolq")  # target: ptuning_v2 within 1.0 point of finetune
FINETUNE_MARGIN = 1.0
PREFIX = "prefix"  # target: ptuning_v2 not below peft prefix on any task
WHICH = (("best", "best epoch (max over epochs on dev: optimistic)"), ("last", "last epoch"))


def majority(data_dir: str, task_name: str) -> dict:
    task = get_task(task_name)
    path = resolve_split_file(data_dir, task.local_folder, task.local_files["validation"])
    reader = read_tsv if task.local_format == "tsv" else read_jsonl
    counts = Counter(task.label_to_id(row[task.label_field]) for _, row in reader(path))
    label, count = max(sorted(counts.items()), key=lambda kv: kv[1])
    n = sum(counts.values())
    return {
        "task": task_name,
        "n_dev": n,
        "majority_label": task.label_names[label],
        "majority": 100 * count / n,
    }


def per_seed(runs: pd.DataFrame, tuned: pd.DataFrame, metric: str) -> dict[tuple[str, str], pd.DataFrame]:
    """(task, method) -> the runs at the tuned lr, indexed by seed, with best/last scores in %."""
    out = {}
    if not (tuned["tuned"].all() and (tuned["setting"] == "default").all()):
        raise SystemExit("seed_tests.py expects tuned.csv rows that differ by lr only (setting 'default')")
    for row in tuned.to_dict("records"):
        sel = runs[
            (runs["task"] == row["task"])
            & (runs["method"] == row["method"])
            & (runs["setting"] == f"lr={row['chosen']}")
            & (runs["status"] == "finished")
        ]
        frame = pd.DataFrame(
            {
                "seed": sel["seed"].astype(int),
                "best": sel[f"best_{metric}"] * 100,
                "last": sel[f"last_{metric}"] * 100,
                "lr": str(row["chosen"]),
                "trainable": int(row["trainable"]),
            }
        )
        out[(row["task"], row["method"])] = frame.set_index("seed").sort_index()
    return out


def build(groups: dict[tuple[str, str], pd.DataFrame], majorities: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for (task, method), group in sorted(groups.items()):
        maj = majorities[task]["majority"]
        row = {
            "task": task,
            "method": method,
            "lr": group["lr"].iloc[0],
            "trainable": group["trainable"].iloc[0],
            "seeds": " ".join(map(str, group.index)),
            "missing_seeds": " ".join(str(s) for s in SEEDS if s not in group.index),
            "majority": maj,
        }
        for which, _ in WHICH:
            a = group[which]
            row |= {f"{which}_s{s}": a.get(s, math.nan) for s in SEEDS}
            row |= {f"{which}_mean": a.mean(), f"{which}_std": a.std(ddof=1)}
            row[f"{which}_minus_majority"] = a.mean() - maj
            if method != OURS and (task, OURS) in groups:
                ours = groups[(task, OURS)][which]
                row |= {f"{which}_ours_{k}": v for k, v in versus(ours, a).items()}
        rows.append(row)
    return pd.DataFrame(rows)


def _f(x, fmt="{:.2f}") -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def markdown(table: pd.DataFrame, majorities: dict[str, dict], metric: str, sources: list[str]) -> str:
    out = [
        "# Issue 3 method comparison, seed by seed (lr tuned on seed 1)",
        "",
        f"Generated by `seed_tests.py` from {', '.join(f'`{s}`' for s in sources)} and `tuned.csv` (the lr chosen"
        f" on seed 1 by `deepprompt-report --tuned lr`). `{metric}` in %, mean ± std (ddof=1) over seeds;"
        " diff = P-Tuning v2 minus the other method (difference of means); SE = sqrt(s_a²/n_a + s_b²/n_b);"
        " p = Welch's two-sided t-test, no correction for the many comparisons (– where both stds are 0);"
        " per-seed diffs pair runs with the same seed number.",
        "",
        "## Majority class of each dev set (the score of predicting one class for every example)",
        "",
    ]
    out += _table(
        ["task", "dev examples", "one example (points)", "majority label", "majority rate"],
        [
            [
                m["task"],
                str(m["n_dev"]),
                f"{100 / m['n_dev']:.2f}",
                m["majority_label"],
                f"{m['majority']:.2f}",
            ]
            for m in majorities.values()
        ],
    )
    missing = table[table["missing_seeds"] != ""]
    out += ["", "## Seeds at the tuned lr", ""]
    if missing.empty:
        out.append(f"Every task × method has seeds {', '.join(map(str, SEEDS))} at its tuned lr.")
    else:
        out += [
            f"- {r['task']} {r['method']}: seeds {r['missing_seeds']} missing"
            for r in missing.to_dict("records")
        ]
    for which, label in WHICH:
        out += ["", f"## Per seed at the tuned lr, {label}", ""]
        head = ["task", "method", "lr", "trainable"] + [f"seed {s}" for s in SEEDS]
        head += ["mean ± std", "mean − majority"]
        rows = []
        for r in table.to_dict("records"):
            cells = [r["task"], r["method"], r["lr"], f"{r['trainable']:,}"]
            cells += [_f(r[f"{which}_s{s}"]) for s in SEEDS]
            cells += [
                f"{r[f'{which}_mean']:.2f} ± {r[f'{which}_std']:.2f}",
                _f(r[f"{which}_minus_majority"], "{:+.2f}"),
            ]
            rows.append(cells)
        out += _table(head, rows)
    for which, label in WHICH:
        out += ["", f"## P-Tuning v2 minus each method, {label}", ""]
        head = [
            "task",
            "method",
            "P-Tuning v2",
            "method",
            "diff",
            "SE",
            "diff/SE",
            "Welch p",
            "per-seed diffs",
        ]
        head += ["seeds above"]
        rows = []
        for r in table[table["method"] != OURS].to_dict("records"):
            if f"{which}_ours_diff" not in r or pd.isna(r[f"{which}_ours_diff"]):
                continue
            ours = table[(table["task"] == r["task"]) & (table["method"] == OURS)].iloc[0]
            rows.append(
                [
                    r["task"],
                    r["method"],
                    f"{ours[f'{which}_mean']:.2f} ± {ours[f'{which}_std']:.2f}",
                    f"{r[f'{which}_mean']:.2f} ± {r[f'{which}_std']:.2f}",
                    _f(r[f"{which}_ours_diff"], "{:+.2f}"),
                    _f(r[f"{which}_ours_se"]),
                    _f(r[f"{which}_ours_diff_over_se"], "{:+.1f}"),
                    _f(r[f"{which}_ours_welch_p"], "{:.3f}") or "–",
                    r[f"{which}_ours_paired_diffs"],
                    r[f"{which}_ours_seeds_above"],
                ]
            )
        out += _table(head, rows)
    out += ["", "## The issue's targets", ""]
    head = ["target", "task", "epoch", "P-Tuning v2 − other", "SE", "met", "missed by", "missed by / SE"]
    rows = []
    for which, _ in WHICH:
        for task in FINETUNE_TASKS:
            r = table[(table["task"] == task) & (table["method"] == "finetune")].iloc[0]
            gap = -r[f"{which}_ours_diff"]
            met = gap <= FINETUNE_MARGIN
            rows.append(
                [
                    f"finetune − P-Tuning v2 ≤ {FINETUNE_MARGIN:.1f}",
                    task,
                    which,
                    f"{r[f'{which}_ours_diff']:+.2f}",
                    f"{r[f'{which}_ours_se']:.2f}",
                    "yes" if met else "no",
                    "" if met else f"{gap - FINETUNE_MARGIN:.2f}",
                    "" if met else f"{(gap - FINETUNE_MARGIN) / r[f'{which}_ours_se']:.1f}",
                ]
            )
        for r in table[table["method"] == PREFIX].to_dict("records"):
            diff = r[f"{which}_ours_diff"]
            rows.append(
                [
                    "P-Tuning v2 ≥ peft prefix",
                    r["task"],
                    which,
                    f"{diff:+.2f}",
                    f"{r[f'{which}_ours_se']:.2f}",
                    "yes" if diff >= 0 else "no",
                    "" if diff >= 0 else f"{-diff:.2f}",
                    "" if diff >= 0 else f"{-diff / r[f'{which}_ours_se']:.1f}",
                ]
            )
    out += _table(head, rows)
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--metric", default="val/acc")
    parser.add_argument("--data-dir", default=os.environ.get("DEEPPROMPT_DATA_DIR"))
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("--data-dir (or DEEPPROMPT_DATA_DIR) must name the folder with the tasks' dev sets")
    out = Path(args.out)
    tuned = pd.read_csv(out / "tuned.csv", dtype={"chosen": str})
    groups = per_seed(collect_runs(args.dirs, ignore=IGNORE), tuned, args.metric)
    tasks = sorted({task for task, _ in groups})
    majorities = {task: majority(args.data_dir, task) for task in tasks}
    table = build(groups, majorities)
    table.to_csv(out / "seed_tests.csv", index=False, float_format="%.6g")
    text = markdown(table, majorities, args.metric, args.dirs)
    (out / "seed_tests.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
