"""Deep prompts inside transformers' attention interface.

A model built on transformers' `AttentionInterface` looks up its attention function by the name in
``config._attn_implementation``. We register ``deepprompt_sdpa`` and ``deepprompt_eager``: each prepends the
prompted layer's prefix keys/values (found by ``module.layer_idx`` in the ``deep_prompts`` keyword argument
that `DeepPromptModel` passes through the model) and then calls the stock implementation. Consequences:

- queries and real keys keep their positions 0..n-1 (no position shift, so n + m may exceed the model's
  maximum positions; peft's cache-based prefix shifts them by m);
- without ``deep_prompts`` the call goes straight to the stock function: the backbone is bit-identical;
- the prefix travels as a keyword argument, so gradient checkpointing recomputes with the same tensors.

The same names are registered with `AttentionMaskInterface`, otherwise transformers skips mask creation
for unknown implementations and padding would be silently ignored. The mask covers the real tokens only;
the prefix columns are prepended here, always visible (or per row, with an optional prefix mask).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

PREFIX = "deepprompt_"
SUPPORTED_BASES = ("sdpa", "eager")

# One layer's prompt: key and value, each (B or 1, kv_heads, m, head_dim), optionally followed by a prefix mask
# (B, m) bool, True = visible (per-row prompts of different lengths, padded to the longest: multitask batches).
LayerPrompt = tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _eager_for(module: torch.nn.Module) -> Callable:
    """The model file's own eager attention (BERT's, RoBERTa's, Llama's ... each defines one)."""
    fn = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if fn is None:
        raise TypeError(
            f"{type(module).__name__} has no eager_attention_forward; use attn_implementation='sdpa'"
        )
    return fn


def _extend_mask(
    mask: torch.Tensor | None,
    m: int,
    module,
    query,
    key,
    prefix_mask: torch.Tensor | None = None,
    base: str = "sdpa",
) -> torch.Tensor | None:
    """Prepend m prefix columns to a (B, 1, q, n) mask (bool: True=keep; float: 0=keep).

    The prefix columns are visible, or follow ``prefix_mask`` (B, m) bool (True = visible) per row. Without a
    mask (no padding) one is built only where needed: a causal layer, or a prefix position that is masked.
    """
    if prefix_mask is not None and bool(prefix_mask.all()):
        prefix_mask = None  # every prefix position visible: the plain path
    if mask is None:
        causal = getattr(module, "is_causal", False) and query.shape[2] > 1
        if not causal and prefix_mask is None:
            return None  # no padding, not causal: everything attends to everything, prefix included
        # The stock path would pass is_causal=True to SDPA, which aligns the triangle top-left and so would
        # hide real keys once m prefix columns are prepended. Build the causal mask explicitly instead.
        q, n = query.shape[2], key.shape[2]
        mask = torch.ones(q, n, dtype=torch.bool, device=query.device)
        if causal:
            mask = mask.tril(diagonal=n - q)
        mask = mask[None, None]
        if base == "eager":  # eager attention adds the mask to the scores
            mask = _to_float(mask, query.dtype)
    if prefix_mask is None:
        prefix_shape = (*mask.shape[:-1], m)
        if mask.dtype == torch.bool:
            prefix = torch.ones(prefix_shape, dtype=torch.bool, device=mask.device)
        else:
            prefix = torch.zeros(prefix_shape, dtype=mask.dtype, device=mask.device)
        return torch.cat([prefix.expand(*mask.shape[:-1], m), mask], dim=-1)
    batch = max(mask.shape[0], prefix_mask.shape[0])
    prefix = prefix_mask.to(device=mask.device, dtype=torch.bool)[:, None, None, :]  # (B, 1, 1, m)
    prefix = prefix.expand(batch, mask.shape[1], mask.shape[2], m)
    if mask.dtype != torch.bool:
        prefix = _to_float(prefix, mask.dtype)
    return torch.cat([prefix, mask.expand(batch, -1, -1, -1)], dim=-1)


def _to_float(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    return torch.where(mask, zero, torch.finfo(dtype).min)


def _with_prompts(base: str) -> Callable:
    def attention(module, query, key, value, attention_mask, deep_prompts=None, **kwargs):
        prompt = deep_prompts.get(module.layer_idx) if deep_prompts else None
        if prompt is not None:
            prefix_key, prefix_value = prompt[0], prompt[1]
            prefix_mask = prompt[2] if len(prompt) > 2 else None
            batch = key.shape[0]
            m = prefix_key.shape[2]
            key = torch.cat(
                [prefix_key.to(key.dtype).expand(batch, -1, -1, -1), key], dim=2
            )  # (B, H, m+n, d)
            value = torch.cat([prefix_value.to(value.dtype).expand(batch, -1, -1, -1), value], dim=2)
            if prefix_mask is None:
                attention_mask = _extend_mask(attention_mask, m, module, query, key[:, :, m:])
            else:
                attention_mask = _extend_mask(
                    attention_mask, m, module, query, key[:, :, m:], prefix_mask, base
                )
            if base == "sdpa":
                kwargs["is_causal"] = False  # causality, if any, is now in the explicit mask
        inner = sdpa_attention_forward if base == "sdpa" else _eager_for(module)
        return inner(module, query, key, value, attention_mask, **kwargs)

    attention.__name__ = f"{PREFIX}{base}"
    return attention


_MASKS = {"sdpa": sdpa_mask, "eager": eager_mask}


def register() -> None:
    """Register ``deepprompt_<base>`` attention and mask functions (idempotent)."""
    for base in SUPPORTED_BASES:
        AttentionInterface.register(f"{PREFIX}{base}", _with_prompts(base))
        AttentionMaskInterface.register(f"{PREFIX}{base}", _MASKS[base])


def prompted_name(implementation: str) -> str:
    """``sdpa`` -> ``deepprompt_sdpa``; already prompted names pass through."""
    base = implementation.removeprefix(PREFIX)
    if base not in SUPPORTED_BASES:
        raise ValueError(
            f"deep prompts support attention implementations {SUPPORTED_BASES}, not {implementation!r} "
            "(flash attention cannot take the prefix mask); load the backbone with attn_implementation='sdpa'"
        )
    return f"{PREFIX}{base}"


register()
