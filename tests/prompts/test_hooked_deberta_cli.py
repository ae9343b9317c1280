"""`deepprompt-train backbone=tiny_deberta`: a DeBERTa-v3-shaped random backbone trains end to end through the CLI,
and deepprompt-eval's evaluate scores its exported prompts as training did."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_dirs


def test_tiny_deberta_trains_and_its_prompts_evaluate(run_cli, tmp_path, one_thread):
    from deepprompt.eval import evaluate

    run_cli(
        "deepprompt.train", "backbone=tiny_deberta", "debug=limit", "extras.print_config=false", "data=rte",
        "method.prompt.length=4",
    )  # fmt: skip
    [run] = run_dirs(tmp_path / "outputs")
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "finished", summary.get("error")
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    # prompts 4 * 2 layers * 2 (k, v) * 32, head Linear(32, 2): the DeBERTa backbone itself is frozen
    assert summary["params"]["trainable"] == 512 + 66
    saved = json.loads((run / "prompts" / "best" / "prompt_config.json").read_text())
    assert saved["geometry"]["model_type"] == "deberta-v2" and saved["layer_ids"] == [0, 1]

    evaluate(run, str(run / "prompts" / "best"))  # deepprompt-eval's function, in this process
    evaluated = json.loads((run / "eval_best.json").read_text())
    assert evaluated["val/acc"] == pytest.approx(summary["best"]["val/acc"], abs=1e-6)
