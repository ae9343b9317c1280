"""A method turns a bare backbone into the encoder that a task module trains.

Every method returns an ``nn.Module`` whose ``forward(**batch)`` gives the backbone's outputs (with
``last_hidden_state`` and, for BERT-like models, ``pooler_output``) and whose trainable parameters are
exactly what the method tunes. The task head lives in the task module, the same for every method.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deepprompt.errors import ConfigError, bad_value
from deepprompt.prompts.compiling import COMPILE_MODES, compile_backbone

if TYPE_CHECKING:  # the config classes import without torch (deepprompt-train checks them first)
    from torch import nn
    from transformers import PreTrainedModel


@dataclass
class MethodConfig:
    name: str = "ptuning_v2"
    lr: float = 1e-2  # each method's own sensible default; sweep it per method for a fair comparison

    def __post_init__(self) -> None:
        if not 0 < self.lr < math.inf:  # also refuses NaN
            raise bad_value("method.lr", "a positive number", self.lr, f"{type(self).lr:g}")


@dataclass
class CompileOptions:
    """``torch.compile`` of the frozen backbone, for the methods that offer it (docs/performance.md).

    A method config inherits these fields and calls ``check_compile()`` in its ``__post_init__``; its builder
    calls ``compile_frozen(backbone, cfg)`` on the module its forward calls.
    """

    # none | default | reduce-overhead (CUDA graphs) | max-autotune | max-autotune-no-cudagraphs. The first steps
    # pay the compile (tens of seconds).
    compile: str = "none"
    # None: automatic dynamic shapes (dynamic padding: one recompile, then symbolic sizes); False: one graph per
    # batch shape (pad to fixed lengths, as the benchmark does); True: symbolic from the start
    compile_dynamic: bool | None = None
    compile_backend: str = "inductor"  # aot_eager: dynamo + autograd tracing without code generation (debug)

    def check_compile(self) -> None:
        if self.compile not in COMPILE_MODES:
            raise bad_value("method.compile", f"one of {', '.join(COMPILE_MODES)}", self.compile, "default")


def compile_frozen(module: nn.Module, cfg: CompileOptions) -> None:
    """Compile ``module`` (the backbone a method's forward calls) in place as ``cfg`` says; no-op for ``none``."""
    if cfg.compile != "none":
        compile_backbone(module, cfg.compile, cfg.compile_backend, dynamic=cfg.compile_dynamic)


MethodBuilder = Callable[["PreTrainedModel", MethodConfig], "nn.Module"]
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
        raise ConfigError(
            f"unknown method {name!r}",
            key="method.name",
            fix=f"choose one of {', '.join(method_names())}, e.g. method=ptuning_v2 (method=<name> picks its config)",
        )
    return _REGISTRY[name][0]


def build_method(backbone: PreTrainedModel, cfg: MethodConfig) -> nn.Module:
    return _REGISTRY[cfg.name][1](backbone, cfg)
