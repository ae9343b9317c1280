"""Prompt-only checkpoints: round trip onto a fresh backbone, file size, mismatch and corruption errors."""

from __future__ import annotations

import json
import re

import pytest
import torch

from deepprompt.errors import PromptMismatchError
from deepprompt.prompts import DeepPromptConfig, DeepPromptModel, add_deep_prompts, load_prompts, save_prompts
from deepprompt.prompts.io import CONFIG, WEIGHTS

HEADER_SLACK = 2048  # safetensors JSON header + alignment, generously


def _trained(tiny, kind, attn="sdpa", reparam="none", prompt_layers="all", m=4, **build_kw):
    """A prompted model whose prompts and head are not at their initial values."""
    wrapped = add_deep_prompts(
        tiny.build(kind, attn, seed=0, **build_kw),
        DeepPromptConfig(length=m, layers=prompt_layers, reparam=reparam, reparam_hidden=16, dropout=0.0),
    )
    with torch.no_grad():
        for p in wrapped.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    return wrapped.eval()


def _fresh(tiny, kind, wrapped, attn="sdpa"):
    """Same backbone weights, different object; the head (if any) deliberately different."""
    fresh = tiny.build(kind, attn, seed=123, layers=wrapped.geometry.num_layers)
    heads = tuple(f"{name}." for name in wrapped.head_names)
    backbone = {k: v for k, v in wrapped.model.state_dict().items() if not k.startswith(heads)}
    missing, unexpected = fresh.load_state_dict(backbone, strict=False)
    assert not unexpected and all(k.startswith(heads) for k in missing)
    return fresh


def _outputs(tiny, model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return tiny.main_output(out), out.hidden_states[-1]


# 10. round trip ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind,reparam,layers,attn",
    [
        ("bert", "none", "all", "sdpa"),
        ("bert-cls", "mlp", "all", "eager"),
        ("roberta-cls", "none", [0, 2], "sdpa"),
        ("roberta", "mlp", "top-2", "sdpa"),
        ("llama", "none", "all", "sdpa"),
    ],
)
def test_round_trip_onto_fresh_backbone(tiny, tmp_path, kind, reparam, layers, attn):
    wrapped = _trained(tiny, kind, attn, reparam=reparam, prompt_layers=layers, layers=3)
    ids, mask = tiny.batch([6, 3, 5])
    expected = _outputs(tiny, wrapped, ids, mask)

    extra = {"label_map": torch.arange(3)}
    save_prompts(wrapped, tmp_path, extra=extra)
    fresh = _fresh(tiny, kind, wrapped, attn)
    if kind.endswith("-cls"):  # the fresh head differs until the saved one is loaded
        saved_head = wrapped.head_state_dict()
        assert saved_head and all(
            not torch.equal(v, fresh.state_dict()[k]) for k, v in saved_head.items() if v.is_floating_point()
        )
    loaded, loaded_extra = load_prompts(fresh, tmp_path)

    assert isinstance(loaded, DeepPromptModel) and loaded.model is fresh
    assert loaded.prompt_encoder.reparam == "none"  # MLP folded away
    assert loaded.prompt_encoder.layer_ids == wrapped.prompt_encoder.layer_ids
    assert torch.equal(loaded_extra["label_map"], extra["label_map"])
    got = _outputs(tiny, loaded.eval(), ids, mask)
    for a, b in zip(got, expected, strict=True):
        assert (a - b).abs().max().item() <= 1e-6

    # also onto an existing DeepPromptModel of the same shape
    other = add_deep_prompts(_fresh(tiny, kind, wrapped, attn), DeepPromptConfig(length=4, layers=layers))
    refilled, _ = load_prompts(other, tmp_path)
    assert refilled is other
    for a, b in zip(_outputs(tiny, refilled.eval(), ids, mask), expected, strict=True):
        assert (a - b).abs().max().item() <= 1e-6


