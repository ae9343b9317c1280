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

Speed (docs/performance.md): SDPA can only take its fused kernels when the mask is small or absent.

- Without padding (and without a per-row prefix mask) a non-causal layer gets ``attn_mask=None``: the prefix
  needs no mask, so flash attention stays available.
- With padding, transformers would build a (B, 1, n, n) mask of a bidirectional model; our mask functions build
  the key-padding mask (B, 1, 1, n) instead (the same values, broadcast over the queries), and the prefix
  columns are prepended to that: (B, 1, 1, m + n) per layer instead of a materialised (B, 1, n, m + n).
- Every layer of a forward receives the same mask object, so the extended mask is built once per forward (kept on
  that object) and, for SDPA, made additive once instead of SDPA converting a bool mask in every layer: a prompted
  layer's only extra kernels are the concatenations of its prefix keys and values. A per-row prefix mask (tasks of
  different prompt lengths in one batch) is part of the key: layers handed the same prefix-mask object share one
  extended mask; layers whose visibility differs get their own.
- ``PromptBundle.compact_mask = False`` (the "naive" path, kept for the benchmark's before/after rows) builds
  the full (B, 1, n, m + n) mask in every prompted layer, padding or not, as a first prototype would.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import (
    AttentionMaskInterface,
    bidirectional_mask_function,
    eager_mask,
    sdpa_mask,
)

PREFIX = "deepprompt_"
SUPPORTED_BASES = ("sdpa", "eager")

# Inside `static_masks()` no mask decision reads a tensor's values (see there). A plain global, not a ContextVar:
# dynamo guards on a global bool, but breaks the graph at ContextVar.get() (method.compile traces these functions).
_STATIC_MASKS = False


@contextlib.contextmanager
def static_masks() -> Iterator[None]:
    """Mask decisions that never read tensor values: a mask is built wherever one may be needed.

    Outside it, transformers skips an all-ones padding mask (``padding_mask.all()``) and a per-row prefix mask with
    every position visible is dropped (``prefix_mask.all()``): each check copies a value to the host, which waits
    for the GPU. A CUDA graph can neither contain such a read nor depend on its answer (one graph serves the padded
    and the unpadded batches of its shape), so the graph captures in ``prompts/graphing.py`` run inside this.
    """
    global _STATIC_MASKS
    before, _STATIC_MASKS = _STATIC_MASKS, True
    try:
        yield
    finally:
        _STATIC_MASKS = before


# One layer's prompt: key and value, each (B or 1, kv_heads, m, head_dim), optionally followed by a prefix mask
# (B, m) bool, True = visible (per-row prompts of different lengths, padded to the longest: multitask batches).
LayerPrompt = tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class PromptBundle(dict):
    """``{layer_idx: LayerPrompt}``, the ``deep_prompts`` keyword argument, plus the engine's switches.

    ``compact_mask`` (default true): no mask where none is needed, the (B, 1, 1, m + n) key-padding mask where
    there is padding. False: the naive path, a materialised (B, 1, n, m + n) mask in every prompted layer (same
    results; kept so the benchmark can show the difference). A plain dict works too (compact).
    """

    compact_mask: bool = True

    def __init__(self, *args, compact_mask: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.compact_mask = compact_mask


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

    Every layer of a forward gets the same incoming mask object, so the extended mask is built once per forward
    and reused (`_memo`); with a per-row prefix mask, layers that share the same ``prefix_mask`` object share the
    extended mask too (the serving table and `MultiTaskDeepPromptModel` hand every layer the same object where
    the visibility is the same in all layers). For SDPA it is returned additive (0 / -inf in the query's dtype):
    SDPA would otherwise convert a bool mask in every layer; the values are those of its own conversion, so the
    results are the same.
    """
    causal = getattr(module, "is_causal", False) and query.shape[2] > 1
    key_of_call = (m, base, query.dtype, query.shape[0], query.shape[2], key.shape[2], causal, _STATIC_MASKS)
    holder = mask if mask is not None else prefix_mask  # lives as long as the forward: the memo hangs on it
    memo = _memo(holder) if holder is not None else None
    if memo is not None:
        hit = memo.get(key_of_call)
        if hit is not None and hit[0] is prefix_mask:
            return hit[1]
    out = _build_extended(mask, m, module, query, key, prefix_mask, base)
    if memo is not None:
        memo[key_of_call] = (prefix_mask, out)
    return out


def _build_extended(mask, m: int, module, query, key, prefix_mask, base: str) -> torch.Tensor | None:
    """`_extend_mask` without the memo."""
    if prefix_mask is not None and not _STATIC_MASKS and bool(prefix_mask.all()):
        prefix_mask = None  # every prefix position visible: the plain path
    if mask is None:
        out = _extend_absent(m, module, query, key, prefix_mask, base)
    else:
        out = _prepend(mask, m, prefix_mask)
    if base == "sdpa" and out is not None and out.dtype == torch.bool:
        out = _to_float(out, query.dtype, float("-inf"))
    return out


_MEMO = "_deepprompt_extended"


def _memo(mask: torch.Tensor) -> dict | None:
    """The extended masks built from ``mask`` in this forward, kept on the mask tensor itself: it lives exactly as
    long as the forward (gradient checkpointing's recomputation passes the same object), so nothing is reused
    across forwards. None while tracing (torch.compile, jit): the compiler sees one plain computation."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return None
    memo = getattr(mask, _MEMO, None)
    if memo is None:
        try:
            memo = {}
            setattr(mask, _MEMO, memo)
        except (AttributeError, RuntimeError):  # a tensor type that takes no attributes
            return None
    return memo


def _extend_absent(m: int, module, query, key, prefix_mask, base: str) -> torch.Tensor | None:
    """`_extend_mask` without an incoming mask: none where nothing is hidden, else the causal/prefix mask."""
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
    return _prepend(mask, m, prefix_mask)


def _prepend(mask: torch.Tensor, m: int, prefix_mask: torch.Tensor | None) -> torch.Tensor:
    """``mask`` (B, 1, q, n) with m prefix columns in front: visible, or per row as ``prefix_mask`` (B, m)."""
    if prefix_mask is None:
        prefix_shape = (*mask.shape[:-1], m)
        if mask.dtype == torch.bool:
            prefix = torch.ones(prefix_shape, dtype=torch.bool, device=mask.device)
        else:
            prefix = torch.zeros(prefix_shape, dtype=mask.dtype, device=mask.device)
        return torch.cat([prefix, mask], dim=-1)
    batch = max(mask.shape[0], prefix_mask.shape[0])
    prefix = prefix_mask.to(device=mask.device, dtype=torch.bool)[:, None, None, :]  # (B, 1, 1, m)
    prefix = prefix.expand(batch, mask.shape[1], mask.shape[2], m)
    if mask.dtype != torch.bool:
        prefix = _to_float(prefix, mask.dtype)
    return torch.cat([prefix, mask.expand(batch, -1, -1, -1)], dim=-1)


def _to_float(mask: torch.Tensor, dtype: torch.dtype, hidden: float | None = None) -> torch.Tensor:
    """A bool mask as an additive one: 0 where True, ``hidden`` (default the dtype's minimum) where False."""
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    return torch.where(mask, zero, torch.finfo(dtype).min if hidden is None else hidden)


def _materialise(
    mask: torch.Tensor | None, m: int, module, query, key, prefix_mask, base: str
) -> torch.Tensor:
    """The naive path: a full (B, 1, q, m + n) mask, built in every prompted layer even without padding."""
    batch, q, n = query.shape[0], query.shape[2], key.shape[2]
    if mask is None:
        mask = torch.ones(q, n, dtype=torch.bool, device=query.device)
        if getattr(module, "is_causal", False) and q > 1:
            mask = mask.tril(diagonal=n - q)
        mask = mask[None, None]
        if base == "eager":
            mask = _to_float(mask, query.dtype)
    mask = mask.expand(batch, mask.shape[1], q, n)
    return _prepend(mask, m, prefix_mask).contiguous()


def with_prefix(prefix: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """(B or 1, H, m, d) prefix in front of (B, H, n, d) keys or values -> (B, H, m + n, d).

    This copy is what a prompted layer costs beyond the longer attention, so both of its inputs are made
    contiguous in the layout the keys already have in memory: a concatenation with any strided input (a transposed
    view, a prefix expanded over the batch) takes the GPU's element-by-element kernel, 2.7-3.6x slower at batch 32
    than the vectorised one (docs/serving.md). Most encoders hand over the projection's (B, n, H, d) output viewed
    as (B, H, n, d): the concatenation then runs along n in that layout and the result is viewed back. Keys already
    contiguous in (B, H, n, d) (after a rotary embedding, from a cache) are concatenated along dim 2. Making the
    prefix contiguous copies B x m rows (none for one row or a per-row prefix in that layout). Attention kernels
    take either result.
    """
    batch = states.shape[0]
    prefix = prefix.to(states.dtype).expand(batch, -1, -1, -1)
    projected = states.transpose(1, 2)  # (B, n, H, d)
    if projected.is_contiguous() and not states.is_contiguous():
        return torch.cat([prefix.transpose(1, 2).contiguous(), projected], dim=1).transpose(1, 2)
    return torch.cat([prefix.contiguous(), states], dim=2)


def _with_prompts(base: str) -> Callable:
    def attention(module, query, key, value, attention_mask, deep_prompts=None, **kwargs):
        prompt = deep_prompts.get(module.layer_idx) if deep_prompts else None
        if prompt is not None:
            prefix_key, prefix_value = prompt[0], prompt[1]
            prefix_mask = prompt[2] if len(prompt) > 2 else None
            m = prefix_key.shape[2]
            key = with_prefix(prefix_key, key)  # (B, H, m+n, d)
            value = with_prefix(prefix_value, value)
            if not getattr(deep_prompts, "compact_mask", True):
                attention_mask = _materialise(
                    attention_mask, m, module, query, key[:, :, m:], prefix_mask, base
                )
            elif prefix_mask is None:
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


def _key_padding_only(mask_fn: Callable) -> Callable:
    """A mask function that builds a bidirectional mask as (B, 1, 1, kv) instead of (B, 1, q, kv).

    A bidirectional mask with padding depends on the key only, so one row broadcast over the queries holds
    the same values (SDPA and eager attention both broadcast the mask). Causal, sliding-window and custom
    (vmap) masks go to the stock function unchanged.
    """

    def mask(*args, mask_function: Callable | None = None, use_vmap: bool = False, **kwargs):
        if mask_function is bidirectional_mask_function and not use_vmap and not args:
            kwargs["q_length"] = 1
        if _STATIC_MASKS:  # both skips read padding_mask.all()
            kwargs["allow_is_bidirectional_skip"] = False
            kwargs["allow_is_causal_skip"] = False
        if mask_function is not None:
            kwargs["mask_function"] = mask_function
        return mask_fn(*args, use_vmap=use_vmap, **kwargs)

    mask.__name__ = f"{PREFIX}{mask_fn.__name__}"
    return mask


_MASKS = {"sdpa": _key_padding_only(sdpa_mask), "eager": _key_padding_only(eager_mask)}


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
