"""Config validation, layer selection, parameter counts and unsupported backbones."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from deepprompt.errors import ConfigError, UnsupportedBackboneError
from deepprompt.prompts import BackboneGeometry, DeepPromptConfig, add_deep_prompts


# 11. validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [0, -1, True, False, 2.5, "8", None])
def test_bad_length(length):
    with pytest.raises(ConfigError, match=r"length.*" + repr(length).replace(".", r"\.").replace("(", r"\(")):
        DeepPromptConfig(length=length)


@pytest.mark.parametrize("reparam", ["lstm", "MLP", "", None])
def test_unknown_reparam(reparam):
    with pytest.raises(ConfigError, match=f"reparam.*{reparam!r}"):
        DeepPromptConfig(reparam=reparam)


@pytest.mark.parametrize("spec", ["top-0", "bottom-0", "middle-2", "top2", "top--1", "ALL", "", "top-k"])
def test_bad_layer_strings(spec):
    with pytest.raises(ConfigError, match=repr(spec)):
        DeepPromptConfig(layers=spec)


@pytest.mark.parametrize("spec", ["top-9", "bottom-7"])
def test_k_larger_than_the_backbone(spec):
    config = DeepPromptConfig(layers=spec)  # fine until the backbone is known
    with pytest.raises(ConfigError, match=f"{spec!r}.*1..6"):
        config.resolve_layers(6)


@pytest.mark.parametrize("layers,bad", [([0, 6], "[6]"), ([-1, 2], "[-1]"), ([7, 9, 1], "[7, 9]")])
def test_out_of_range_indices(layers, bad):
    config = DeepPromptConfig(layers=layers)
    with pytest.raises(ConfigError, match=re.escape(bad)):
        config.resolve_layers(6)


def test_out_of_range_indices_raise_when_wrapping(tiny):
    with pytest.raises(ConfigError, match=re.escape("[5]")):
        add_deep_prompts(tiny.build("bert", layers=3), DeepPromptConfig(layers=[0, 5]))
    with pytest.raises(ConfigError, match="'top-4'"):
        add_deep_prompts(tiny.build("bert", layers=3), DeepPromptConfig(layers="top-4"))


def test_empty_and_non_integer_lists():
    with pytest.raises(ConfigError, match="empty"):
        DeepPromptConfig(layers=[]).resolve_layers(4)
    with pytest.raises((ConfigError, ValueError)):
        DeepPromptConfig(layers=["a"])


@pytest.mark.parametrize(
    "field,value",
    [("reparam_hidden", 0), ("dropout", 1.0), ("dropout", -0.1), ("init", "xavier"), ("init_std", 0.0)],
)
def test_other_fields(field, value):
    with pytest.raises(ConfigError, match=field.split("_")[0]):
        DeepPromptConfig(**{field: value})


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("all", [0, 1, 2, 3, 4, 5]),
        ("top-1", [5]),
        ("top-2", [4, 5]),
        ("bottom-3", [0, 1, 2]),
        ("top-6", [0, 1, 2, 3, 4, 5]),
        ([3, 1, 1], [1, 3]),
        ((0, 5), [0, 5]),
    ],
)
def test_resolve_layers(spec, expected):
    assert DeepPromptConfig(layers=spec).resolve_layers(6) == expected


def test_config_round_trips_through_dict():
    config = DeepPromptConfig(length=7, layers=(1, 2), reparam="mlp", reparam_hidden=9, dropout=0.2)
    assert DeepPromptConfig(**config.to_dict()) == config
    assert config.to_dict()["layers"] == [1, 2]


# 8. parameter counts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bert", "roberta-cls"])
@pytest.mark.parametrize("layers,lp", [("all", 4), ("top-1", 1), ("top-3", 3), ("bottom-2", 2), ([0, 3], 2)])
@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_parameter_counts(tiny, kind, layers, lp, reparam):
    m, hidden, rh = 5, 32, 12
    wrapped = add_deep_prompts(
        tiny.build(kind, layers=4, hidden=hidden),
        DeepPromptConfig(length=m, layers=layers, reparam=reparam, reparam_hidden=rh),
    )
    assert len(wrapped.prompt_encoder.layer_ids) == lp
    width = lp * 2 * hidden
    expected = m * width if reparam == "none" else m * hidden + hidden * rh + rh + rh * width + width
    counts = wrapped.num_parameters()
    assert counts["prompt"] == expected
    head = 0 if kind == "bert" else sum(p.numel() for p in wrapped.model.classifier.parameters())
    assert counts["trainable"] == expected + head
    assert counts["backbone"] == sum(p.numel() for p in wrapped.model.base_model.parameters())
    assert counts["total"] == counts["prompt"] + sum(p.numel() for p in wrapped.model.parameters())


def test_gqa_prompt_width(tiny):
    """Llama with 4 query heads and 2 key/value heads: prompts have kv_heads * head_dim per key."""
    wrapped = add_deep_prompts(tiny.build("llama", layers=2, hidden=32, heads=4), DeepPromptConfig(length=3))
    g = wrapped.geometry
    assert (g.num_kv_heads, g.head_dim, g.kv_width) == (2, 8, 16)
    assert wrapped.num_parameters()["prompt"] == 3 * 2 * 2 * 16
    key, value = wrapped.prompt_encoder()[1]
    assert key.shape == value.shape == (1, 2, 3, 8)


def test_geometry_from_config(tiny):
    g = BackboneGeometry.from_config(tiny.tiny_config("roberta", layers=3, hidden=32, heads=4))
    assert g == BackboneGeometry("roberta", 3, 4, 8, 32, 64)


# 12. unsupported backbones -------------------------------------------------------------------------------
def test_plain_module_is_rejected():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

    with pytest.raises(UnsupportedBackboneError, match="Tiny"):
        add_deep_prompts(Tiny(), DeepPromptConfig(length=2))


def test_transformers_model_without_attention_interface_is_rejected():
    # DeBERTa v1: hand-written attention without an adapter (DeBERTa-v2/v3 take the hooked path instead)
    from transformers import DebertaConfig, DebertaModel

    config = DebertaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    model = DebertaModel(config)
    assert not model._can_set_attn_implementation()
    before = {n: p.clone() for n, p in model.named_parameters()}
    with pytest.raises(UnsupportedBackboneError, match="DebertaModel"):
        add_deep_prompts(model, DeepPromptConfig(length=2))
    # rejected before anything was changed: still trainable, weights untouched
    assert all(p.requires_grad and torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_flash_attention_is_rejected(tiny):
    model = tiny.build("bert")
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="flash_attention_2"):
        add_deep_prompts(model, DeepPromptConfig(length=2))
