"""deepprompt-report --tuned KEY [--reference METHOD]: the value chosen on seed 1, then mean ± std at that value."""

from __future__ import annotations

import csv
import itertools
import json
import statistics
from pathlib import Path

import pandas as pd
import pytest

from deepprompt.report import collect_runs
from deepprompt.report.cli import main
from deepprompt.report.table import format_score
from deepprompt.report.tuned import TUNED_COLUMNS, format_diff, tuned_markdown, tuned_table

_jobs = itertools.count()


def write_run(
    root: Path,
    task: str,
    method: str,
    seed: int,
    acc: float,
    lr: str | None = None,
    last: float | None = None,
    loss: float = 0.5,
    status: str = "finished",
    extra: tuple[str, ...] = (),
) -> None:
    """One metrics.json under root/<n>; ``lr=None``: a run whose setting has no lr."""
    overrides = ["backbone=minilm", f"data={task}", f"method={method}", *extra, f"seed={seed}"]
    if lr is not None:
        overrides.insert(3, f"method.lr={lr}")
    summary = {"status": status, "task": task, "method": method, "backbone": "minilm", "seed": seed}
    summary["overrides"] = overrides
    if status == "finished":
        last = acc - 0.02 if last is None else last
        summary |= {
            "best": {"epoch": 2, "val/acc": acc, "val/loss": loss},
            "last": {"epoch": 4, "val/acc": last, "val/loss": loss + 0.1},
            "params": {"trainable": 1000 if method != "finetune" else 22_000_000, "trainable_share": 0.01},
            "wall_time_s": 10.0,
        }
    else:
        summary["error"] = "RuntimeError: CUDA out of memory"
    run_dir = root / str(next(_jobs))
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(summary))


# rte, ptuning_v2: seed 1 picks 1e-2 (0.72), although 2e-2 has the better mean over its (extra) seeds
PT_RTE = {"5e-3": {1: 0.70}, "1e-2": {1: 0.72, 2: 0.68, 3: 0.66}, "2e-2": {1: 0.71, 2: 0.80, 3: 0.80}}
PT_RTE_LAST = {1: 0.70, 2: 0.60, 3: 0.65}  # last-epoch scores at 1e-2
# rte, finetune: an exact seed-1 tie between 1e-4 and 3e-5 -> 3e-5 (numerically lower, though "1e-4" < "3e-5")
FT_RTE = {"1e-4": {1: 0.75, 2: 0.70}, "3e-5": {1: 0.75, 2: 0.77, 3: 0.76}}
# cb, finetune: a grid; cb, ptuning_v2: no lr in the setting (the method's default rate), seeds 1 and 2
FT_CB = {"1e-5": {1: 0.80}, "2e-5": {1: 0.85, 2: 0.83, 3: 0.87}}
PT_CB = {1: 0.90, 2: 0.86}


@pytest.fixture(scope="module")
def grid_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("grid")
    for method, task, grid in (
        ("ptuning_v2", "rte", PT_RTE),
        ("finetune", "rte", FT_RTE),
        ("finetune", "cb", FT_CB),
    ):
        for lr, seeds in grid.items():
            for seed, acc in seeds.items():
                last = PT_RTE_LAST[seed] if (method, task, lr) == ("ptuning_v2", "rte", "1e-2") else None
                write_run(root, task, method, seed, acc, lr=lr, last=last)
    write_run(root, "rte", "ptuning_v2", 4, 0.0, lr="1e-2", status="failed")  # a failure at the chosen value
    for seed, acc in PT_CB.items():
        write_run(root, "cb", "ptuning_v2", seed, acc)
    return root


@pytest.fixture(scope="module")
def runs(grid_tree):
    return collect_runs([grid_tree])


@pytest.fixture(scope="module")
def tuned(runs):
    return tuned_table(runs, "lr", "val/acc", reference="finetune")


def _row(tuned, task, method, is_tuned=True):
    rows = tuned[(tuned.task == task) & (tuned.method == method) & (tuned.tuned == is_tuned)]
    assert len(rows) == 1, f"{task} {method}: {len(rows)} rows"
    return rows.iloc[0]


def test_selection_by_seed_one_not_by_best_mean(tuned):
    row = _row(tuned, "rte", "ptuning_v2")
    assert row.chosen == "1e-2" and row.grid == "5e-3 1e-2 2e-2"
    assert row.select_seed == 1 and row.select_score == pytest.approx(0.72)
    assert row.setting == "default"  # the setting without lr


