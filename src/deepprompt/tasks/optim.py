"""AdamW with linear warm-up and linear decay, on the trainable parameters only.

Layer-wise learning rates (``method.layer_lr``, P-Tuning v2): each prompted layer's prompt is its own
parameter group ``prompt_layer_<l>`` with ``lr * multiplier(l)`` (profiles in `deepprompt.prompts.profiles`);
the remaining trainable parameters (the head) keep the base lr. Lightning's `LearningRateMonitor` logs every
group by its name (``lr-AdamW/prompt_layer_<l>``); the warm-up/decay schedule scales each group's own lr.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from torch import nn

from deepprompt.config import OptimConfig


def _linear_warmup_decay(step: int, warmup: int, total: int) -> float:
    """The learning-rate factor: 0 -> 1 over ``warmup`` steps, then 1 -> 0 at ``total``."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def linear_schedule_with_warmup(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """transformers' ``get_linear_schedule_with_warmup``, the same factor at every step, without importing
    ``transformers.optimization`` (whose trainer utilities import peft: a second at start-up)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(_linear_warmup_decay, warmup=warmup, total=total)
    )


_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def _layer_lr_spec(module: nn.Module) -> Mapping[str, Any] | None:
    spec = getattr(getattr(module, "method_cfg", None), "layer_lr", None)
    if spec is None:
        return None
    return spec if isinstance(spec, Mapping) else vars(spec)


def layer_groups(
    module: nn.Module, lr: float, layer_lr: Mapping[str, Any] | None, weight_decay: float
) -> list[dict]:
    """One parameter group per prompted layer (``name: prompt_layer_<l>``), or [] when ``layer_lr`` is off."""
    from deepprompt.prompts.encoder import PromptEncoder  # lazy: keeps this module light
    from deepprompt.prompts.profiles import lr_multipliers

    if not layer_lr or layer_lr.get("profile", "none") == "none":
        return []
    encoders = [m for m in module.modules() if isinstance(m, PromptEncoder)]
    if len(encoders) != 1:
        raise ValueError(f"layer_lr needs exactly one PromptEncoder in the module, found {len(encoders)}")
    params = encoders[0].layer_parameters()  # {layer: Parameter}, bottom to top
    multipliers = lr_multipliers(layer_lr, len(params))
    return [
        {
            "params": [param],
            "lr": lr * mult,
            "weight_decay": weight_decay,
            "name": f"prompt_layer_{layer}",
            "lr_multiplier": mult,
        }
        for (layer, param), mult in zip(params.items(), multipliers, strict=True)
        if param.requires_grad
    ]


def build_optimizer(
    module: nn.Module,
    lr: float,
    cfg: OptimConfig,
    total_steps: int,
    layer_lr: Mapping[str, Any] | None = None,
):
    """``layer_lr`` defaults to ``module.method_cfg.layer_lr`` where the module has one."""
    per_layer = layer_groups(
        module, lr, layer_lr if layer_lr is not None else _layer_lr_spec(module), cfg.weight_decay
    )
    taken = {id(p) for g in per_layer for p in g["params"]}
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if param.requires_grad and id(param) not in taken:
            (no_decay if name.endswith(_NO_DECAY) else decay).append(param)
    groups = [  # base-lr groups first: ``param_groups[0]`` (logged as train/lr) keeps the base lr
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        *per_layer,
    ]
    groups = [g for g in groups if g["params"]]
    fused = all(p.is_cuda for g in groups for p in g["params"])  # fused AdamW: one kernel per step on GPU
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=cfg.betas, eps=cfg.eps, fused=fused or None)
    warmup = int(cfg.warmup_ratio * total_steps)
    scheduler = linear_schedule_with_warmup(optimizer, warmup, max(total_steps, 1))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
