"""P-Tuning v2 (ours): trainable prefix keys/values in the attention of every chosen layer."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepprompt.methods.base import MethodConfig, register_method
from deepprompt.prompts import DeepPromptConfig, add_deep_prompts


@dataclass
class PTuningV2Config(MethodConfig):
    name: str = "ptuning_v2"
    lr: float = 1e-2  # official scripts use 5e-3 .. 1e-2 for the prompts
    prompt: DeepPromptConfig = field(default_factory=DeepPromptConfig)


@register_method("ptuning_v2", PTuningV2Config)
def build_ptuning_v2(backbone, cfg: PTuningV2Config):
    # The task module owns the head, so the wrapper trains the prompts alone.
    return add_deep_prompts(backbone, cfg.prompt, train_head=False)
