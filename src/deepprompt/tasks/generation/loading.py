"""Offline causal LMs for generation: Hub names, local folders, and GGUF files shipped inside Python packages.

``name_or_path`` forms: `deepprompt.backbones.resolve_model_path` (``gguf:<package>/<file>.gguf``, a ``.gguf``
path, or anything ``from_pretrained`` takes: ``gpt2``, ``t5-base``, a folder).
With ``pretrained: false`` and ``config_overrides.model_type`` set, a random model is built from the overrides
alone (tests: ``backbone=tiny_llama``), its vocabulary sized to the tokenizer.
"""

from __future__ import annotations

import logging

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from deepprompt.backbones import resolve_model_path
from deepprompt.errors import ConfigError

__all__ = ["encoder_decoder_message", "load_causal_lm", "load_tokenizer", "resolve_model_path"]

log = logging.getLogger(__name__)


def load_tokenizer(name_or_path: str):
    folder, gguf = resolve_model_path(name_or_path)
    tok = AutoTokenizer.from_pretrained(folder, **({"gguf_file": gguf} if gguf else {}))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"  # decoder-only generation
    return tok


def encoder_decoder_message(name: str) -> str:
    return (
        f"backbone {name} is an encoder-decoder: the generation module and the E2E/WebNLG data modules train "
        "decoder-only LMs (prompt + target in one sequence). For T5 use "
        "deepprompt.prompts.seq2seq.add_seq2seq_deep_prompts (P-Tuning v2) or peft's own seq2seq wrappers "
        "directly (prefix / prompt tuning / LoRA: peft 0.21.2 generate() runs on transformers 5.23, "
        "tests/tasks/generation/test_peft_generation.py)"
    )


def load_causal_lm(cfg, vocab_size: int | None = None):
    """The causal LM with its head (``cfg``: a `BackboneConfig`)."""
    overrides = dict(cfg.config_overrides)
    if not cfg.pretrained and "model_type" in overrides:
        model_type = overrides.pop("model_type")
        if vocab_size is not None:
            overrides.setdefault("vocab_size", vocab_size)
        config = AutoConfig.for_model(model_type, **overrides)
        if config.is_encoder_decoder:
            raise ConfigError(encoder_decoder_message(cfg.name))
        log.info("Building a random %s causal LM from config_overrides", model_type)
        return AutoModelForCausalLM.from_config(
            config, attn_implementation=cfg.attn_implementation, dtype=torch.float32
        )
    folder, gguf = resolve_model_path(cfg.name_or_path)
    extra = {"gguf_file": gguf} if gguf else {}
    if "t5" in cfg.name_or_path.lower() or "t5" in cfg.name.lower():
        raise ConfigError(encoder_decoder_message(cfg.name))
    if cfg.pretrained:
        log.info("Loading pretrained causal LM %s from %s", cfg.name, cfg.name_or_path)
        return AutoModelForCausalLM.from_pretrained(
            folder, attn_implementation=cfg.attn_implementation, dtype=torch.float32, **extra, **overrides
        )
    config = AutoConfig.from_pretrained(folder, **extra, **overrides)
    return AutoModelForCausalLM.from_config(
        config, attn_implementation=cfg.attn_implementation, dtype=torch.float32
    )
