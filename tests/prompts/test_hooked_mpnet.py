"""MPNet through the hooked attention path: equal to a reference that concatenates the prefix inside the attention
(no relative-position bias for the prefix columns), bit-identical without prompts, padding-invariant, gradients."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from transformers import MPNetConfig, MPNetForSequenceClassification, MPNetModel

from deepprompt.prompts import DeepPromptConfig, add_deep_prompts

ATOL = 1e-5
PAD = 1  # MPNet's padding_idx


def tiny_mpnet(cls=True, layers=2, seed=0):
    config = MPNetConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=PAD,
        num_labels=3,
    )
    torch.manual_seed(seed)
    return (MPNetForSequenceClassification if cls else MPNetModel)(config).eval()


def batch(lengths, seed=1):
    n = max(lengths)
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), n), PAD, dtype=torch.long)
    mask = torch.zeros(len(lengths), n, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(3, 99, (length,), generator=g)
        mask[row, :length] = 1
    return ids, mask


def reference_attention(module, prefix, hidden_states, attention_mask=None, position_bias=None, **kwargs):
    """softmax(q [P_k; K]^T / sqrt(d) + [0; bias] + [0; mask]) [P_v; V], written out per head."""
    b, n, _ = hidden_states.shape
    h, d = module.num_attention_heads, module.attention_head_size
    q, k, v = (p(hidden_states).view(b, n, h, d).transpose(1, 2) for p in (module.q, module.k, module.v))
    pk, pv = (t.expand(b, -1, -1, -1) for t in prefix)
    m = pk.shape[2]
    scores = torch.einsum("bhid,bhjd->bhij", q, torch.cat([pk, k], dim=2)) / math.sqrt(d)
    extra = torch.zeros_like(scores)
    if position_bias is not None:
        extra[..., m:] += position_bias
    if attention_mask is not None:
        extra[..., m:] += attention_mask
    context = (scores + extra).softmax(-1).matmul(torch.cat([pv, v], dim=2))
    return (module.o(context.transpose(1, 2).reshape(b, n, h * d)),)


def reference_model(stock, prompts):
    model = copy.deepcopy(stock)
    for layer, block in enumerate(
        model.mpnet.encoder.layer if hasattr(model, "mpnet") else model.encoder.layer
    ):
        attention = block.attention.attn

        def forward(*args, _module=attention, _prefix=prompts[layer], **kwargs):
            return reference_attention(_module, _prefix, *args, **kwargs)

        attention.forward = forward
    return model


def prompted(cls=True, length=4):
    stock = tiny_mpnet(cls)
    reference = copy.deepcopy(stock)
    torch.manual_seed(100)
    return add_deep_prompts(stock, DeepPromptConfig(length=length, dropout=0.0)).eval(), reference


def _close(a, b, what):
    diff = (a - b).abs().max().item()
    assert diff <= ATOL, f"{what}: max abs diff {diff:.3e} > {ATOL}"


@pytest.mark.parametrize("cls", [True, False], ids=["cls", "bare"])
def test_matches_reference_that_concatenates_the_prefix(cls):
    wrapped, stock = prompted(cls)
    with torch.no_grad():
        reference = reference_model(stock, wrapped.prompt_encoder())
    for ids, mask in (batch([12, 5, 9, 1]), (batch([7, 7])[0], None)):
        real = (mask if mask is not None else torch.ones_like(ids)).bool()
        with torch.no_grad():
            out = wrapped(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            ref = reference(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            plain = stock(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        if cls:
            _close(out.logits, ref.logits, "logits")
        for i, (h, r) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
            _close(h[real], r[real], f"hidden state {i} (real tokens)")
        assert (out.hidden_states[-1] - plain.hidden_states[-1])[real].abs().max() > 1e-2


def test_unprompted_call_is_bit_identical():
    wrapped, stock = prompted()
    ids, mask = batch([9, 4, 6])
    with torch.no_grad():
        for m in (mask, None):
            out = wrapped.model(input_ids=ids, attention_mask=m, output_hidden_states=True)
            ref = stock(input_ids=ids, attention_mask=m, output_hidden_states=True)
            assert torch.equal(out.logits, ref.logits)
            assert all(torch.equal(h, r) for h, r in zip(out.hidden_states, ref.hidden_states, strict=True))


def test_padding_does_not_change_real_tokens():
    wrapped, _ = prompted()
    ids, mask = batch([5, 11, 3], seed=3)
    with torch.no_grad():
        alone = wrapped(input_ids=ids[:1, :5], attention_mask=mask[:1, :5])
        inside = wrapped(input_ids=ids, attention_mask=mask)
    _close(alone.logits[0], inside.logits[0], "logits")


def test_only_prompts_and_head_get_gradients():
    wrapped, _ = prompted()
    wrapped.train()
    ids, mask = batch([6, 4, 5])
    logits = wrapped(input_ids=ids, attention_mask=mask).logits
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2, 1])).backward()
    assert wrapped.prompt_encoder.prefix.grad.abs().sum() > 0
    assert wrapped.head_names == ["classifier"]
    for name, p in wrapped.model.named_parameters():
        trains = name.startswith("classifier.")
        assert p.requires_grad == trains and (p.grad is not None) == trains, name
