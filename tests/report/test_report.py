"""deepprompt-report on a synthetic tree of metrics.json files: numbers, settings, failures, files."""

from __future__ import annotations

import csv
import statistics

import pytest

from deepprompt.report import aggregate, collect_runs
from deepprompt.report.cli import main
from deepprompt.report.collect import run_row
from deepprompt.report.settings import setting_parts
from deepprompt.report.table import CSV_COLUMNS, format_score
from tests.report.synthetic import DEPTHS, LENGTHS, METHODS, SEEDS, TASKS, score, trainable

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_RUNS = (
    len(TASKS) * len(METHODS) * len(LENGTHS) * len(SEEDS)
    + len(DEPTHS) * len(SEEDS)
    + len(TASKS) * len(SEEDS)
    + 1
)


@pytest.fixture(scope="module")
def report_dir(cli_report):
    return cli_report


@pytest.fixture(scope="module")
def runs(synthetic_tree):
    return collect_runs([synthetic_tree])


@pytest.fixture(scope="module")
def table(runs):
    return aggregate(runs, "val/acc")


def _row(table, task, method, setting):
    rows = table[(table.task == task) & (table.method == method) & (table.setting == setting)]
    assert len(rows) == 1, f"{task} {method} {setting}: {len(rows)} rows"
    return rows.iloc[0]


def test_setting_drops_seed_selections_and_plumbing():
    overrides = ["backbone=tiny", "debug=limit", "extras.print_config=false", "data=rte", "method=lora"]
    overrides += [
        "method.prompt.length=16",
        "method.lr=0.01",
        "seed=3",
        "+trainer.max_epochs=5",
        "hydra.job.chdir=true",
    ]
    assert setting_parts(overrides) == {"lr": "0.01", "prompt.length": "16", "trainer.max_epochs": "5"}
    assert setting_parts(["seed=1", "data=cb"]) == {}


def test_one_row_per_run_with_columns(runs):
    assert len(runs) == N_RUNS
    for column in ["task", "method", "backbone", "seed", "status", "error", "setting", "best_val/acc"]:
        assert column in runs.columns
    for column in [
        "last_val/acc",
        "best_val/loss",
        "best_epoch",
        "trainable",
        "trainable_share",
        "wall_time_s",
    ]:
        assert column in runs.columns
    assert (runs.status == "finished").sum() == N_RUNS - 1
    # overrides read from .hydra/overrides.yaml where metrics.json has none (odd jobs of the length sweep)
    lengths = runs[runs.run_dir.str.contains("lengths")]
    assert set(lengths.setting) == {f"prompt.length={n}" for n in LENGTHS}
    assert set(runs[runs.run_dir.str.contains("depth")].setting) == {f"prompt.layers={d}" for d in DEPTHS}


def test_mean_std_over_seeds_exact(table):
    assert list(table.columns) == CSV_COLUMNS
    for task in TASKS:
        for method in METHODS:
            for length in LENGTHS:
                row = _row(table, task, method, f"prompt.length={length}")
                best = [score(task, method, s, length) for s in SEEDS]
                last = [round(b - 0.02, 6) for b in best]
                assert row.n_seeds == 3 and row.n_failed == 0 and row.seeds == "1 2 3"
                assert row.best_mean == pytest.approx(statistics.mean(best), abs=1e-12)
                assert row.best_std == pytest.approx(statistics.stdev(best), abs=1e-12)
                assert row.last_mean == pytest.approx(statistics.mean(last), abs=1e-12)
                assert row.last_std == pytest.approx(statistics.stdev(last), abs=1e-12)
                assert row.trainable == trainable(length)
                assert row.prompt_length == length
    row = _row(table, "rte", "ptuning_v2", "prompt.layers=top-2")
    best = [score("rte", "ptuning_v2", s, layers="top-2") for s in SEEDS]
    assert row.best_mean == pytest.approx(statistics.mean(best), abs=1e-12)
    assert row.trainable == trainable(16, "top-2") and row.prompt_layers == "top-2"
    # 3 seeds x (length sweep, depth, reparam, failed) settings per task/method
    assert len(table) == len(TASKS) * len(METHODS) * len(LENGTHS) + len(DEPTHS) + len(TASKS) + 1


def test_failed_run_counted_and_listed(table, report_dir):
    row = _row(table, "rte", "ptuning_v2", "prompt.layers=[5]")
    assert row.n_seeds == 0 and row.n_failed == 1
    md = (report_dir / "report.md").read_text()
    section = md.split("## Failed runs (1)", 1)[1]
    assert "ConfigError: prompt layer 5 out of range for a 2-layer backbone" in section
    assert "more detail" not in md  # first line of the error only
    assert "| rte | ptuning_v2 | prompt.layers=[5] | 1 |" in section


