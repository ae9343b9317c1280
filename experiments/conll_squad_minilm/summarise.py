"""Issue 4 summary: CoNLL-2003 gaps of the prompt methods to full fine-tuning, dev F1 per epoch, SQuAD per seed.

Reads what COMMAND.txt generated before it and the runs' metrics.json, and writes into --out:

- ``gaps.md`` / ``gaps.csv``: from the ``report.csv`` of ``conll03_epochs_{test,val}_f1`` and
  ``conll03_variants_{test,val}_f1`` (score at the best dev epoch, mean over seeds): every prompt-method setting
  minus full fine-tuning at 5, 15 and 30 epochs (as many seeds as were run), in F1 points, and whether the
  issue's target (test F1 of P-Tuning v2 within 2 points of full fine-tuning) is met;
- ``history.md`` / ``history.csv``: for every CoNLL-2003 run below --runs, the dev F1 after some epochs (history in
  metrics.json), the best dev epoch (1-based) of how many, whether it is the last epoch (dev F1 still rising at the
  end) and the dev F1 gained over the last three epochs; ``history_epochs.csv``: dev and test F1 after every epoch
  of every run;
- ``squad_seeds.md`` / ``squad_seeds.csv``: every SQuAD run below --runs (article split of the dev set, questions
  evaluated, F1 and EM after each epoch and at the best epoch), the per-seed numbers behind squad_val_*/.

    PYTHONPATH=src python experiments/results/issue4_conll_squad/issue4_summary.py \
        --results experiments/results/issue4_conll_squad \
        --runs experiments/results/minilm_h100_runs/issue4 experiments/results/minilm_h100_runs/issue4_long \
        --out experiments/results/issue4_conll_squad/summary
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from deepprompt.report.collect import load_summaries

TARGET = 2.0  # points of test F1 (issue 4)
REFERENCE = "finetune"
METRICS = {"test/f1": "test_f1", "val/f1": "val_f1"}
SHOWN_EPOCHS = (1, 5, 10, 14, 15, 20, 25, 28, 29, 30)  # columns of history.md (history.csv has every epoch)


def _setting_parts(setting: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in str(setting).split(", ") if "=" in part)


def _epochs(setting: str) -> int:
    """``trainer.max_epochs`` of a setting (both reports keep it in the setting)."""
    value = _setting_parts(setting).get("trainer.max_epochs")
    if value is None:
        raise ValueError(f"setting {setting!r} has no trainer.max_epochs")
    return int(value)


def _fmt(value: float, std: float = math.nan, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    value = round(value, 1) + 0.0  # no "-0.0"
    text = f"{value:+.1f}" if signed else f"{value:.1f}"
    return text if math.isnan(std) else f"{text} ± {std:.1f}"


def _load_report(results: Path, folder: str) -> pd.DataFrame:
    frame = pd.read_csv(results / folder / "report.csv")
    frame["source"] = f"{folder}/report.csv"
    frame["epochs"] = frame["setting"].map(_epochs)
    for col in ("best_mean", "best_std"):
        frame[col] = frame[col] * 100
    return frame


def _gap_row(metric: str, table: str, row: pd.Series, ref: pd.Series) -> dict:
    gap = row["best_mean"] - ref["best_mean"]
    return {
        "metric": metric,
        "table": table,
        "method": row["method"],
        "epochs": int(row["epochs"]),
        "setting": row["setting"],
        "seeds": int(row["n_seeds"]),
        "score": row["best_mean"],
        "score_std": row["best_std"],
        "source": row["source"],
        "reference": f"{REFERENCE}, {int(ref['epochs'])} epochs",
        "reference_seeds": int(ref["n_seeds"]),
        "reference_score": ref["best_mean"],
        "reference_std": ref["best_std"],
        "reference_source": ref["source"],
        "gap": gap,
        "within_2": bool(gap >= -TARGET),
        "missed_by": max(0.0, -gap - TARGET),
    }


def gaps(results: Path) -> pd.DataFrame:
    """One row per (metric, prompt-method setting, fine-tuning reference); table ``default`` or ``variants``."""
    rows = []
    for metric, suffix in METRICS.items():
        main = _load_report(results, f"conll03_epochs_{suffix}")
        variants = _load_report(results, f"conll03_variants_{suffix}")
        refs = main[main["method"] == REFERENCE].sort_values("epochs")
        for table, frame in (("default", main), ("variants", variants)):
            others = frame[frame["method"] != REFERENCE].sort_values(["method", "epochs", "setting"])
            for _, row in others.iterrows():
                rows.extend(_gap_row(metric, table, row, ref) for _, ref in refs.iterrows())
    return pd.DataFrame(rows)


def _gap_lines(part: pd.DataFrame, with_target: bool) -> list[str]:
    header = "| method | epochs | setting | seeds | score | reference | ref. seeds | ref. score | gap |"
    rule = "|---|---|---|---|---|---|---|---|---|"
    if with_target:
        header += " within 2? | missed by |"
        rule += "---|---|"
    lines = [header, rule]
    for _, r in part.iterrows():
        line = (
            f"| {r['method']} | {r['epochs']} | {r['setting']} | {r['seeds']} | {_fmt(r['score'], r['score_std'])} |"
            f" {r['reference']} | {r['reference_seeds']} | {_fmt(r['reference_score'], r['reference_std'])} |"
            f" {_fmt(r['gap'], signed=True)} |"
        )
        if with_target:
            missed = "–" if r["within_2"] else _fmt(r["missed_by"])
            line += f" {'yes' if r['within_2'] else 'no'} | {missed} |"
        lines.append(line)
    sources = sorted({*part["source"], *part["reference_source"]})
    return [*lines, "", f"Sources: {', '.join(f'`{s}`' for s in sources)}.", ""]


def gaps_markdown(frame: pd.DataFrame) -> str:
    lines = [
        "# Issue 4: CoNLL-2003 entity F1, prompt methods minus full fine-tuning (F1 points)",
        "",
        "Scores (%): mean ± std over seeds of the F1 at the best dev epoch (test is never used for selection), from",
        "the report.csv files named under each table (made by deepprompt-report, COMMAND.txt). gap = score -",
        "reference score. References: full fine-tuning (lr 5e-5) at 5, 15 and 30 epochs (`ref. seeds`: how many seeds;",
        "one seed has no error bar). Target of the issue: test F1 of P-Tuning v2 (ptuning_v2) within"
        f" {TARGET:g} points of full",
        f"fine-tuning; `missed by` = -gap - {TARGET:g} where the gap is larger; shown for peft prefix too, for comparison.",
        "",
    ]
    titles = {
        "default": "default settings (lr 2e-2, 128 prompt tokens), 5, 15 and 30 epochs",
        "variants": "P-Tuning v2 variants at 15 and 30 epochs (lr, prompt length, prompt dropout, MLP; `seeds`: how many)",
    }
    for metric in METRICS:
        name = "test set" if metric == "test/f1" else "dev set"
        for table, title in titles.items():
            part = frame[(frame["metric"] == metric) & (frame["table"] == table)]
            lines += [f"## {metric} ({name}): {title}", ""]
            lines += _gap_lines(part, with_target=metric == "test/f1")
    return "\n".join(lines)


def _run_row(run: Path, summary: dict) -> tuple[dict, list[dict]] | None:
    if summary.get("task") != "conll2003" or summary.get("status") != "finished":
        return None
    method = summary["config"]["method"]
    prompt = method.get("prompt") or {}
    length = prompt.get("length", method.get("num_virtual_tokens"))
    history = summary["history"]
    best = summary["best"]["epoch"] + 1
    n = len(history)
    val = [h["val/f1"] * 100 for h in history]
    test = [h["test/f1"] * 100 for h in history]
    row = {
        "run": f"{run.parent.name}/{run.name}",
        "method": summary["method"],
        "lr": float(method["lr"]),
        "prompt_length": 0 if length is None else int(length),
        "seed": summary["seed"],
        "epochs": n,
        **{f"dev_e{e}": val[e - 1] if e <= n else math.nan for e in SHOWN_EPOCHS},
        "best_epoch": best,
        "best_is_last": best == n,
        "dev_gain_last3": val[-1] - val[-4] if n >= 4 else math.nan,
        "best_dev": val[best - 1],
        "test_at_best": test[best - 1],
    }
    per_epoch = [
        {"run": row["run"], "epoch": e + 1, "val_f1": v, "test_f1": t}
        for e, (v, t) in enumerate(zip(val, test, strict=True))
    ]
    return row, per_epoch


def history(run_dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, epochs = [], []
    for run, summary in load_summaries(run_dirs):
        loaded = _run_row(run, summary)
        if loaded is not None:
            rows.append(loaded[0])
            epochs.extend(loaded[1])
    rows.sort(key=lambda r: (r["epochs"], r["method"], r["lr"], r["prompt_length"], r["seed"], r["run"]))
    order = {r["run"]: i for i, r in enumerate(rows)}
    epochs.sort(key=lambda e: (order[e["run"]], e["epoch"]))
    return pd.DataFrame(rows), pd.DataFrame(epochs)


def history_markdown(frame: pd.DataFrame, run_dirs: list[Path]) -> str:
    shown = [e for e in SHOWN_EPOCHS if frame["epochs"].max() >= e]
    lines = [
        "# Issue 4: CoNLL-2003 dev entity F1 per epoch (metrics.json history)",
        "",
        f"Runs: {', '.join(f'`{d.as_posix()}`' for d in run_dirs)} (CoNLL-2003 only). Dev F1 (%) after the"
        " given epoch (1-based; `–`: the run has fewer epochs); best = the epoch with the best dev F1 (the"
        " checkpoint the reports use), `last?` = the best epoch is the last one (dev F1 still at its maximum at the"
        " end); gain last 3 = dev F1 at the last epoch minus 3 epochs before; test at best = test F1 at the best"
        " epoch. Every epoch: history_epochs.csv.",
        "",
        "| run | method | lr | prompt | seed | "
        + " | ".join(f"e{e}" for e in shown)
        + " | best / epochs | last? | gain last 3 | test at best |",
        "|" + "---|" * (5 + len(shown) + 4),
    ]
    for _, r in frame.iterrows():
        cells = [_fmt(r[f"dev_e{e}"]) for e in shown]
        lines.append(
            f"| {r['run']} | {r['method']} | {r['lr']:g} | {r['prompt_length'] or '–'} | {r['seed']} | "
            + " | ".join(cells)
            + f" | {r['best_epoch']} / {r['epochs']} | {'yes' if r['best_is_last'] else 'no'} |"
            f" {_fmt(r['dev_gain_last3'], signed=True)} | {_fmt(r['test_at_best'])} |"
        )
    counts = frame.groupby(["epochs", "method"])["best_is_last"].agg(["sum", "count"]).reset_index()
    lines += ["", "Best epoch = last epoch, per number of epochs and method:", ""]
    lines += [
        f"- {r['epochs']} epochs, {r['method']}: {r['sum']} of {r['count']} runs"
        for _, r in counts.iterrows()
    ]
    return "\n".join(lines) + "\n"


def squad(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per finished SQuAD run: the article split, the evaluated questions and F1 / EM after each epoch."""
    rows = []
    for run, summary in load_summaries(run_dirs):
        if summary.get("task") != "squad" or summary.get("status") != "finished":
            continue
        data = summary["config"]["data"]
        best = summary["best"]
        row = {
            "run": f"{run.parent.name}/{run.name}",
            "method": summary["method"],
            "seed": summary["seed"],
            "split_by_article": data.get("split_by_article"),
            "split_seed": data.get("split_seed"),
            "questions": int(best["val/questions"]),
            "epochs": len(summary["history"]),
            "best_epoch": best["epoch"] + 1,
        }
        for h in summary["history"]:
            row[f"f1_e{h['epoch'] + 1}"] = h["val/f1"]
            row[f"em_e{h['epoch'] + 1}"] = h["val/exact_match"]
        row |= {"f1_best": best["val/f1"], "em_best": best["val/exact_match"]}
        rows.append(row)
    rows.sort(key=lambda r: (r["method"], r["seed"], r["run"]))
    return pd.DataFrame(rows)


