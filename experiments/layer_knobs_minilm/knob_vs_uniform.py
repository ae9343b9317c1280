"""Issue 9 knobs: every setting against the uniform one (``setting == default``), seed by seed.

Reads the runs with ``deepprompt.report.collect.collect_runs`` (same settings as ``deepprompt-report`` with the
ignore keys of COMMAND.txt) and writes ``vs_uniform.md`` and ``vs_uniform.csv`` into --out:

- per setting: per-layer prompt lengths and lr multipliers (from the run's config, via deepprompt.prompts.profiles),
  the best-epoch and last-epoch dev score of each seed, mean ± std (ddof=1);
- the difference of means to uniform, its standard error sqrt(s_a^2/n_a + s_b^2/n_b), the ratio of the two and
  Welch's two-sided p-value (scipy); the per-seed differences (same seed number) and how many seeds are above
  uniform. No correction for the multiple comparisons (6 per task on RTE, 7 + 1 on SST-2).

The built-in ignore keys (IGNORE) include ``method.lr``: the knob runs share one base lr, so it is not part
of a setting. Where the runs hold a control at another lr, ``--keep method.lr`` makes the lr part of the
setting and ``--base lr=2e-2`` leaves the shared value out of the names: the knobs and uniform keep their
names (uniform is still ``default``, the reference) and the control reads ``lr=3.3e-2``, a row of its own.
``--versus SETTING OTHER`` (repeatable) adds the same statistics for SETTING against OTHER instead of
uniform (section "Other comparisons" of vs_uniform.md, and versus.csv). Without these options the output
is the same as before they existed.

    PYTHONPATH=src python experiments/results/issue9_knobs_sst2/knob_vs_uniform.py \
        experiments/results/minilm_h100_runs/knobs/rte_* --out experiments/results/issue9_knobs_rte
    PYTHONPATH=src python experiments/results/issue9_knobs_sst2/knob_vs_uniform.py \
        experiments/results/minilm_h100_runs/knobs/sst2_* --out experiments/results/issue9_knobs_sst2 \
        --keep method.lr --base lr=2e-2 --versus layer_lr.profile=geometric lr=3.3e-2
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from deepprompt.prompts.profiles import length_profile, lr_multipliers
from deepprompt.report.collect import collect_runs, format_setting, load_summaries, parse_setting
from deepprompt.report.seeds import PLUMBING_KEYS, versus

IGNORE = [*PLUMBING_KEYS, "method.lr"]
SUMMARIES: dict[str, dict] = {}  # run folder -> metrics.json, from the records or folders given
REFERENCE = "default"


def _profile(run_dir: str) -> tuple[str, str]:
    """(per-layer prompt lengths, per-layer lr multipliers) from the run's resolved config in metrics.json."""
    summary = SUMMARIES.get(str(run_dir)) or json.loads((Path(run_dir) / "metrics.json").read_text())
    method = summary["config"]["method"]
    layers = len(summary["params"]["prompt_per_layer"])
    length = method["prompt"]["length"]
    lengths = length_profile(length, layers) if isinstance(length, dict) else [int(length)] * layers
    mult = lr_multipliers(method.get("layer_lr"), layers)
    mult_text = ",".join(f"{m:g}" for m in (round(x, 3) for x in mult))
    return ",".join(map(str, lengths)), f"{mult_text} (mean {sum(mult) / len(mult):.3f})"


def drop_base(runs: pd.DataFrame, base: list[str]) -> pd.DataFrame:
    """Leave the ``key=value`` parts in ``base`` out of every setting name (``lr=2e-2`` -> ``default``)."""
    if not base:
        return runs
    drop = dict(part.split("=", 1) for part in base)
    runs = runs.copy()
    runs["setting"] = [
        format_setting({k: v for k, v in parse_setting(s).items() if drop.get(k) != v})
        for s in runs["setting"]
    ]
    return runs


