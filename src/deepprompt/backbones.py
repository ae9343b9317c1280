"""Build the (frozen) backbone named in config: pretrained from a hub name or local folder, or random from a config."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, PreTrainedModel

from deepprompt.config.resolvers import local_model_path  # noqa: F401 - its former home

log = logging.getLogger(__name__)


@dataclass
class BackboneConfig:
    name: str = "minilm"
    name_or_path: str = (
        "sentence-transformers/all-MiniLM-L6-v2"  # hub name or local folder (also the tokenizer)
    )
    pretrained: bool = True  # false: random weights from the config (tests, speed benchmarks)
    attn_implementation: str = "sdpa"  # 'sdpa' or 'eager' (deep prompts wrap either)
    # e.g. tiny shapes for tests; with pretrained false, ``model_type`` builds that architecture from these alone
    config_overrides: dict[str, Any] = field(default_factory=dict)
    pooling: str = (
        "pooler"  # 'pooler' (official P-Tuning v2 head input) or 'cls' (last hidden state of [CLS])
    )


def load_backbone(cfg: BackboneConfig) -> PreTrainedModel:
    """The bare encoder (AutoModel: no task head); the task module adds its own head."""
    if cfg.pretrained:
        log.info("Loading pretrained backbone %s from %s", cfg.name, cfg.name_or_path)
        model = AutoModel.from_pretrained(
            cfg.name_or_path,
            attn_implementation=cfg.attn_implementation,
            dtype=torch.float32,
            **cfg.config_overrides,
        )
    else:
        overrides = dict(cfg.config_overrides)
        if "model_type" in overrides:  # a random model of another architecture (name_or_path: its tokenizer)
            config = AutoConfig.for_model(overrides.pop("model_type"), **overrides)
        else:
            config = AutoConfig.from_pretrained(cfg.name_or_path, **overrides)
        log.info("Building randomly initialised backbone %s (%s)", cfg.name, config.model_type)
        model = AutoModel.from_config(
            config, attn_implementation=cfg.attn_implementation, dtype=torch.float32
        )
    return model