def squad_markdown(frame: pd.DataFrame) -> str:
    epochs = int(frame["epochs"].max())
    lines = [
        "# Issue 4: SQuAD 1.1 per seed (article split of the DEV set, not the official dev set)",
        "",
        "Only the SQuAD 1.1 dev set is available: it is split by article (`split_by_article` = share of the titles"
        " that train, the others evaluate; sorted titles shuffled with `split_seed`, the same split for every"
        " training seed). F1 and exact match (EM) in %, on the `questions` of the evaluated part, after each epoch"
        " and at the best dev-F1 epoch (from metrics.json).",
        "",
        "| run | method | seed | split_by_article | split_seed | questions | "
        + " | ".join(f"F1 e{e} | EM e{e}" for e in range(1, epochs + 1))
        + " | best epoch | F1 | EM |",
        "|" + "---|" * (6 + 2 * epochs + 3),
    ]
    for _, r in frame.iterrows():
        cells = [f"{_fmt(r[f'f1_e{e}'])} | {_fmt(r[f'em_e{e}'])}" for e in range(1, epochs + 1)]
        lines.append(
            f"| {r['run']} | {r['method']} | {r['seed']} | {r['split_by_article']:g} | {r['split_seed']} |"
            f" {r['questions']} | " + " | ".join(cells) + f" | {r['best_epoch']} | {_fmt(r['f1_best'])} |"
            f" {_fmt(r['em_best'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", type=Path, required=True, help="the folder with the deepprompt-report outputs"
    )
    parser.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="run folders (searched recursively)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    gap_frame = gaps(args.results)
    gap_frame.to_csv(args.out / "gaps.csv", index=False, float_format="%.4f")
    (args.out / "gaps.md").write_text(gaps_markdown(gap_frame))

    runs, per_epoch = history(args.runs)
    table = runs.assign(
        lr=runs["lr"].map(lambda v: f"{v:g}"),
        prompt_length=runs["prompt_length"].map(lambda v: str(v) if v else ""),
    )
    table.to_csv(args.out / "history.csv", index=False, float_format="%.4f")
    per_epoch.to_csv(args.out / "history_epochs.csv", index=False, float_format="%.4f")
    (args.out / "history.md").write_text(history_markdown(runs, args.runs))

    squad_runs = squad(args.runs)
    squad_runs.to_csv(args.out / "squad_seeds.csv", index=False, float_format="%.4f")
    (args.out / "squad_seeds.md").write_text(squad_markdown(squad_runs))
    print(f"wrote gaps, history, history_epochs and squad_seeds (.md/.csv) to {args.out}")


if __name__ == "__main__":
    main()
