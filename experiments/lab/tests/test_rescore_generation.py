"""experiments/lab/rescore_generation.py: saved predictions scored again, with WebNLG's subsets."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import rescore_generation  # noqa: E402


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "webnlg_x_s1"
    (run / "predictions").mkdir(parents=True)
    rows = [
        {"hypothesis": "the cat sat on the mat", "references": ["the cat sat on the mat"], "subset": "seen"},
        {"hypothesis": "a dog ran", "references": ["a dog ran home", "the dog ran"], "subset": "unseen"},
    ]
    (run / "predictions" / "test_epoch0.jsonl").write_text("")  # an earlier epoch: not the one read
    (run / "predictions" / "test_epoch2.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return run


def test_last_predictions_takes_the_highest_epoch(tmp_path):
    run = _run(tmp_path)
    (run / "predictions" / "test_epoch10.jsonl").write_text("")
    assert rescore_generation.last_predictions(run).name == "test_epoch10.jsonl"


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR runs Java")
def test_scores_with_subsets(tmp_path):
    pytest.importorskip("pycocoevalcap")
    entry = rescore_generation.score_run(_run(tmp_path))
    scores = entry["scores"]
    assert entry["inputs"] == 2
    assert scores["bleu_seen"] == pytest.approx(100.0) and scores["ter_seen"] == pytest.approx(0.0)
    assert scores["ter_unseen"] > 0 and 0 < scores["meteor"] <= 100 and scores["cider"] > 0
    assert "webnlg_x_s1" in rescore_generation.table([entry])
