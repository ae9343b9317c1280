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


def test_setting_drops_only_the_seed_part():
    assert rescore_generation.setting("e2e_lora_s2_lr5e-3") == "e2e_lora_lr5e-3"
    assert rescore_generation.setting("e2e_finetune_s10") == "e2e_finetune"
    assert rescore_generation.setting("e2e_smollm2_s1") == "e2e_smollm2"


def test_table_over_seeds_gives_mean_and_standard_error_per_setting():
    def entry(run, bleu):
        return {
            "run": run,
            "scores": {"bleu": bleu, "meteor": 40.0, "rouge_l": 60.0, "cider": 2.0, "ter": 50.0},
        }

    entries = [entry("e2e_lora_s1_lr5e-3", 63.0), entry("e2e_lora_s2_lr5e-3", 65.0), entry("e2e_ft_s1", 61.0)]
    text = rescore_generation.table(entries, over_seeds=True)
    # lora: mean 64, std sqrt(2), s.e. 1; the one-seed setting shows its score without an error
    assert "| e2e_lora_lr5e-3 | 2 | 64.0 ± 1.0 | 40.0 ± 0.0 | 60.0 ± 0.0 | 2.00 ± 0.00 | 50.0 ± 0.0 |" in text
    assert "| e2e_ft | 1 | 61.0 | 40.0 | 60.0 | 2.00 | 50.0 |" in text
    assert "| e2e_lora_s2_lr5e-3 | 65.0 |" in text  # the per-run table follows
    assert "±" not in rescore_generation.table(entries)
