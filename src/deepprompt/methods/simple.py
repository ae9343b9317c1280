"""Reference points: full fine-tuning and a linear probe (head only)."""

from __future__ import annotations

from dataclasses import dataclass

from deepprompt.methods.base import MethodConfig, register_method


@dataclass
class FinetuneConfig(MethodConfig):
    name: str = "finetune"
    lr: float = 2e-5


@dataclass
class LinearProbeConfig(MethodConfig):
    name: str = "linear_probe"
    lr: float = 1e-3


@register_method("finetune", FinetuneConfig)
def build_finetune(backbone, cfg):
    return backbone.requires_grad_(True)


@register_method("linear_probe", LinearProbeConfig)
def build_linear_probe(backbone, cfg):
    return backbone.requires_grad_(False)
