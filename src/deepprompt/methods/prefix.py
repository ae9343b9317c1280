"""Prefix tuning (Li & Liang, 2021) through peft: m trainable keys/values per layer via ``past_key_values``.

The maintained peer of P-Tuning v2. ``prefix_projection: true`` (registered as ``prefix_mlp``) trains an
embedding of width ``hidden`` and a two-layer tanh MLP (``hidden -> encoder_hidden_size -> 2 * layers *
hidden``) that emits the prefix, as Li & Liang; false trains the prefix directly. See `peft_wrapper` for how
the prefix, the attention mask and the positions reach BERT/RoBERTa.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepprompt.errors import ConfigError
from deepprompt.methods.base import MethodConfig, register_method


@dataclass
class PrefixMethodConfig(MethodConfig):
    name: str = "prefix"
    lr: float = 1e-2  # as P-Tuning v2: 5e-3 .. 2e-2
    num_virtual_tokens: int = 16
    prefix_projection: bool = False
    encoder_hidden_size: int = 512  # the projection MLP's hidden width (unused without projection)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_virtual_tokens < 1:
            raise ConfigError(f"method.num_virtual_tokens must be positive, got {self.num_virtual_tokens}")
        if self.encoder_hidden_size < 1:
            raise ConfigError(f"method.encoder_hidden_size must be positive, got {self.encoder_hidden_size}")


@dataclass
class PrefixMLPMethodConfig(PrefixMethodConfig):
    """``prefix`` with the reparameterization MLP on: its own name, so reports tell the two apart."""

    name: str = "prefix_mlp"
    prefix_projection: bool = True


def _build(backbone, cfg: PrefixMethodConfig):
    from peft import PrefixTuningConfig, TaskType  # peft loads only for the methods that use it

    from deepprompt.methods.peft_wrapper import PeftEncoder

    # FEATURE_EXTRACTION: a bare AutoModel (SEQ_CLS would look for a classifier on the backbone).
    config = PrefixTuningConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        num_virtual_tokens=cfg.num_virtual_tokens,
        prefix_projection=cfg.prefix_projection,
        encoder_hidden_size=cfg.encoder_hidden_size,
    )
    return PeftEncoder(backbone, config)


register_method("prefix", PrefixMethodConfig)(_build)
register_method("prefix_mlp", PrefixMLPMethodConfig)(_build)
