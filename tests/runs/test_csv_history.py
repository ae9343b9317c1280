"""metrics.csv survives a resume: the resumed run's logger appends, and drops rows past the checkpoint."""

from __future__ import annotations

import csv

from deepprompt.callbacks.csv_history import ResumableCSVLogger


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_relaunched_logger_appends_to_the_history_and_drops_rows_past_the_checkpoint(tmp_path):
    first = ResumableCSVLogger(tmp_path, name="csv", version="")
    for step in range(6):
        first.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    first.save()
    path = tmp_path / "csv" / "metrics.csv"
    assert [r["step"] for r in _rows(path)] == ["0", "1", "2", "3", "4", "5"]

    # the relaunched run resumes from the checkpoint of global step 4: rows 4 and 5 are logged again
    second = ResumableCSVLogger(tmp_path, name="csv", version="")
    assert second.experiment.drop_from_step(4) == 2
    for step in range(4, 7):
        second.log_metrics({"train/loss": 2.0, "val/acc": 0.5}, step=step)
    second.save()
    rows = _rows(path)
    assert [r["step"] for r in rows] == ["0", "1", "2", "3", "4", "5", "6"]
    assert rows[0]["train/loss"] == "1.0" and rows[0]["val/acc"] == ""  # a new column: header rewritten
    assert rows[-1]["val/acc"] == "0.5"
