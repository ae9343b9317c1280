"""What the figures carry: the majority-class baseline recorded by runs, the overview of tasks x methods."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from deepprompt.report.cli import main
from deepprompt.runs.baselines import majority_baseline
from tests.report.synthetic import write_tree

MAJORITY = {"rte": 0.527, "cb": 0.5}


class _Split:
    def __init__(self, labels):
        self.labels = labels


class _Data:
    def __init__(self, train, val):
        self._splits = {"train": _Split(train), "validation": _Split(val)}

    def dataset(self, split):
        return self._splits[split]


def test_majority_baseline_is_the_training_majority_scored_on_validation():
    data = _Data(train=[1, 1, 1, 0], val=[0, 0, 1, 2])  # majority 1 in train; 1 of 4 in validation
    baseline = majority_baseline(data, num_labels=3)
    assert baseline["val/acc"] == pytest.approx(0.25)
    assert baseline["val/f1_macro"] == pytest.approx((2 * 0.25 / 1.25) / 3)
    assert majority_baseline(object()) == {}  # no per-example labels (QA, NER, generation): no line


def test_report_carries_the_majority_line_and_an_overview(tmp_path):
    root = write_tree(tmp_path / "runs")
    for path in Path(root).rglob("metrics.json"):
        summary = json.loads(path.read_text())
        if summary.get("status") == "finished":
            summary["baselines"] = {"majority": {"val/acc": MAJORITY[summary["task"]]}}
            path.write_text(json.dumps(summary))
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out)]) == 0
    with (out / "report.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["task"]: float(r["majority"]) for r in rows if r["majority"]} == MAJORITY
    assert (out / "overview.png").stat().st_size > 10_000
    assert "| task | method | backbone | setting |" in (out / "report.md").read_text()
