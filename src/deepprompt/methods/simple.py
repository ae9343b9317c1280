"""Reference points: full fine-tuning and a linear probe (head only)."""

from __future__ import annotations

from dataclasses import dataclass

from deepprompt.errors import bad_value
from deepprompt.methods.base import MethodConfig, register_method


@dataclass
class FinetuneConfig(MethodConfig):
    name: str = "finetune"
    lr: float = 2e-5


@dataclass
class LinearProbeConfig(MethodConfig):
    name: str = "linear_probe"
    lr: float = 1e-3
    # Frozen backbone weights in bf16/fp16 (needs trainer.precision=bf16-mixed); fp32 keeps the loaded weights.
    # The head (in the task module) stays fp32.
    frozen_dtype: str = "fp32"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.frozen_dtype not in ("fp32", "bf16", "fp16"):
            raise bad_value("method.frozen_dtype", "fp32, bf16 or fp16", self.frozen_dtype, "fp32")


@register_method("finetune", FinetuneConfig)
def build_finetune(backbone, cfg):
    return backbone.requires_grad_(True)


@register_method("linear_probe", LinearProbeConfig)
def build_linear_probe(backbone, cfg: LinearProbeConfig):
    if cfg.frozen_dtype != "fp32":
        from deepprompt.prompts.model import resolve_dtype  # torch: only when a model is built

        backbone.to(resolve_dtype(cfg.frozen_dtype))
    return backbone.requires_grad_(False)
