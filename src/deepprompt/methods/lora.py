"""LoRA (Hu et al., 2021): trainable low-rank updates B·A (scaled by alpha / r) on the chosen linear layers."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepprompt.errors import ConfigError, bad_value
from deepprompt.methods.base import MethodConfig, register_method


@dataclass
class LoraMethodConfig(MethodConfig):
    name: str = "lora"
    lr: float = 1e-3  # LoRA on BERT-size encoders: 5e-4 .. 1e-3
    r: int = 8
    alpha: float = 16.0  # the update is scaled by alpha / r
    dropout: float = 0.1  # on the LoRA input
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])  # BERT/RoBERTa names
    bias: str = "none"  # 'none', 'all' or 'lora_only' (which biases train too)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.r < 1:
            raise bad_value("method.r", "a positive integer", self.r, 8)
        if not 0.0 <= self.dropout < 1.0:
            raise bad_value("method.dropout", "in [0, 1)", self.dropout, 0.1)
        if self.bias not in ("none", "all", "lora_only"):
            raise bad_value("method.bias", "'none', 'all' or 'lora_only'", self.bias, "none")
        if not self.target_modules:
            raise ConfigError(
                "method.target_modules must name at least one module, got []",
                key="method.target_modules",
                fix="pass e.g. method.target_modules=[query,value]",
            )


@register_method("lora", LoraMethodConfig)
def build_lora(backbone, cfg: LoraMethodConfig):
    from peft import LoraConfig, TaskType  # peft loads only for the methods that use it

    from deepprompt.methods.peft_wrapper import PeftEncoder

    config = LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION,  # a bare AutoModel; the task module owns the head
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        bias=cfg.bias,
    )
    return PeftEncoder(backbone, config)
