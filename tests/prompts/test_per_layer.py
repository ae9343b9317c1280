"""Per-layer prompt lengths (lists and named profiles) and layer-wise learning rates."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from deepprompt.config import OptimConfig
from deepprompt.errors import ConfigError
from deepprompt.prompts import DeepPromptConfig, add_deep_prompts, load_prompts, save_prompts
from deepprompt.prompts.profiles import length_profile, lr_multipliers
from deepprompt.tasks.optim import build_optimizer
from tests.prompts import helpers

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_profiles_follow_their_formulas():
    L = 12
    middle = length_profile({"profile": "middle", "base": 16, "c": 1.0, "min": 1, "max": 64}, L)
    assert middle == [min(64, max(1, round(16 * (1 + 0.5 * math.sin(math.pi * i / L))))) for i in range(L)]
    assert length_profile({"profile": "uniform", "base": 8}, 4) == [8, 8, 8, 8]
    assert length_profile({"profile": "linear_up", "base": 8}, 3) == [4, 8, 12]
    assert length_profile({"profile": "linear_down", "base": 8}, 3) == [12, 8, 4]
    assert length_profile({"profile": "middle", "base": 16, "max": 20}, L)[6] == 20  # clipped
    assert lr_multipliers({"profile": "early_mid_late"}, 6) == [0.5, 0.5, 1.0, 1.0, 1.5, 1.5]
    assert lr_multipliers({"profile": "linear", "start": 1.0, "end": 2.0}, 3) == [1.0, 1.5, 2.0]
    assert lr_multipliers({"profile": "geometric", "ratio": 2.0}, 3) == [1.0, 2.0, 4.0]


def test_config_validation_is_clear():
    with pytest.raises(ConfigError, match="one length per layer"):
        add_deep_prompts(helpers.tiny_bert(layers=4), DeepPromptConfig(length=[4, 4]))
    with pytest.raises(ConfigError, match="all 0"):
        DeepPromptConfig(length=[0, 0])
    with pytest.raises(ConfigError, match=">= 0"):
        DeepPromptConfig(length=[1, -1])
    with pytest.raises(ConfigError, match="unknown prompt length profile"):
        DeepPromptConfig(length={"profile": "zigzag"})
    with pytest.raises(ConfigError, match="positive integer"):
        DeepPromptConfig(length=0)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_per_layer_lengths_match_manual_attention(attn, reparam):
    """Layers with 0, 2, 5 and 3 prompt vectors: every layer's output equals a hand-written attention that
    prepends exactly that layer's keys/values (a DynamicCache cannot hold different lengths per layer under
    one 2D mask, so the reference is explicit)."""
    model = helpers.tiny_bert(layers=4, attn=attn)
    reference = copy.deepcopy(model)
    wrapped = add_deep_prompts(
        model, DeepPromptConfig(length=[0, 2, 5, 3], dropout=0.0, reparam=reparam)
    ).eval()
    enc = wrapped.prompt_encoder
    assert enc.layer_ids == [1, 2, 3] and enc.lengths == {1: 2, 2: 5, 3: 3}
    ids, mask = helpers.batch([7, 3, 5])
    with torch.no_grad():
        prompts = enc()
        assert {k: v[0].shape[2] for k, v in prompts.items()} == {1: 2, 2: 5, 3: 3}
        out = wrapped(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        plain = reference(input_ids=ids, attention_mask=mask)
    ref = helpers.manual_reference(
        reference, prompts, input_ids=ids, attention_mask=mask, output_hidden_states=True
    )
    real = mask.bool()
    for i, (h, r) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
        assert (h[real] - r[real]).abs().max() < 1e-5, f"hidden state {i}"
    assert (out.hidden_states[1] - plain.last_hidden_state).abs().max() > 0  # layer 0 unprompted ...
    assert torch.equal(
        out.hidden_states[1],
        reference(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1],
    )
    assert (out.last_hidden_state - plain.last_hidden_state).abs().max() > 1e-2  # ... the prompts matter


def test_per_layer_lengths_causal_manual_reference():
    model = helpers.tiny_llama(layers=3)
    reference = copy.deepcopy(model)
    wrapped = add_deep_prompts(model, DeepPromptConfig(length=[3, 0, 1], dropout=0.0)).eval()
    ids, mask = helpers.batch([6, 6])
    with torch.no_grad():
        prompts = wrapped.prompt_encoder()
        out = wrapped(input_ids=ids, attention_mask=mask)
    ref = helpers.manual_reference(reference, prompts, input_ids=ids, attention_mask=mask)
    assert (out.last_hidden_state - ref.last_hidden_state).abs().max() < 1e-5


def test_profile_encoder_counts_and_save_load(tmp_path):
    spec = {"profile": "linear_up", "base": 4}
    model = helpers.tiny_bert(layers=4, cls=True)
    wrapped = add_deep_prompts(
        model, DeepPromptConfig(length=spec, reparam="mlp", reparam_hidden=8, dropout=0.0)
    )
    enc = wrapped.prompt_encoder
    assert enc.lengths == dict(enumerate(length_profile(spec, 4))) == {0: 2, 1: 3, 2: 5, 3: 6}
    kv = 2 * 32
    assert enc.per_layer_counts() == {0: 2 * kv, 1: 3 * kv, 2: 5 * kv, 3: 6 * kv}
    ids, mask = helpers.batch([5, 2])
    with torch.no_grad():
        before = wrapped(input_ids=ids, attention_mask=mask).logits
    save_prompts(wrapped, tmp_path)
    loaded, _ = load_prompts(helpers.tiny_bert(layers=4, cls=True), tmp_path)
    assert loaded.prompt_encoder.reparam == "none" and loaded.prompt_encoder.split
    assert {layer: tuple(p.shape) for layer, p in loaded.prompt_encoder.layer_parameters().items()} == {
        0: (2, kv),
        1: (3, kv),
        2: (5, kv),
        3: (6, kv),
    }
    with torch.no_grad():
        after = loaded.eval()(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(before, after, atol=1e-6)


def test_split_layout_equals_joint_layout():
    cfg = DeepPromptConfig(length=3, dropout=0.0)
    joint = add_deep_prompts(helpers.tiny_bert(layers=3), cfg).eval()
    split = add_deep_prompts(
        helpers.tiny_bert(layers=3), DeepPromptConfig(length=3, dropout=0.0, split_layers=True)
    ).eval()
    split.prompt_encoder.set_layer_tensors(joint.prompt_encoder.layer_tensors())
    assert torch.equal(split.prompt_encoder.flat(), joint.prompt_encoder.flat())
    ids, mask = helpers.batch([4, 2])
    with torch.no_grad():
        a = joint(input_ids=ids, attention_mask=mask).last_hidden_state
        b = split(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("spec", "multipliers"),
    [
        (
            {"profile": "early_mid_late", "early": 0.5, "middle": 1.0, "late": 1.5},
            [0.5, 0.5, 1.0, 1.0, 1.5, 1.5],
        ),
        ({"profile": "linear", "start": 0.5, "end": 1.5}, [0.5, 0.7, 0.9, 1.1, 1.3, 1.5]),
        ({"profile": "geometric", "ratio": 2.0}, [1, 2, 4, 8, 16, 32]),
    ],
)
def test_layer_lr_groups(spec, multipliers):
    from deepprompt.config import structured
    from deepprompt.methods import build_method, method_schema

    cfg = structured(
        method_schema("ptuning_v2"), {"name": "ptuning_v2", "lr": 0.01, "layer_lr": spec}, "method"
    )
    module = torch.nn.Module()
    module.encoder = build_method(helpers.tiny_bert(layers=6), cfg)
    module.classifier = torch.nn.Linear(32, 2)
    module.method_cfg = cfg
    opt = build_optimizer(module, cfg.lr, OptimConfig(weight_decay=0.01), total_steps=10)["optimizer"]
    groups = opt.param_groups
    assert groups[0]["lr"] == 0.01 and {id(p) for p in groups[0]["params"]} == {id(module.classifier.weight)}
    assert groups[1]["lr"] == 0.01 and {id(p) for p in groups[1]["params"]} == {id(module.classifier.bias)}
    layer_groups = groups[2:]
    assert [g["name"] for g in layer_groups] == [f"prompt_layer_{i}" for i in range(6)]
    assert [g["lr"] for g in layer_groups] == pytest.approx([0.01 * m for m in multipliers])
    params = module.encoder.prompt_encoder.layer_parameters()
    assert [g["params"][0] is params[i] for i, g in enumerate(layer_groups)] == [True] * 6
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in module.parameters() if p.requires_grad)


def test_layer_lr_needs_no_mlp():
    from deepprompt.config import structured
    from deepprompt.methods import build_method, method_schema

    cfg = structured(
        method_schema("ptuning_v2"),
        {"name": "ptuning_v2", "prompt": {"reparam": "mlp"}, "layer_lr": {"profile": "linear"}},
        "method",
    )
    with pytest.raises(ConfigError, match="reparam=none"):
        build_method(helpers.tiny_bert(layers=2), cfg)
    with pytest.raises(ConfigError, match="layer_lr.profile"):
        structured(
            method_schema("ptuning_v2"), {"name": "ptuning_v2", "layer_lr": {"profile": "cubic"}}, "method"
        )
