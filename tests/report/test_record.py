"""Compact run records (runs.jsonl): a study's reports regenerate from one file instead of its run folders.

The fixture is a slice of a real study's record (CB, full fine-tuning and P-Tuning v2, lr grid on seed 1, seeds 2-3
at the chosen rate); report.csv and tuned.csv beside it are the tables the study committed for those runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from deepprompt.report.build import build_report
from deepprompt.report.collect import collect_runs
from deepprompt.report.seeds import PLUMBING_KEYS  # the ignore keys the record's tables were made with
from deepprompt.report.summaries import load_summaries, write_record

FIXTURES = Path(__file__).parents[1] / "fixtures" / "report"
RECORD = FIXTURES / "runs.jsonl"


def test_report_from_a_record_equals_the_committed_tables(tmp_path):
    report = build_report(
        [RECORD], tmp_path, title="CB, MiniLM", ignore=PLUMBING_KEYS, tuned="lr", reference="finetune"
    )
    for name in ("report.csv", "tuned.csv"):
        got, want = pd.read_csv(tmp_path / name), pd.read_csv(FIXTURES / name)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
    assert len(report.runs) == 11
    tuned = report.tuned.set_index("method")
    assert tuned.loc["ptuning_v2", "chosen"] == "5e-3" and tuned.loc["finetune", "chosen"] == "1e-4"
    assert tuned.loc["finetune", "best_mean"] == pytest.approx(
        (0.7857142686843872 + 0.8214285969734192 + 0.75) / 3
    )


def test_runs_are_named_by_the_record_and_keep_their_history():
    runs = load_summaries([RECORD])
    names = [run.name for run, _ in runs]
    assert names[0] == "cb_finetune_s1_lr1e-4" and len(names) == 11
    assert all(run.parent == FIXTURES for run, _ in runs)
    _, summary = runs[0]
    assert [h["epoch"] for h in summary["history"]] == list(range(summary["epochs"])) and summary[
        "epochs"
    ] > 1
    assert "host" not in summary


def test_a_glob_selects_runs_of_a_record():
    frame = collect_runs([f"{RECORD}:cb_ptuning_v2_s[23]_*"])
    assert sorted(frame["seed"]) == [2, 3] and set(frame["method"]) == {"ptuning_v2"}
    with pytest.raises(FileNotFoundError, match=r"no run in .* matches 'nothing_\*'"):
        collect_runs([f"{RECORD}:nothing_*"])


def test_a_bad_line_names_the_file_and_line(tmp_path):
    bad = tmp_path / "runs.jsonl"
    bad.write_text(RECORD.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(ValueError, match=r"runs.jsonl:2: not a JSON object"):
        collect_runs([bad])
    bad.write_text('{"status": "finished"}\n')
    with pytest.raises(ValueError, match=r'runs.jsonl:1: a run record needs "run" and "status"'):
        collect_runs([bad])
    with pytest.raises(FileNotFoundError, match="no such run record"):
        collect_runs([tmp_path / "missing.jsonl"])


def test_write_record_from_run_folders_gives_the_same_rows(synthetic_tree, tmp_path):
    """Run folders -> runs.jsonl -> the same DataFrame (overrides read from .hydra/ are written into the record)."""
    tree = shutil.copytree(synthetic_tree, tmp_path / "study")
    record = write_record([tree], tree / "runs.jsonl")
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert all(line["overrides"] for line in lines)  # also the runs whose overrides were only in .hydra/
    assert lines[0]["run"].count("/") == 1 and not lines[0]["run"].startswith("/")
    from_folders = collect_runs([tree]).drop(columns="run_dir")
    from_record = collect_runs([record]).drop(columns="run_dir")
    pd.testing.assert_frame_equal(from_folders, from_record)
