"""`deepprompt-train data=e2e backbone=tiny_llama debug=limit` end to end: metrics.json with val/bleu."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_dirs
from tests.tasks.generation.test_data_metrics import save_tokenizer, write_e2e


@pytest.mark.parametrize(
    "method",
    ["ptuning_v2", *(pytest.param(m, marks=pytest.mark.slow) for m in ("lora", "prefix", "finetune"))],
)
def test_train_e2e_tiny_llama_writes_bleu(run_cli, tmp_path, method):
    data = write_e2e(tmp_path / "data", n_train=40)
    tok = save_tokenizer(tmp_path / "tok")  # offline word-level tokenizer (the default is SmolLM2's GGUF one)
    extra = ["method.target_modules=[q_proj,v_proj]"] if method == "lora" else []
    run_cli(
        "deepprompt.train",
        "data=e2e",
        "backbone=tiny_llama",
        "debug=limit",
        f"method={method}",
        f"backbone.name_or_path={tok}",
        "data.generation.num_beams=2",
        "data.generation.max_new_tokens=8",
        "extras.print_config=false",
        "trainer.max_epochs=1",
        *extra,
        env={"DEEPPROMPT_DATA_DIR": str(data)},
    )
    (run,) = run_dirs(tmp_path / "outputs")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["task"] == "e2e" and metrics["monitor"] == "val/bleu"
    for key in ("val/bleu", "val/rouge_l"):
        assert key in metrics["last"] and key in metrics["best"]
    assert 0.0 <= metrics["last"]["val/bleu"] <= 100.0
    rows = [
        json.loads(line)
        for line in (run / "predictions" / "validation_epoch0.jsonl").read_text().splitlines()
    ]
    assert rows and all({"source", "hypothesis", "references"} <= set(r) and r["references"] for r in rows)
