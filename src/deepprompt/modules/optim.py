"""AdamW with linear warm-up and linear decay, on the trainable parameters only."""

from __future__ import annotations

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from deepprompt.config import OptimConfig

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def build_optimizer(module: nn.Module, lr: float, cfg: OptimConfig, total_steps: int):
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith(_NO_DECAY) else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    fused = all(p.is_cuda for g in groups for p in g["params"])  # fused AdamW: one kernel per step on GPU
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=cfg.betas, eps=cfg.eps, fused=fused or None)
    warmup = int(cfg.warmup_ratio * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, max(total_steps, 1))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
