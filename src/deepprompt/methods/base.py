"""A method turns a bare backbone into the encoder that a task module trains.

Every method returns an ``nn.Module`` whose ``forward(**batch)`` gives the backbone's outputs (with
``last_hidden_state`` and, for BERT-like models, ``pooler_output``) and whose trainable parameters are
exactly what the method tunes. The task head lives in the task module, the same for every method.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from transformers import PreTrainedModel

from deepprompt.errors import ConfigError


@dataclass
class MethodConfig:
    name: str = "ptuning_v2"
    lr: float = 1e-2  # each method's own sensible default; sweep it per method for a fair comparison

    def __post_init__(self) -> None:
        if not 0 < self.lr < math.inf:  # also refuses NaN
            raise ConfigError(f"method.lr must be positive, got {self.lr}")


MethodBuilder = Callable[[PreTrainedModel, MethodConfig], nn.Module]
_REGISTRY: dict[str, tuple[type[MethodConfig], MethodBuilder]] = {}


def register_method(name: str, config_cls: type[MethodConfig]):
    """Decorator: ``@register_method("lora", LoraMethodConfig)`` on a builder ``(backbone, cfg) -> nn.Module``."""

    def wrap(builder: MethodBuilder) -> MethodBuilder:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is registered twice")
        _REGISTRY[name] = (config_cls, builder)
        return builder

    return wrap


def method_names() -> list[str]:
    return sorted(_REGISTRY)


def method_schema(name: str) -> type[MethodConfig]:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}; choose one of {method_names()}")
    return _REGISTRY[name][0]


def build_method(backbone: PreTrainedModel, cfg: MethodConfig) -> nn.Module:
    return _REGISTRY[cfg.name][1](backbone, cfg)
