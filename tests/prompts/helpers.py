"""Tiny random backbones for the knob tests (never the Hub) and an explicit manual attention reference."""

from __future__ import annotations

import math

import torch
from transformers import (
    AttentionInterface,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    LlamaConfig,
    LlamaModel,
)
from transformers.masking_utils import AttentionMaskInterface, eager_mask

VOCAB = 99
PAD = 0


def tiny_bert(
    layers: int = 4, hidden: int = 32, heads: int = 4, seed: int = 0, cls: bool = False, attn: str = "sdpa"
):
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=PAD,
        num_labels=3,
    )
    config._attn_implementation = attn
    return (BertForSequenceClassification if cls else BertModel)(config).eval()


def tiny_llama(layers: int = 3, hidden: int = 32, heads: int = 4, seed: int = 0, attn: str = "sdpa"):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        pad_token_id=PAD,
    )
    config._attn_implementation = attn
    return LlamaModel(config).eval()


def batch(lengths: list[int], seed: int = 1):
    n = max(lengths)
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), n), PAD, dtype=torch.long)
    mask = torch.zeros(len(lengths), n, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(3, VOCAB, (length,), generator=g)
        mask[row, :length] = 1
    return ids, mask


# -- an explicit attention: softmax(q [pk; k]^T / sqrt(d) + mask) [pv; v], written out by hand -----------------
_REF_PROMPTS: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}


def _manual_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    prompt = _REF_PROMPTS.get(module.layer_idx)
    b, h = query.shape[:2]
    n = key.shape[2]
    if attention_mask is None:
        attention_mask = torch.zeros(b, 1, query.shape[2], n)
    if prompt is not None:
        pk, pv = prompt
        m = pk.shape[2]
        key = torch.cat([pk.expand(b, -1, -1, -1), key], dim=2)
        value = torch.cat([pv.expand(b, -1, -1, -1), value], dim=2)
        attention_mask = torch.cat([torch.zeros(*attention_mask.shape[:-1], m), attention_mask[..., -n:]], -1)
    reps = h // key.shape[1]
    key, value = key.repeat_interleave(reps, 1), value.repeat_interleave(reps, 1)
    scores = query @ key.transpose(-1, -2) * (scaling or 1 / math.sqrt(query.shape[-1])) + attention_mask
    out = scores.softmax(-1) @ value  # (b, h, q, d)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register("knob_manual", _manual_attention)
AttentionMaskInterface.register("knob_manual", eager_mask)


def manual_reference(model, prompts: dict, **inputs):
    """``model`` (a plain backbone) run with the hand-written attention and per-layer prefixes ``prompts``."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("knob_manual")
    _REF_PROMPTS.clear()
    _REF_PROMPTS.update(prompts)
    try:
        with torch.no_grad():
            return model(**inputs)
    finally:
        _REF_PROMPTS.clear()
        model.set_attn_implementation(previous)
