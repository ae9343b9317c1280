"""P-Tuning v2 (ours): trainable prefix keys/values in the attention of every chosen layer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from deepprompt.errors import ConfigError, bad_value
from deepprompt.methods.base import CompileOptions, MethodConfig, compile_frozen, register_method
from deepprompt.prompts import DeepPromptConfig
from deepprompt.prompts.profiles import LR_PROFILES


@dataclass
class LayerLRConfig:
    """Per-prompted-layer learning-rate multipliers (formulas in `deepprompt.prompts.profiles`)."""

    profile: str = "none"  # none | early_mid_late | linear | geometric
    early: float = 0.5  # early_mid_late: bottom third of the prompted layers
    middle: float = 1.0  # early_mid_late: middle third
    late: float = 1.5  # early_mid_late: top third
    start: float = 0.5  # linear: multiplier of the bottom prompted layer
    end: float = 1.5  # linear: multiplier of the top prompted layer
    ratio: float = 1.2  # geometric: each layer ratio x the one below (bottom layer 1x)

    def __post_init__(self) -> None:
        if self.profile not in LR_PROFILES:
            raise bad_value(
                "method.layer_lr.profile", f"one of {', '.join(LR_PROFILES)}", self.profile, "linear"
            )
        for name in ("early", "middle", "late", "start", "end", "ratio"):
            value = getattr(self, name)
            if not value > 0:  # also refuses NaN
                raise bad_value(
                    f"method.layer_lr.{name}", "a positive multiplier", value, getattr(LayerLRConfig, name)
                )


@dataclass
class PTuningV2Config(MethodConfig, CompileOptions):
    """P-Tuning v2's options; ``compile``, ``compile_dynamic`` and ``compile_backend`` come from `CompileOptions`."""

    name: str = "ptuning_v2"
    lr: float = 1e-2  # official scripts use 5e-3 .. 1e-2 for the prompts
    prompt: DeepPromptConfig = field(default_factory=DeepPromptConfig)
    layer_lr: LayerLRConfig = field(default_factory=LayerLRConfig)
    # Frozen backbone weights in bf16 (speed, docs/performance.md): needs trainer.precision=bf16-mixed.
    # fp32 keeps the loaded weights; the prompts and the head are fp32 either way.
    frozen_dtype: str = "fp32"
    # CUDA graphs without a compiler (speed, docs/performance.md): the training forward and backward are captured
    # once per batch shape (under a second each, no compile) and replayed; eval stays eager. Not with `compile`.
    cuda_graphs: bool = False
    cuda_graph_shapes: int = 16  # at most this many batch shapes get graphs; others run eager
    # The engine's fast paths (`DeepPromptModel`); each keeps the results equal, false is the plain path that a
    # benchmark's "before" row measures. compact_mask: no mask without padding, (B, 1, 1, m + T) with it (false:
    # (B, 1, T, m + T) in every layer); cache_prompts: eval forwards reuse the prefix keys/values; detach_below:
    # no backward through the layers below the lowest prompted one.
    compact_mask: bool = True
    cache_prompts: bool = True
    detach_below: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_compile()
        if self.frozen_dtype not in ("fp32", "bf16", "fp16"):
            raise bad_value("method.frozen_dtype", "fp32, bf16 or fp16", self.frozen_dtype, "fp32")
        if self.cuda_graphs and self.compile != "none":
            raise ConfigError(
                f"method.cuda_graphs captures the eager kernels; it does not combine with method.compile="
                f"{self.compile!r} (reduce-overhead is torch.compile's own CUDA graphs)",
                key="method.cuda_graphs",
                fix="choose one: pass method.cuda_graphs=false or method.compile=none",
            )
        if self.cuda_graph_shapes < 1:
            raise bad_value("method.cuda_graph_shapes", "at least 1", self.cuda_graph_shapes, 16)


@register_method("ptuning_v2", PTuningV2Config)
def build_ptuning_v2(backbone, cfg: PTuningV2Config):
    from deepprompt.prompts import add_deep_prompts  # torch: only when a model is built

    prompt = cfg.prompt
    if cfg.layer_lr.profile != "none":
        if prompt.reparam != "none":
            raise ConfigError(
                f"method.layer_lr.profile={cfg.layer_lr.profile} needs method.prompt.reparam=none: the MLP "
                "reparameterization shares its weights across layers, so there is no per-layer parameter to give "
                "its own learning rate",
                key="method.layer_lr.profile",
                fix="pass method.prompt.reparam=none or method.layer_lr.profile=none",
            )
        prompt = dataclasses.replace(prompt, split_layers=True)  # one parameter per prompted layer
    # The task module owns the head, so the wrapper trains the prompts alone.
    frozen = None if cfg.frozen_dtype == "fp32" else cfg.frozen_dtype
    model = add_deep_prompts(
        backbone,
        prompt,
        train_head=False,
        frozen_dtype=frozen,
        compact_mask=cfg.compact_mask,
        cache_prompts=cfg.cache_prompts,
        detach_below=cfg.detach_below,
    )
    compile_frozen(model.model, cfg)  # the backbone; the prompts enter it as its `deep_prompts` argument
    if cfg.cuda_graphs:
        model.enable_cuda_graphs(cfg.cuda_graph_shapes)
    return model
