"""Prefix tuning (Li & Liang, 2021) through peft: m trainable keys/values per layer via ``past_key_values``.

The maintained peer of P-Tuning v2. ``prefix_projection: true`` (registered as ``prefix_mlp``) trains an
embedding of width ``hidden`` and a two-layer tanh MLP (``hidden -> encoder_hidden_size -> 2 * layers *
hidden``) that emits the prefix, as Li & Liang; false trains the prefix directly. See `peft_wrapper` for how
the prefix, the attention mask and the positions reach BERT/RoBERTa.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepprompt.errors import bad_value
from deepprompt.methods.base import CompileOptions, MethodConfig, compile_frozen, register_method


@dataclass
class PrefixMethodConfig(MethodConfig, CompileOptions):
    """Prefix tuning's options; ``compile``, ``compile_dynamic`` and ``compile_backend`` come from `CompileOptions`."""

    name: str = "prefix"
    lr: float = 1e-2  # as P-Tuning v2: 5e-3 .. 2e-2
    num_virtual_tokens: int = 16
    prefix_projection: bool = False
    encoder_hidden_size: int = 512  # the projection MLP's hidden width (unused without projection)
    # std of the prefix embedding's normal init; null keeps peft's (nn.Embedding: N(0, 1)). N(0, 1) keys/values
    # wreck a pretrained causal LM at the start (SmolLM2 on E2E: loss 2.8 -> 7.9; with 0.1: 3.6).
    init_std: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_compile()
        if self.num_virtual_tokens < 1:
            raise bad_value("method.num_virtual_tokens", "a positive integer", self.num_virtual_tokens, 16)
        if self.encoder_hidden_size < 1:
            raise bad_value("method.encoder_hidden_size", "a positive integer", self.encoder_hidden_size, 512)
        if self.init_std is not None and self.init_std <= 0:
            raise bad_value("method.init_std", "positive or null", self.init_std, 0.1)


def peft_prefix_config(cfg: PrefixMethodConfig, task_type: str):
    """peft's ``PrefixTuningConfig`` for ``cfg`` (``task_type``: a peft ``TaskType`` value)."""
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(
        task_type=task_type,
        num_virtual_tokens=cfg.num_virtual_tokens,
        prefix_projection=cfg.prefix_projection,
        encoder_hidden_size=cfg.encoder_hidden_size,
    )


def init_prefix(peft_model, cfg: PrefixMethodConfig) -> None:
    """Re-draw the prefix embedding from N(0, ``cfg.init_std``) (no-op when ``init_std`` is null)."""
    if cfg.init_std is None:
        return
    import torch

    embedding = peft_model.prompt_encoder[peft_model.active_adapter].embedding
    with torch.no_grad():
        embedding.weight.normal_(0.0, cfg.init_std)


@dataclass
class PrefixMLPMethodConfig(PrefixMethodConfig):
    """``prefix`` with the reparameterization MLP on: its own name, so reports tell the two apart."""

    name: str = "prefix_mlp"
    prefix_projection: bool = True


def _build(backbone, cfg: PrefixMethodConfig):
    from peft import TaskType  # peft loads only for the methods that use it

    from deepprompt.methods.peft_wrapper import PeftEncoder

    # FEATURE_EXTRACTION: a bare AutoModel (SEQ_CLS would look for a classifier on the backbone).
    encoder = PeftEncoder(backbone, peft_prefix_config(cfg, TaskType.FEATURE_EXTRACTION))
    init_prefix(encoder.peft, cfg)
    compile_frozen(encoder.backbone, cfg)  # the module PeftEncoder calls with past_key_values
    return encoder


register_method("prefix", PrefixMethodConfig)(_build)
register_method("prefix_mlp", PrefixMLPMethodConfig)(_build)