def test_mean_std_over_the_chosen_value_only(tuned):
    row = _row(tuned, "rte", "ptuning_v2")
    best, last = list(PT_RTE["1e-2"].values()), list(PT_RTE_LAST.values())
    assert row.n_seeds == 3 and row.seeds == "1 2 3" and row.n_failed == 1
    assert row.best_mean == pytest.approx(statistics.mean(best), abs=1e-12)
    assert row.best_std == pytest.approx(statistics.stdev(best), abs=1e-12)
    assert row.last_mean == pytest.approx(statistics.mean(last), abs=1e-12)
    assert row.last_std == pytest.approx(statistics.stdev(last), abs=1e-12)
    assert row.trainable == 1000 and row.trainable_share == pytest.approx(0.01)


def test_tie_goes_to_the_lower_numeric_value(tuned):
    row = _row(tuned, "rte", "finetune")
    assert row.chosen == "3e-5" and row.grid == "3e-5 1e-4"
    assert row.best_mean == pytest.approx(statistics.mean(FT_RTE["3e-5"].values()), abs=1e-12)


def test_loss_metric_lower_wins(tmp_path):
    write_run(tmp_path, "rte", "lora", 1, 0.80, lr="1e-3", loss=0.50)
    write_run(tmp_path, "rte", "lora", 1, 0.70, lr="1e-2", loss=0.40)
    runs = collect_runs([tmp_path])
    assert tuned_table(runs, "lr", "val/acc").chosen.tolist() == ["1e-3"]
    by_loss = tuned_table(runs, "lr", "val/loss")
    assert by_loss.chosen.tolist() == ["1e-2"] and by_loss.best_mean.tolist() == [pytest.approx(0.40)]


def test_lowest_seed_when_there_is_no_seed_one(tmp_path):
    write_run(tmp_path, "rte", "lora", 2, 0.60, lr="1e-3")
    write_run(tmp_path, "rte", "lora", 2, 0.65, lr="1e-2")
    write_run(tmp_path, "rte", "lora", 3, 0.90, lr="1e-3")
    row = tuned_table(collect_runs([tmp_path]), "method.lr").iloc[0]
    assert (row.chosen, row.select_seed, row.n_seeds) == ("1e-2", 2, 1)


def test_run_missing_key_is_its_own_group(tuned, tmp_path):
    row = _row(tuned, "cb", "ptuning_v2", is_tuned=False)
    assert row.chosen == "–" and row.grid == "" and pd.isna(row.select_seed)
    assert row.n_seeds == 2 and row.best_mean == pytest.approx(statistics.mean(PT_CB.values()), abs=1e-12)
    # the same method and base setting with and without lr: two rows, two matrix lines
    write_run(tmp_path, "rte", "lora", 1, 0.60, lr="1e-3")
    write_run(tmp_path, "rte", "lora", 1, 0.70)
    both = tuned_table(collect_runs([tmp_path]), "lr")
    assert both[["setting", "tuned", "chosen"]].values.tolist() == [
        ["default", True, "1e-3"],
        ["default", False, "–"],
    ]
    md = tuned_markdown(both, "val/acc", "lr")
    assert "| lora | default | 60.0 (lr 1e-3, 1 seed) |" in md
    assert "| lora | default (lr not set) | 70.0 (lr –, 1 seed) |" in md


def test_reference_difference(tuned):
    pt, ft = _row(tuned, "rte", "ptuning_v2"), _row(tuned, "rte", "finetune")
    assert pt.reference == "finetune"
    assert pt.best_diff == pytest.approx(pt.best_mean - ft.best_mean, abs=1e-12)
    assert pt.last_diff == pytest.approx(pt.last_mean - ft.last_mean, abs=1e-12)
    assert format_diff(pt.best_diff, "val/acc") == "−7.3"  # 68.7 - 76.0
    assert format_diff(0.012, "val/acc") == "+1.2" and format_diff(-0.0001, "val/acc") == "±0.0"
    cb = _row(tuned, "cb", "ptuning_v2", is_tuned=False)  # the untuned row still compares to finetune on cb
    assert cb.best_diff == pytest.approx(statistics.mean(PT_CB.values()) - 0.85, abs=1e-12)
    assert ft.best_diff == 0.0
    assert list(tuned_table(pd.DataFrame(), "lr").columns) == TUNED_COLUMNS