def _finished(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs[runs["status"] == "finished"].copy()
    runs["seed"] = runs["seed"].astype(int)
    return runs


def _scores(runs: pd.DataFrame, task: str, setting: str, col: str) -> pd.Series:
    found = runs[(runs["task"] == task) & (runs["setting"] == setting)]
    if found.empty:
        raise SystemExit(f"knob_vs_uniform.py: no finished {task} runs with setting {setting!r}")
    return found.set_index("seed").sort_index()[col] * 100


def compare(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    runs = _finished(runs)
    rows = []
    for (task, setting), group in runs.groupby(["task", "setting"], sort=True):
        group = group.set_index("seed").sort_index()
        lengths, mults = _profile(group["run_dir"].iloc[0])
        row = {
            "task": task,
            "setting": setting,
            "lengths": lengths,
            "lr_multipliers": mults,
            "seeds": " ".join(map(str, group.index)),
        }
        for which in ("best", "last"):
            col = f"{which}_{metric}"
            a = group[col] * 100
            row |= {f"{which}_s{s}": a[s] for s in a.index}
            row |= {f"{which}_mean": a.mean(), f"{which}_std": a.std(ddof=1)}
            if setting == REFERENCE:
                continue
            b = _scores(runs, task, REFERENCE, col)
            row |= {f"{which}_{k}": v for k, v in versus(a, b).items()}
        rows.append(row)
    table = pd.DataFrame(rows)
    order = [REFERENCE] + sorted(s for s in table["setting"].unique() if s != REFERENCE)
    table["_o"] = table["setting"].map(order.index)
    return table.sort_values(["task", "_o"]).drop(columns="_o").reset_index(drop=True)


def compare_pairs(runs: pd.DataFrame, metric: str, pairs: list[list[str]]) -> pd.DataFrame:
    """One row per task, pair (setting, other) and epoch choice: means, stds and :func:`versus`."""
    runs = _finished(runs)
    rows = []
    for task in sorted(runs["task"].unique()):
        for setting, other in pairs:
            for which in ("best", "last"):
                col = f"{which}_{metric}"
                a, b = _scores(runs, task, setting, col), _scores(runs, task, other, col)
                rows.append(
                    {
                        "task": task,
                        "setting": setting,
                        "other": other,
                        "epoch": which,
                        "seeds": " ".join(map(str, a.index)),
                        "setting_mean": a.mean(),
                        "setting_std": a.std(ddof=1),
                        "other_mean": b.mean(),
                        "other_std": b.std(ddof=1),
                    }
                    | versus(a, b)
                )
    return pd.DataFrame(rows)


def _f(x, fmt="{:.2f}") -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _text(x) -> str:
    return x if isinstance(x, str) else ""


def markdown(table: pd.DataFrame, metric: str, sources: list[str], base: list[str] = ()) -> str:
    comparisons = int((table["setting"] != REFERENCE).groupby(table["task"]).sum().max())
    out = [
        "# Issue 9 knobs vs uniform (one lr, length 16 on every layer), seed by seed",
        "",
        f"Generated by `knob_vs_uniform.py` from {len(sources)} run folders; `{metric}` in %, mean ± std (ddof=1)"
        " over seeds; diff = difference of means to uniform; SE = sqrt(s_a²/n_a + s_b²/n_b); p = Welch's"
        f" two-sided t-test (no correction for the {comparisons} comparisons); per-seed diffs pair runs with"
        " the same seed number."
        + (
            f" Setting names leave out {', '.join(f'`{b}`' for b in base)}, shared by uniform and the"
            " knobs; a setting that names another value of that key has that value instead (`default`,"
            " uniform, keeps it)."
            if base
            else ""
        ),
    ]
    seed_cols = sorted(
        {c.split("_s")[1] for c in table.columns if c.startswith("best_s") and c[6:].isdigit()}
    )
    for which, label in (("best", "best epoch (max over epochs on dev: optimistic)"), ("last", "last epoch")):
        for task, group in table.groupby("task", sort=True):
            out += ["", f"## {task}, {label}", ""]
            head = ["setting", "lengths per layer", "lr multipliers per layer"]
            head += [f"seed {s}" for s in seed_cols]
            head += ["mean ± std", "diff", "SE", "diff/SE", "Welch p", "per-seed diffs", "seeds above"]
            out += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
            for r in group.to_dict("records"):
                cells = [r["setting"].replace("|", "\\|"), r["lengths"], r["lr_multipliers"]]
                cells += [_f(r.get(f"{which}_s{s}")) for s in seed_cols]
                cells += [f"{r[f'{which}_mean']:.2f} ± {r[f'{which}_std']:.2f}"]
                cells += [
                    _f(r.get(f"{which}_diff"), "{:+.2f}"),
                    _f(r.get(f"{which}_se")),
                    _f(r.get(f"{which}_diff_over_se"), "{:+.1f}"),
                    _f(r.get(f"{which}_welch_p"), "{:.2f}"),
                    _text(r.get(f"{which}_paired_diffs")),
                    _text(r.get(f"{which}_seeds_above")),
                ]
                out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def markdown_pairs(pairs: pd.DataFrame) -> str:
    out = [
        "",
        "## Other comparisons: setting vs other (instead of vs uniform)",
        "",
        "Same statistics as above (no correction for these comparisons either); diff = mean of setting minus"
        " mean of other; per-seed diffs pair runs with the same seed number.",
        "",
    ]
    head = ["task", "setting", "other", "epoch", "setting mean ± std", "other mean ± std"]
    head += ["diff", "SE", "diff/SE", "Welch p", "per-seed diffs", "seeds above"]
    out += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in pairs.to_dict("records"):
        cells = [r["task"], r["setting"].replace("|", "\\|"), r["other"].replace("|", "\\|"), r["epoch"]]
        cells += [
            f"{r['setting_mean']:.2f} ± {r['setting_std']:.2f}",
            f"{r['other_mean']:.2f} ± {r['other_std']:.2f}",
        ]
        cells += [
            _f(r["diff"], "{:+.2f}"),
            _f(r["se"]),
            _f(r["diff_over_se"], "{:+.1f}"),
            _f(r["welch_p"], "{:.2f}"),
            r["paired_diffs"],
            r["seeds_above"],
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--metric", default="val/acc")
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="KEY",
        help="a built-in ignore key that is part of the setting here (repeatable), e.g. method.lr",
    )
    parser.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting part left out of the setting names (repeatable): e.g. lr=2e-2, with --keep method.lr",
    )
    parser.add_argument(
        "--versus",
        action="append",
        nargs=2,
        default=[],
        metavar=("SETTING", "OTHER"),
        help="also compare SETTING with OTHER, as named in vs_uniform.md (repeatable); writes versus.csv",
    )
    args = parser.parse_args()
    unknown = [key for key in args.keep if key not in IGNORE]
    if unknown:
        parser.error(f"--keep {unknown[0]}: not a built-in ignore key ({', '.join(IGNORE)})")
    if any("=" not in part for part in args.base):
        parser.error("--base takes KEY=VALUE")
    ignore = [key for key in IGNORE if key not in args.keep]
    SUMMARIES.update({str(run): summary for run, summary in load_summaries(args.dirs)})
    runs = drop_base(collect_runs(args.dirs, ignore=ignore), args.base)
    table = compare(runs, args.metric)
    out = Path(args.out)
    table.to_csv(out / "vs_uniform.csv", index=False)
    text = markdown(table, args.metric, args.dirs, args.base)
    if args.versus:
        pairs = compare_pairs(runs, args.metric, args.versus)
        pairs.to_csv(out / "versus.csv", index=False)
        text += markdown_pairs(pairs)
    (out / "vs_uniform.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