def test_markdown_header_and_numbers(report_dir, table):
    md = (report_dir / "report.md").read_text()
    assert md.startswith("# Synthetic\n")
    assert f"- Runs: {N_RUNS} ({N_RUNS - 1} finished, 1 failed)" in md
    assert "- Hosts: node-a (54 runs), node-b (1 run)" in md
    assert "- Total wall time: 1h 30m 02s" in md  # 54 x 100 s + 1.5 s
    row = _row(table, "rte", "ptuning_v2", "prompt.length=16")
    expected = format_score(row.best_mean, row.best_std, "val/acc")
    assert expected == "69.5 ± 1.8"
    assert (
        "| rte | ptuning_v2 | minilm | prompt.length=16 | 3 | 0 | 74.5K (0.33%) | 69.5 ± 1.8 | 67.5 ± 1.8 |"
        in md
    )
    assert format_score(0.7123, float("nan"), "val/acc") == "71.2"


def test_scores_already_in_percent_are_not_scaled_again():
    # SQuAD's EM/F1 are logged in percent, as the official script computes them; fractions never exceed 1
    assert format_score(62.1063, float("nan"), "val/f1") == "62.1"
    assert format_score(49.4, 1.25, "val/exact_match") == "49.4 ± 1.2"
    assert format_score(0.894, 0.012, "val/f1") == "89.4 ± 1.2"


def test_csv_columns_and_rows(report_dir, table):
    with open(report_dir / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(table)
    row = next(
        r
        for r in rows
        if r["task"] == "cb" and r["method"] == "prompt_tuning" and r["setting"] == "prompt.length=8"
    )
    assert float(row["best_mean"]) == pytest.approx(
        statistics.mean(score("cb", "prompt_tuning", s, 8) for s in SEEDS)
    )
    assert row["trainable"] == str(trainable(8))


def test_pngs_are_valid(report_dir):
    expected = {"length_rte", "length_cb", "depth_rte", "reparam", "methods_rte", "methods_cb", "overview"}
    pngs = {p.stem: p for p in report_dir.glob("*.png")}
    assert set(pngs) == expected
    for path in pngs.values():
        data = path.read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_MAGIC)
    md = (report_dir / "report.md").read_text()
    assert all(f"({name}.png)" in md for name in expected)


def test_plots_only_for_dimensions_present(synthetic_tree, tmp_path):
    # one task, one method, one setting: a table, no figure
    assert main([str(synthetic_tree / "reparam" / "0"), "--out", str(tmp_path)]) == 0
    assert not list(tmp_path.glob("*.png"))
    assert (tmp_path / "report.csv").is_file()


def test_cli_errors(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "no metrics.json" in capsys.readouterr().err


def test_prompt_axes_from_peft_style_configs(tmp_path):
    summary = {
        "status": "finished",
        "task": "rte",
        "method": "prefix",
        "seed": 1,
        "config": {"method": {"name": "prefix", "num_virtual_tokens": 8, "prefix_projection": True}},
        "overrides": ["method=prefix", "method.num_virtual_tokens=8", "method.r=4", "resume=auto", "seed=1"],
    }
    row = run_row(summary, tmp_path / "metrics.json")
    assert (row["prompt_length"], row["prompt_layers"], row["prompt_reparam"]) == (8.0, None, "mlp")
    assert row["setting"] == "num_virtual_tokens=8, r=4"


def test_percent_metrics_are_not_scaled_twice():
    from deepprompt.report.table import format_score

    assert format_score(56.96, float("nan"), "val/bleu") == "57.0"  # BLEU / ROUGE are logged x100
    assert format_score(64.1, 1.25, "val/rouge_l") == "64.1 ± 1.2"
    assert format_score(0.712, float("nan"), "val/acc") == "71.2"
    assert format_score(0.5, float("nan"), "train/loss") == "0.500"


def test_plot_scale_follows_the_table_rule_for_values_already_in_percent():
    """SQuAD's F1 (percent, named like entity F1) is plotted as it is, not x100 again; fractions are x100."""
    import pandas as pd

    from deepprompt.report.plots import _scale

    assert _scale("val/f1", pd.DataFrame({"best_mean": [28.4, 62.4]})) == 1.0
    assert _scale("val/f1", pd.DataFrame({"best_mean": [0.823, 0.868]})) == 100.0
    assert _scale("val/loss", pd.DataFrame({"best_mean": [1.5]})) == 1.0
