"""The prompted forward equals transformers' own cache path with the prefixes pre-filled, and nothing else moves."""

from __future__ import annotations

import copy

import pytest
import torch

from deepprompt.prompts import DeepPromptConfig, add_deep_prompts
from deepprompt.prompts import attention as attention_module

ATOL = 1e-5
ATTN = ("sdpa", "eager")
ENCODERS = ["bert", "bert-cls", "roberta", "roberta-cls"]
CAUSAL = ["gpt2", "llama"]


def prompted(tiny, kind, attn, length=4, seed=0, **prompt_kw):
    """(wrapped model in eval mode, untouched deepcopy of its backbone)."""
    model = tiny.build(kind, attn, seed=seed)
    reference = copy.deepcopy(model)
    torch.manual_seed(seed + 100)
    wrapped = add_deep_prompts(model, DeepPromptConfig(length=length, dropout=0.0, **prompt_kw)).eval()
    return wrapped, reference


def _assert_close(a, b, what, atol=ATOL):
    diff = (a - b).abs().max().item()
    assert diff <= atol, f"{what}: max abs diff {diff:.3e} > {atol}"


def _check_against_cache(tiny, wrapped, reference, ids, mask):
    real = (mask if mask is not None else torch.ones_like(ids)).bool()
    with torch.no_grad():
        prompts = wrapped.prompt_encoder()
        out = wrapped(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        ref = tiny.cache_reference(reference, prompts, ids, mask, output_hidden_states=True)
        plain = reference(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    _assert_close(tiny.main_output(out), tiny.main_output(ref), "main output vs cache reference")
    assert len(out.hidden_states) == len(ref.hidden_states)
    for i, (h, r) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
        _assert_close(h[real], r[real], f"hidden state {i} (real tokens)")
    # the prompts must matter, or the comparison above proves nothing
    assert (out.hidden_states[-1] - plain.hidden_states[-1]).abs().max().item() > 1e-2


# 1. equivalence with the DynamicCache reference, padded batch included ------------------------------------
@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", ENCODERS)
def test_encoder_matches_cache_reference(tiny, kind, attn):
    wrapped, reference = prompted(tiny, kind, attn)
    ids, mask = tiny.batch([7, 4, 6, 1])
    _check_against_cache(tiny, wrapped, reference, ids, mask)
    _check_against_cache(tiny, wrapped, reference, ids[:, :5], None)  # no mask at all


# 2. without prompts the backbone is bit-identical --------------------------------------------------------
@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", ENCODERS + CAUSAL)
def test_unprompted_call_is_bit_identical(tiny, kind, attn):
    wrapped, reference = prompted(tiny, kind, attn)
    ids, mask = tiny.batch([7, 4, 6], left=kind in CAUSAL)
    with torch.no_grad():
        for m in (mask, None):
            out = wrapped.model(input_ids=ids, attention_mask=m, output_hidden_states=True)
            ref = reference(input_ids=ids, attention_mask=m, output_hidden_states=True)
            assert torch.equal(tiny.main_output(out), tiny.main_output(ref))
            for h, r in zip(out.hidden_states, ref.hidden_states, strict=True):
                assert torch.equal(h, r)


# 3. a sequence alone == the same sequence padded inside a batch -----------------------------------------
@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", ENCODERS + CAUSAL)
def test_padding_does_not_change_real_tokens(tiny, kind, attn):
    wrapped, _ = prompted(tiny, kind, attn)
    ids, mask = tiny.batch([5, 8, 3], seed=3)  # right padding: positions of real tokens are the same alone
    with torch.no_grad():
        alone = wrapped(input_ids=ids[:1, :5], attention_mask=mask[:1, :5], output_hidden_states=True)
        inside = wrapped(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    _assert_close(alone.hidden_states[-1][0], inside.hidden_states[-1][0, :5], "last hidden state")
    out_alone, out_inside = tiny.main_output(alone), tiny.main_output(inside)
    if out_alone.dim() == 2:  # sequence classification logits
        _assert_close(out_alone[0], out_inside[0], "logits")
    else:
        _assert_close(out_alone[0], out_inside[0, :5], "per-token output")


# 5. layers left out get no prefix ---------------------------------------------------------------------
@pytest.fixture
def prefix_spy(monkeypatch):
    """Records (layer_idx, key length) for every attention call that reaches the stock function."""
    calls: list[tuple[int, int]] = []
    sdpa = attention_module.sdpa_attention_forward
    eager_for = attention_module._eager_for

    def spy(inner):
        def wrapper(module, query, key, value, attention_mask, **kw):
            calls.append((module.layer_idx, key.shape[2]))
            return inner(module, query, key, value, attention_mask, **kw)

        return wrapper

    monkeypatch.setattr(attention_module, "sdpa_attention_forward", spy(sdpa))
    monkeypatch.setattr(attention_module, "_eager_for", lambda module: spy(eager_for(module)))
    return calls


@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_only_chosen_layers_get_a_prefix(tiny, kind, attn, prefix_spy):
    n, m = 6, 4
    model = tiny.build(kind, attn, layers=3)
    reference = copy.deepcopy(model)
    wrapped = add_deep_prompts(model, DeepPromptConfig(length=m, layers="top-1", dropout=0.0)).eval()
    ids, mask = tiny.batch([n, 3], seed=5)
    with torch.no_grad():
        out = wrapped(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        plain = reference(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    # hidden_states[i] is the input of layer i: layers 0 and 1 are unprompted, so 0..2 are unchanged
    for i in range(3):
        assert torch.equal(out.hidden_states[i], plain.hidden_states[i]), f"hidden state {i} changed"
    assert (out.hidden_states[3] - plain.hidden_states[3]).abs().max() > 1e-3
    assert prefix_spy == [(0, n), (1, n), (2, n + m)]

    prefix_spy.clear()
    wrapped = add_deep_prompts(
        copy.deepcopy(reference), DeepPromptConfig(length=m, layers=[0, 2], dropout=0.0)
    )
    with torch.no_grad():
        out = wrapped.eval()(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert prefix_spy == [(0, n + m), (1, n), (2, n + m)]
    assert sorted(wrapped.prompt_encoder().keys()) == [0, 2]
    assert (out.hidden_states[1] - plain.hidden_states[1]).abs().max() > 1e-3  # layer 0 is prompted


@pytest.mark.parametrize("spec,expected", [("bottom-2", [0, 1]), ("top-2", [1, 2]), ("all", [0, 1, 2])])
def test_prompted_layers_follow_the_spec(tiny, spec, expected, prefix_spy):
    wrapped = add_deep_prompts(
        tiny.build("bert", layers=3), DeepPromptConfig(length=2, layers=spec, dropout=0.0)
    )
    with torch.no_grad():
        wrapped.eval()(input_ids=tiny.batch([4])[0])
    assert [layer for layer, keys in prefix_spy if keys == 4 + 2] == expected


# 7. n + m beyond the model's max positions ---------------------------------------------------------------
@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", ["bert", "roberta-cls"])
def test_full_length_input_with_long_prompt(tiny, kind, attn):
    wrapped, reference = prompted(tiny, kind, attn, length=16)
    max_pos = reference.config.max_position_embeddings
    n = max_pos if kind.startswith("bert") else max_pos - 2  # RoBERTa's positions start at padding_idx + 1
    ids, mask = tiny.batch([n, n - 10], seed=7)
    assert n + 16 > max_pos
    _check_against_cache(tiny, wrapped, reference, ids, mask)


# 13. causal models: prefix + causal mask, with and without (left) padding --------------------------------
@pytest.mark.parametrize("padding", ["none", "right", "left"])
@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", CAUSAL)
def test_causal_matches_cache_reference(tiny, kind, attn, padding):
    wrapped, reference = prompted(tiny, kind, attn, length=3)
    if padding == "none":
        ids, mask = tiny.batch([7, 7], seed=11)
        _check_against_cache(tiny, wrapped, reference, ids, None)
    else:
        ids, mask = tiny.batch([7, 4, 2], seed=11, left=padding == "left")
    _check_against_cache(tiny, wrapped, reference, ids, mask)


@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", CAUSAL)
def test_causal_prompted_model_does_not_see_the_future(tiny, kind, attn):
    wrapped, _ = prompted(tiny, kind, attn, length=3)
    ids, _ = tiny.batch([8], seed=13)
    changed = ids.clone()
    changed[0, 5:] = (changed[0, 5:] + 7) % 96 + 3
    with torch.no_grad():
        a, b = wrapped(input_ids=ids).logits, wrapped(input_ids=changed).logits
    _assert_close(a[0, :5], b[0, :5], "logits before the changed tokens")
    assert (a[0, 5:] - b[0, 5:]).abs().max() > 1e-3
