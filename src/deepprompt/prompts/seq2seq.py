"""Deep prompts in encoder-decoder models (T5): separate prompts for the encoder and the decoder stack.

T5 in transformers 5.23 goes through the attention interface (``T5Attention`` looks up
``config._attn_implementation``), and every ``T5Attention`` has a ``layer_idx`` -- but the encoder and the
decoder each number their blocks from 0, and a decoder block's self- and cross-attention share one index.
So the causal engine's ``{layer_idx: (key, value)}`` cannot tell the stacks apart. Here the prompts are keyed
``(role, layer_idx)`` with role ``"encoder"`` (encoder self-attention), ``"decoder"`` (decoder causal
self-attention) or ``"cross"`` (decoder cross-attention, optional), and we register
``deepprompt_t5_sdpa`` / ``deepprompt_t5_eager``: they find the role from the module (``is_decoder``,
``is_causal``), prepend the prefix keys/values, extend the mask by m visible columns and T5's relative
``position_bias`` by m zero columns (a prefix has no relative position), then call the stock function.

As in the decoder-only engine, the prefix is added after the cache update: the decoder's self-attention
cache holds real tokens only, and the cross-attention cache holds the encoder states only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

from deepprompt.errors import UnsupportedBackboneError
from deepprompt.prompts.attention import with_prefix
from deepprompt.prompts.config import DeepPromptConfig
from deepprompt.prompts.encoder import PromptEncoder
from deepprompt.prompts.geometry import BackboneGeometry

PREFIX = "deepprompt_t5_"
SUPPORTED_BASES = ("sdpa", "eager")
ROLES = ("encoder", "decoder", "cross")
SUPPORTED_TYPES = ("t5", "mt5", "umt5")


def _role(module) -> str:
    if not getattr(module, "is_decoder", False):
        return "encoder"
    return "decoder" if getattr(module, "is_causal", False) else "cross"


def _extend(mask, bias, m: int, causal: bool, query, key):
    """Prepend m visible columns to the mask (building the causal one if needed) and m zeros to the bias."""
    q, n = query.shape[2], key.shape[2]
    if mask is None and causal and q > 1:
        mask = torch.ones(q, n, dtype=torch.bool, device=query.device).tril(diagonal=n - q)[None, None]
    if mask is not None:
        fill = torch.ones if mask.dtype == torch.bool else torch.zeros
        prefix = fill((*mask.shape[:-1], m), dtype=mask.dtype, device=mask.device)
        mask = torch.cat([prefix, mask], dim=-1)
    if bias is not None:
        bias = torch.cat([bias.new_zeros((*bias.shape[:-1], m)), bias], dim=-1)
    return mask, bias


def _with_prompts(base: str) -> Callable:
    def attention(module, query, key, value, attention_mask, deep_prompts=None, position_bias=None, **kwargs):
        prompt = deep_prompts.get((_role(module), module.layer_idx)) if deep_prompts else None
        if prompt is not None:
            prefix_key, prefix_value = prompt
            m = prefix_key.shape[2]
            causal = _role(module) == "decoder"
            attention_mask, position_bias = _extend(attention_mask, position_bias, m, causal, query, key)
            key, value = with_prefix(prefix_key, key), with_prefix(prefix_value, value)
            if base == "sdpa":
                kwargs["is_causal"] = False  # causality, if any, is in the explicit mask now
        inner = (
            sdpa_attention_forward
            if base == "sdpa"
            else sys.modules[type(module).__module__].eager_attention_forward
        )
        return inner(module, query, key, value, attention_mask, position_bias=position_bias, **kwargs)

    attention.__name__ = f"{PREFIX}{base}"
    return attention


def register() -> None:
    for base, mask_fn in (("sdpa", sdpa_mask), ("eager", eager_mask)):
        AttentionInterface.register(f"{PREFIX}{base}", _with_prompts(base))
        AttentionMaskInterface.register(f"{PREFIX}{base}", mask_fn)


register()


@dataclass
class Seq2SeqPromptConfig:
    """One `DeepPromptConfig` per stack; ``cross`` (decoder cross-attention) is off unless given."""

    encoder: DeepPromptConfig
    decoder: DeepPromptConfig | None = None
    cross: DeepPromptConfig | None = None


def _geometry(model: PreTrainedModel, num_layers: int) -> BackboneGeometry:
    c = model.config
    return BackboneGeometry(
        model_type=c.model_type,
        num_layers=num_layers,
        num_kv_heads=c.num_heads,
        head_dim=c.d_kv,
        hidden_size=c.d_model,
        max_positions=None,
    )


class Seq2SeqDeepPromptModel(nn.Module):
    """A frozen T5 whose encoder/decoder (and optionally cross-) attention layers see trainable prefixes.

    ``forward``/``generate`` take T5's own arguments. The trainable parameters are the prompt encoders only
    (the LM head and the tied embeddings stay frozen).
    """

    def __init__(self, model: PreTrainedModel, config: Seq2SeqPromptConfig):
        super().__init__()
        check_seq2seq_supported(model)
        self.model = model
        self.config = config
        c = model.config
        layers = {"encoder": c.num_layers, "decoder": c.num_decoder_layers, "cross": c.num_decoder_layers}
        self.prompt_encoders = nn.ModuleDict(
            {
                role: PromptEncoder(cfg, _geometry(model, layers[role]))
                for role, cfg in (
                    ("encoder", config.encoder),
                    ("decoder", config.decoder),
                    ("cross", config.cross),
                )
                if cfg is not None
            }
        )
        base = c._attn_implementation.removeprefix(PREFIX)
        if base not in SUPPORTED_BASES:
            raise ValueError(f"deep prompts in T5 support attention {SUPPORTED_BASES}, not {base!r}")
        model.set_attn_implementation(f"{PREFIX}{base}")
        model.requires_grad_(False)

    def prompts(self) -> dict:
        return {
            (role, layer): kv for role, enc in self.prompt_encoders.items() for layer, kv in enc().items()
        }

    def forward(self, *args, **kwargs):
        return self.model(*args, deep_prompts=self.prompts(), **kwargs)

    @torch.no_grad()
    def generate(self, *args, **kwargs):
        from deepprompt.prompts.model import _accept_deep_prompts

        was = self.training
        self.prompt_encoders.eval()
        try:
            prompts = self.prompts()
        finally:
            self.prompt_encoders.train(was)
        with _accept_deep_prompts(self.model):
            return self.model.generate(*args, deep_prompts=prompts, **kwargs)


def check_seq2seq_supported(model: nn.Module) -> None:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SUPPORTED_TYPES or not getattr(model.config, "is_encoder_decoder", False):
        raise UnsupportedBackboneError(
            f"{type(model).__name__} ({model_type}) is not a supported encoder-decoder for deep prompts: "
            f"supported are {SUPPORTED_TYPES} (T5Attention through transformers' attention interface, with "
            "layer_idx); for decoder-only models use add_deep_prompts"
        )


def add_seq2seq_deep_prompts(
    model: PreTrainedModel,
    encoder: DeepPromptConfig,
    decoder: DeepPromptConfig | None = None,
    cross: DeepPromptConfig | None = None,
) -> Seq2SeqDeepPromptModel:
    """Freeze a T5 and give its encoder (and decoder, and optionally cross-) attention trainable prefixes.

    ``decoder`` defaults to a copy of the ``encoder`` config; pass ``cross`` to prompt cross-attention too.
    """
    if decoder is None:
        decoder = DeepPromptConfig(**encoder.to_dict())
    return Seq2SeqDeepPromptModel(model, Seq2SeqPromptConfig(encoder, decoder, cross))
