"""P-Tuning v1 (Liu et al., 2021) through peft: m input prompt embeddings produced by an MLP or LSTM encoder.

Only the input layer sees the prompt; the encoder (``reparam``) is trained with it: ``mlp`` is
``hidden -> h -> h -> hidden`` with ReLUs, ``lstm`` a bidirectional LSTM of ``encoder_num_layers`` layers
followed by ``2h -> 2h -> hidden`` (h = ``encoder_hidden_size``, default the backbone's width). Unlike the
original, the prompt is prepended (no template positions). The head reads the first real token (index m);
see `peft_wrapper`.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepprompt.errors import bad_value
from deepprompt.methods.base import MethodConfig, register_method

_REPARAM = {"mlp": "MLP", "lstm": "LSTM"}  # peft.PromptEncoderReparameterizationType values


@dataclass
class PTuningV1Config(MethodConfig):
    name: str = "ptuning_v1"
    lr: float = 1e-2  # sweep 1e-2 .. 3e-2
    num_virtual_tokens: int = 20
    reparam: str = "mlp"  # 'mlp' or 'lstm'
    encoder_hidden_size: int | None = None  # None: the backbone's hidden size
    encoder_num_layers: int = 2  # LSTM layers (the MLP has 3 linear layers, always)
    encoder_dropout: float = 0.0  # between LSTM layers

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_virtual_tokens < 1:
            raise bad_value("method.num_virtual_tokens", "a positive integer", self.num_virtual_tokens, 20)
        if self.reparam not in _REPARAM:
            raise bad_value("method.reparam", "'mlp' or 'lstm'", self.reparam, "mlp")
        if self.encoder_num_layers < 1:
            raise bad_value("method.encoder_num_layers", "a positive integer", self.encoder_num_layers, 2)


@register_method("ptuning_v1", PTuningV1Config)
def build_ptuning_v1(backbone, cfg: PTuningV1Config):
    from peft import PromptEncoderConfig, TaskType  # peft loads only for the methods that use it

    from deepprompt.methods.peft_wrapper import PeftEncoder

    config = PromptEncoderConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        num_virtual_tokens=cfg.num_virtual_tokens,
        encoder_reparameterization_type=_REPARAM[cfg.reparam],
        encoder_hidden_size=cfg.encoder_hidden_size or backbone.config.hidden_size,
        encoder_num_layers=cfg.encoder_num_layers,
        encoder_dropout=cfg.encoder_dropout,
    )
    return PeftEncoder(backbone, config)