def test_markdown_matrix(tuned):
    md = tuned_markdown(tuned, "val/acc", "lr", reference="finetune")
    assert md.startswith("## Tuned comparison (lr chosen on seed 1)\n")
    best = md.split("### Best epoch", 1)[1].split("### Last epoch", 1)[0]
    assert "| method | setting | cb | rte | mean over tasks |" in best
    assert (
        "| finetune (reference) | default | 85.0 ± 2.0 (lr 2e-5, 3 seeds) | 76.0 ± 1.0 (lr 3e-5, 3 seeds) | 80.5 |"
        in best
    )
    pt_cell = format_score(
        statistics.mean(PT_RTE["1e-2"].values()), statistics.stdev(PT_RTE["1e-2"].values()), ""
    )
    assert pt_cell == "68.7 ± 3.1"
    assert (
        f"| ptuning_v2 | default | – | {pt_cell} (−7.3) (lr 1e-2, 3 seeds, 1 failed) | 68.7 (−7.3) (1/2 tasks) |"
        in best
    )
    assert (
        "| ptuning_v2 | default (lr not set) | 88.0 ± 2.8 (+3.0) (lr –, 2 seeds) | – | 88.0 (+3.0) (1/2 tasks) |"
        in best
    )
    last = md.split("### Last epoch", 1)[1]
    assert "65.0 ± 5.0 (−9.0) (lr 1e-2, 3 seeds, 1 failed)" in last  # 65.0 vs finetune's 74.0
    # without a reference: no differences, no mean column
    plain = tuned_markdown(tuned.assign(reference=""), "val/acc", "lr")
    assert "mean over tasks" not in plain and "(−" not in plain


def test_cli_writes_tuned_csv_and_section(grid_tree, tmp_path):
    out = tmp_path / "out"
    assert main([str(grid_tree), "--out", str(out), "--tuned", "lr", "--reference", "finetune"]) == 0
    md = (out / "report.md").read_text()
    assert "## Results" in md and "## Tuned comparison (lr chosen on seed 1)" in md
    assert md.index("## Results") < md.index("## Tuned comparison") < md.index("## Failed runs")
    assert "76.0 ± 1.0 (lr 3e-5, 3 seeds)" in md
    with open(out / "tuned.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == TUNED_COLUMNS and len(rows) == 4
    pt = next(r for r in rows if r["task"] == "rte" and r["method"] == "ptuning_v2")
    assert (pt["chosen"], pt["grid"], pt["n_seeds"], pt["seeds"]) == ("1e-2", "5e-3 1e-2 2e-2", "3", "1 2 3")
    assert float(pt["best_mean"]) == pytest.approx(statistics.mean(PT_RTE["1e-2"].values()))
    # without --tuned: neither the section nor tuned.csv
    plain = tmp_path / "plain"
    assert main([str(grid_tree), "--out", str(plain)]) == 0
    assert "Tuned comparison" not in (plain / "report.md").read_text()
    assert not (plain / "tuned.csv").exists()


def test_cli_reference_needs_tuned(grid_tree, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main([str(grid_tree), "--out", str(tmp_path), "--reference", "finetune"])
    assert err.value.code == 2 and "--reference needs --tuned" in capsys.readouterr().err


def test_method_bars_show_the_tuned_value_with_all_its_seeds(grid_tree, tmp_path):
    from deepprompt.report.build import build_report
    from deepprompt.report.plots import tuned_bars

    report = build_report([grid_tree], tmp_path / "out", tuned="lr", reference="finetune")
    bars = tuned_bars(report.tuned, "lr")
    pt = bars[(bars["task"] == "rte") & (bars["method"] == "ptuning_v2")].iloc[0]
    assert pt["setting"] == "lr=1e-2" and pt["n_seeds"] == 3  # the seed-1 choice, not a 1-seed best mean
    assert pt["best_mean"] == pytest.approx(statistics.mean(PT_RTE["1e-2"].values()))
    assert (tmp_path / "out" / "methods_rte.png").is_file()


def test_method_bar_labels_keep_the_rest_of_the_setting():
    """Two tuned settings of one method (prompt dropout 0.1 and 0): the bar that wins must say which it is."""
    import pandas as pd

    from deepprompt.report.plots import tuned_bars
    from deepprompt.report.tuned import MISSING

    tuned = pd.DataFrame(
        {
            "chosen": ["2e-2", "5e-2", MISSING],
            "setting": ["default", "prompt.dropout=0.0", "default"],
            "n_seeds": [3, 3, 1],
            "best_mean": [0.86, 0.87, 0.5],
            "best_std": [0.01, 0.01, None],
        }
    )
    bars = tuned_bars(tuned, "lr")
    assert list(bars["setting"]) == ["lr=2e-2", "prompt.dropout=0.0, lr=5e-2", "default"]
    assert list(bars["std0"]) == [0.01, 0.01, 0.0]
