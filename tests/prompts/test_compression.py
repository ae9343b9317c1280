"""Prompt compression: the truncated SVD (fast) and ``deepprompt-compress`` on a real tiny training run (slow)."""

from __future__ import annotations

import json

import pytest
import torch

from deepprompt.prompts import DeepPromptConfig, add_deep_prompts
from deepprompt.prompts.compression import compress_encoder, compress_layer_tensors, low_rank, rank_for
from tests.conftest import run_dirs
from tests.prompts import helpers


def test_svd_exact_at_full_rank_and_error_decreases_with_rank():
    torch.manual_seed(0)
    a = torch.randn(12, 20)
    assert torch.allclose(low_rank(a, 12), a, atol=1e-5)
    errors = [float((low_rank(a, r) - a).norm()) for r in range(1, 13)]
    assert all(e1 > e2 for e1, e2 in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 1e-4
    s = torch.linalg.svdvals(a.double())  # Eckart-Young: the error is the tail of the singular values
    assert errors[3] == pytest.approx(float(s[4:].norm()), rel=1e-4)
    assert rank_for(0.5, 12, 20) == 6 and rank_for(0.01, 12, 20) == 1 and rank_for(1.0, 12, 20) == 12


def test_layer_compression_sizes_and_encoder_in_place():
    torch.manual_seed(0)
    kv = 32
    tensors = {0: torch.randn(8, 2 * kv), 1: torch.randn(4, 2 * kv)}
    full, stats = compress_layer_tensors(tensors, 1.0, kv)
    assert (
        all(torch.allclose(full[i], tensors[i], atol=1e-5) for i in tensors) and stats.relative_error < 1e-6
    )
    half, stats = compress_layer_tensors(tensors, 0.5, kv)
    assert stats.ranks == {0: 4, 1: 2}
    assert stats.dense_floats == 2 * (8 * kv + 4 * kv)
    assert stats.factored_floats == 2 * (4 * (8 + kv) + 2 * (4 + kv))
    assert stats.stored_floats == stats.factored_floats  # smaller than dense here
    assert torch.linalg.matrix_rank(half[0][:, :kv]) == 4 and torch.linalg.matrix_rank(half[0][:, kv:]) == 4
    quarter = compress_layer_tensors(tensors, 0.25, kv)[1]
    assert quarter.relative_error > stats.relative_error > 0

    wrapped = add_deep_prompts(
        helpers.tiny_bert(layers=2), DeepPromptConfig(length=[6, 3], reparam="mlp", reparam_hidden=8)
    )
    before = {k: v.detach().clone() for k, v in wrapped.prompt_encoder.layer_tensors().items()}
    st = compress_encoder(wrapped.prompt_encoder, 0.34)
    after = wrapped.prompt_encoder.layer_tensors()
    assert st.ranks == {0: 2, 1: 1}
    assert all(after[i].shape == before[i].shape for i in before)
    assert torch.linalg.matrix_rank(after[0][:, :32].double(), atol=1e-4) == 2


@pytest.mark.slow
def test_train_per_layer_lengths_layer_lr_then_compress_cli(run_cli, tmp_path):
    """A real tiny CLI run with per-layer lengths from the command line, layer-wise lrs logged per group by
    LearningRateMonitor, then ``deepprompt-compress`` writing compression.json/.md with one row per ratio."""
    run_cli(
        "deepprompt.train",
        "backbone=tiny",
        "debug=limit",
        "extras.print_config=false",
        "data=sst2",
        "method.prompt.length=[4,2]",
        "method.layer_lr.profile=linear",
        "+callbacks.lr_monitor._target_=lightning.pytorch.callbacks.LearningRateMonitor",
        "+callbacks.lr_monitor.logging_interval=step",
        "trainer.log_every_n_steps=1",
    )
    [run] = run_dirs(tmp_path / "outputs")
    meta = json.loads((run / "prompts" / "best" / "prompt_config.json").read_text())
    assert meta["lengths"] == {"0": 4, "1": 2} and meta["prompt"]["split_layers"] is True
    logged = "".join(p.read_text().splitlines()[0] for p in run.rglob("metrics.csv"))
    assert "lr-AdamW/prompt_layer_0" in logged and "lr-AdamW/prompt_layer_1" in logged
    proc = run_cli("deepprompt.compress", f"run_dir={run}", "ratios=[1.0,0.5,0.125]")
    result = json.loads((run / "compression.json").read_text())
    rows = result["rows"]
    assert [r["ratio"] for r in rows] == [1.0, 0.5, 0.125]
    assert [r["ranks"] for r in rows] == [{"0": 4, "1": 2}, {"0": 2, "1": 1}, {"0": 1, "1": 1}]
    assert rows[0]["relative_error"] < 1e-5 and rows[1]["relative_error"] > 0
    assert rows[0]["stored_floats"] == rows[0]["dense_floats"] == 2 * (4 + 2) * 32
    assert rows[2]["stored_floats"] < rows[1]["stored_floats"] < rows[0]["stored_floats"]
    # full rank reproduces the trained prompts: the score equals deepprompt-eval's on the same export
    run_cli("deepprompt.eval", f"run_dir={run}")
    evaluated = json.loads((run / "eval_best.json").read_text())
    assert rows[0]["score"] == pytest.approx(evaluated["val/acc"], abs=1e-6)
    assert "| 0.5 | 2,1 |" in (run / "compression.md").read_text()
    assert "| ratio | ranks | stored floats" in proc.stdout
