"""`python -m deepprompt.bench.ddp_scaling --smoke`: 1 vs 2 processes (gloo, CPU) on the tiny shape."""

from __future__ import annotations

import json

import pytest

from deepprompt.bench import ddp_scaling


@pytest.mark.slow  # spawns 2 fresh Python processes (torch + transformers imports): ~1-2 min on 2 busy cores
def test_smoke_measures_one_and_two_processes(tmp_path, capsys):
    out = tmp_path / "scaling.json"
    rows = ddp_scaling.main(["--smoke", "--methods", "ptuning_v2,finetune", "--out", str(out)])
    assert [(r["method"], r["world_size"]) for r in rows] == [
        ("ptuning_v2", 1),
        ("finetune", 1),
        ("ptuning_v2", 2),
        ("finetune", 2),
    ]
    assert all("error" not in r and r["median_ms"] > 0 and r["samples_per_s"] > 0 for r in rows)
    two = {r["method"]: r for r in rows if r["world_size"] == 2}
    assert two["ptuning_v2"]["scaling_efficiency"] > 0
    # P-Tuning v2 all-reduces its prompts and head only, full fine-tuning every weight
    assert two["ptuning_v2"]["allreduce_bytes"] < two["finetune"]["allreduce_bytes"] / 10
    saved = json.loads(out.read_text())
    assert saved["env"]["args"]["device"] == "cpu" and len(saved["rows"]) == 4
    assert "| method | devices |" in capsys.readouterr().out


def test_cuda_request_without_gpus_fails_clearly(monkeypatch):
    monkeypatch.setattr(ddp_scaling.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs as many GPUs"):
        ddp_scaling.main(["--device", "cuda", "--world-sizes", "1,2"])