def test_saved_without_head(tiny, tmp_path):
    wrapped = add_deep_prompts(
        tiny.build("bert-cls"), DeepPromptConfig(length=4, dropout=0.0), train_head=False
    )
    save_prompts(wrapped, tmp_path)
    meta = json.loads((tmp_path / CONFIG).read_text())
    assert meta["head_names"] == []
    fresh = _fresh(tiny, "bert-cls", wrapped)
    with torch.no_grad():
        fresh.classifier.weight.add_(1.0)  # a different head, which loading must leave alone
    loaded, extra = load_prompts(fresh, tmp_path)
    assert extra == {} and loaded.head_names == []
    assert torch.equal(
        loaded.model.classifier.weight, wrapped.model.classifier.weight + 1.0
    )  # head not carried
    assert not loaded.model.classifier.weight.requires_grad


@pytest.mark.parametrize("m", [1, 8])
@pytest.mark.parametrize("with_head", [False, True])
def test_file_is_small(tiny, tmp_path, m, with_head):
    wrapped = _trained(tiny, "bert-cls", reparam="mlp", m=m, layers=3)
    if not with_head:
        wrapped.head_names = []
    save_prompts(wrapped, tmp_path)
    prefix_bytes = m * 3 * 2 * 32 * 4  # m x (L * 2 * hidden) float32, MLP folded away
    head_bytes = (32 * 3 + 3) * 4 if with_head else 0
    size = (tmp_path / WEIGHTS).stat().st_size
    assert prefix_bytes + head_bytes <= size <= prefix_bytes + head_bytes + HEADER_SLACK
    backbone_bytes = sum(p.numel() for p in wrapped.model.base_model.parameters()) * 4
    assert size < backbone_bytes / 10
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


# mismatches --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build_kw,field",
    [
        ({"layers": 3}, "num_layers"),
        ({"hidden": 64}, "hidden_size"),
        ({"hidden": 64, "heads": 8}, "num_kv_heads"),
    ],
)
def test_other_backbone_shape_is_rejected(tiny, tmp_path, build_kw, field):
    wrapped = _trained(tiny, "bert")  # 2 layers, hidden 32, 4 heads
    save_prompts(wrapped, tmp_path)
    other = tiny.build("bert", **build_kw)
    with pytest.raises(PromptMismatchError, match=field) as info:
        load_prompts(other, tmp_path)
    assert "saved" in str(info.value) and "backbone" in str(info.value)
    with pytest.raises(PromptMismatchError, match=field):
        load_prompts(add_deep_prompts(tiny.build("bert", **build_kw), DeepPromptConfig(length=4)), tmp_path)


def test_other_prompt_length_in_existing_model_is_rejected(tiny, tmp_path):
    save_prompts(_trained(tiny, "bert", m=4), tmp_path)
    target = add_deep_prompts(tiny.build("bert"), DeepPromptConfig(length=6))
    with pytest.raises(PromptMismatchError, match=r"shape \(4, 128\).*\(6, 128\)"):
        load_prompts(target, tmp_path)


def test_other_prompted_layers_in_existing_model_are_rejected(tiny, tmp_path):
    """Layers [0, 1] and [1, 2] give prefixes of the same shape: loading must still refuse."""
    save_prompts(_trained(tiny, "bert", prompt_layers="bottom-2", layers=3), tmp_path)
    target = add_deep_prompts(tiny.build("bert", layers=3), DeepPromptConfig(length=4, layers="top-2"))
    with pytest.raises(
        PromptMismatchError, match=re.escape("layers [0, 1], the model prompts layers [1, 2]")
    ):
        load_prompts(target, tmp_path)


def test_truncated_file_raises_clear_error(tiny, tmp_path):
    save_prompts(_trained(tiny, "bert", m=4), tmp_path)
    path = tmp_path / WEIGHTS
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PromptMismatchError, match="truncated or corrupt") as info:
        load_prompts(tiny.build("bert"), tmp_path)
    assert WEIGHTS in str(info.value)
    path.write_bytes(b"")
    with pytest.raises(PromptMismatchError, match="truncated or corrupt"):
        load_prompts(tiny.build("bert"), tmp_path)


def test_missing_checkpoint(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match=CONFIG):
        load_prompts(tiny.build("bert"), tmp_path)
