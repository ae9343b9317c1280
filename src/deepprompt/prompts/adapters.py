"""Prompted forwards of hand-written attention modules (the hooked path of `prompts/hooks.py`).

Each adapter has its module's ``forward`` signature after ``(module, prompt)`` and computes the module's own
attention with the layer's m prefix keys/values prepended to its n keys/values. The prefix is not a token: it
has no position. So wherever the model adds a position term to the attention scores, the prefix columns get
none (zero), and every position term between real tokens is the stock one.

DeBERTa-v2/v3 (``DisentangledSelfAttention``; DeBERTa-v3 uses the same class) scores a real key j for query i as

    (q_i . k_j + c2p(i, j) + p2c(i, j)) / sqrt(d * s)        s = 1 + [c2p] + [p2c]
    c2p(i, j) = q_i . Kr[delta(i, j)]      p2c(i, j) = k_j . Qr[-delta(j, i)]

(delta: the bucketed relative distance, Kr / Qr: the projected relative embeddings). A prefix key p gets
``q_i . p / sqrt(d * s)``: the same scale as a real key (so a prefix and a real key of equal content compete on
equal terms), no c2p (a prefix has no distance to the query) and no p2c (no position query for it). This is
what the official P-Tuning v2 code does (``model/debertaV2.py``: ``rel_att`` is computed on the real keys and
zeros are concatenated for the prefix columns, with the same ``scale``). A query row sees the prefix when it
sees any real key, so padded query rows stay fully masked, as in the official code.

MPNet (``MPNetSelfAttention``) adds a learned relative-position bias per head: the prefix columns get none.

Other encoders of transformers 5.23 that still compute attention by hand (DeBERTa v1, Funnel, ConvBERT,
Longformer, BigBird, RemBERT, RoFormer, XLNet, ...) are not covered: each needs its own adapter here.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention, scaled_size_sqrt
from transformers.models.mpnet.modeling_mpnet import MPNetSelfAttention

from deepprompt.prompts.hooks import register_adapter


def _prefix(prompt, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(key, value) each (B, H, m, d) in ``like``'s dtype, and the prefix mask (B, m) bool or None."""
    key, value = (t.to(like.dtype).expand(batch, -1, -1, -1) for t in prompt[:2])
    return key, value, (prompt[2] if len(prompt) > 2 else None)


def _prefix_visible(mask: torch.Tensor, m: int, prefix_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, 1, q, m) bool: a query row sees the prefix when it sees any real key (and the prefix mask allows)."""
    visible = mask.any(dim=-1, keepdim=True)  # (B, 1, q, 1)
    if prefix_mask is not None:
        return visible & prefix_mask.to(device=mask.device, dtype=torch.bool)[:, None, None, :]
    return visible.expand(*visible.shape[:-1], m)


@register_adapter(DisentangledSelfAttention)
def deberta_v2_attention(
    module: DisentangledSelfAttention,
    prompt,
    hidden_states,
    attention_mask,
    output_attentions=False,
    query_states=None,
    relative_pos=None,
    rel_embeddings=None,
):
    if query_states is None:
        query_states = hidden_states
    heads = module.num_attention_heads
    batch = hidden_states.shape[0]
    query = module.transpose_for_scores(module.query_proj(query_states), heads)  # (B*H, n, d)
    key = module.transpose_for_scores(module.key_proj(hidden_states), heads)
    value = module.transpose_for_scores(module.value_proj(hidden_states), heads)
    prefix_key, prefix_value, prefix_mask = _prefix(prompt, batch, key)
    m, d = prefix_key.shape[2], key.shape[-1]
    keys = torch.cat([prefix_key.reshape(-1, m, d), key], dim=1)  # (B*H, m+n, d)
    values = torch.cat([prefix_value.reshape(-1, m, d), value], dim=1)

    scale_factor = 1 + ("c2p" in module.pos_att_type) + ("p2c" in module.pos_att_type)
    scale = scaled_size_sqrt(query, scale_factor)
    scores = torch.bmm(query, keys.transpose(-1, -2) / scale.to(dtype=query.dtype))  # (B*H, n, m+n)
    if module.relative_attention:
        rel_embeddings = module.pos_dropout(rel_embeddings)
        # c2p / p2c between real tokens only (the stock computation); the prefix columns get no position term
        rel = module.disentangled_attention_bias(query, key, relative_pos, rel_embeddings, scale_factor)
        scores = scores + F.pad(rel, (m, 0))
    q = scores.shape[-2]
    scores = scores.view(-1, heads, q, m + key.shape[1])

    mask = attention_mask.bool()
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    mask = torch.cat([_prefix_visible(mask, m, prefix_mask), mask.expand(batch, -1, q, -1)], dim=-1)
    scores = scores.masked_fill(~mask, torch.finfo(query.dtype).min)
    probs = module.dropout(nn.functional.softmax(scores, dim=-1))
    context = torch.bmm(probs.view(-1, q, probs.shape[-1]), values)
    context = context.view(-1, heads, q, d).permute(0, 2, 1, 3).contiguous()
    context = context.view(*context.shape[:-2], -1)
    return (context, probs if output_attentions else None)


@register_adapter(MPNetSelfAttention)
def mpnet_attention(
    module: MPNetSelfAttention,
    prompt,
    hidden_states,
    attention_mask=None,
    position_bias=None,
    output_attentions=False,
    **kwargs,
):
    batch = hidden_states.shape[0]
    shape = (*hidden_states.shape[:-1], -1, module.attention_head_size)
    q = module.q(hidden_states).view(shape).transpose(1, 2)  # (B, H, n, d)
    k = module.k(hidden_states).view(shape).transpose(1, 2)
    v = module.v(hidden_states).view(shape).transpose(1, 2)
    prefix_key, prefix_value, prefix_mask = _prefix(prompt, batch, k)
    m = prefix_key.shape[2]
    k = torch.cat([prefix_key, k], dim=2)
    v = torch.cat([prefix_value, v], dim=2)

    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(module.attention_head_size)
    if position_bias is not None:  # relative-position bias between real tokens; none for the prefix
        scores = scores + F.pad(position_bias, (m, 0))
    if attention_mask is not None or prefix_mask is not None:  # additive masks: 0 = visible
        n = k.shape[2] - m
        if attention_mask is None:
            attention_mask = torch.zeros(1, 1, 1, n, dtype=scores.dtype, device=scores.device)
        prefix = torch.zeros(1, 1, 1, m, dtype=attention_mask.dtype, device=scores.device)
        if prefix_mask is not None:
            hidden = ~prefix_mask.to(device=scores.device, dtype=torch.bool)[:, None, None, :]  # (B, 1, 1, m)
            prefix = torch.where(hidden, torch.finfo(prefix.dtype).min, prefix)
        lead = torch.broadcast_shapes(prefix.shape[:-1], attention_mask.shape[:-1])
        scores = scores + torch.cat([prefix.expand(*lead, m), attention_mask.expand(*lead, n)], dim=-1)

    probs = module.dropout(nn.functional.softmax(scores, dim=-1))
    context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
    out = module.o(context.view(*context.shape[:-2], module.all_head_size))
    return (out, probs) if output_attentions else (out,)
