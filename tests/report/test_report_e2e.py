"""A real tiny sweep through deepprompt-train, then deepprompt-report on it."""

from __future__ import annotations

import csv

import pytest

from tests.conftest import run_dirs


@pytest.mark.slow
def test_report_on_real_sweep(run_cli, tmp_path):
    run_cli(
        "deepprompt.train",
        "-m",
        "backbone=tiny",
        "debug=limit",
        "extras.print_config=false",
        "extras.record_host=true",  # the report lists hosts only of runs that recorded theirs
        "data=rte",
        "method.prompt.length=2,4",
        "seed=1,2",
    )
    assert len(run_dirs(tmp_path / "outputs")) == 4
    out = tmp_path / "report"
    proc = run_cli("deepprompt.report.cli", str(tmp_path / "outputs"), "--out", str(out))
    assert "| rte | ptuning_v2 | tiny | prompt.length=2 | 2 | 0 |" in proc.stdout
    assert "| rte | ptuning_v2 | tiny | prompt.length=4 | 2 | 0 |" in proc.stdout
    assert "- Runs: 4 (4 finished, 0 failed)" in proc.stdout
    assert "- Hosts: " in proc.stdout and "- Total wall time: " in proc.stdout
    with open(out / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["setting"], r["n_seeds"], r["seeds"]) for r in rows] == [
        ("prompt.length=2", "2", "1 2"),
        ("prompt.length=4", "2", "1 2"),
    ]
    assert all(0.0 <= float(r["best_mean"]) <= 1.0 for r in rows)
    # tiny: 2 layers, hidden 32 -> 2 more prompt tokens = 2 * 2 * 2 * 32 parameters
    assert int(rows[1]["trainable"]) - int(rows[0]["trainable"]) == 256
    assert (out / "length_rte.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (out / "report.md").read_text() == proc.stdout
