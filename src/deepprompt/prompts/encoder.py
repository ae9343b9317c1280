"""`PromptEncoder`: the trainable parameters that produce every prompted layer's prefix keys and values.

Two parameterizations, as in the paper:
- ``none``: the prefix keys/values are the parameters themselves, ``(m, L_p * 2 * kv_width)``.
- ``mlp``: an embedding ``(m, hidden)`` goes through ``Linear -> tanh -> Linear`` to the same shape. The MLP
  only helps optimisation; `fold()` replaces it by its output, so inference and saved prompts never carry it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepprompt.prompts.config import DeepPromptConfig
from deepprompt.prompts.geometry import BackboneGeometry


class PromptEncoder(nn.Module):
    def __init__(self, config: DeepPromptConfig, geometry: BackboneGeometry):
        super().__init__()
        self.config = config
        self.geometry = geometry
        self.layer_ids = config.resolve_layers(geometry.num_layers)
        self.length = config.length
        width = len(self.layer_ids) * 2 * geometry.kv_width
        self.reparam = config.reparam
        if config.reparam == "mlp":
            self.embedding = nn.Parameter(self._init((config.length, geometry.hidden_size)))
            self.mlp = nn.Sequential(
                nn.Linear(geometry.hidden_size, config.reparam_hidden),
                nn.Tanh(),
                nn.Linear(config.reparam_hidden, width),
            )
        else:
            self.prefix = nn.Parameter(self._init((config.length, width)))
        self.dropout = nn.Dropout(config.dropout)

    def _init(self, shape: tuple[int, int]) -> torch.Tensor:
        if self.config.init == "uniform":
            bound = self.config.init_std * math.sqrt(3.0)  # same variance as the normal init
            return torch.empty(shape).uniform_(-bound, bound)
        return torch.randn(shape) * self.config.init_std

    def flat(self) -> torch.Tensor:
        """All prefixes as one tensor, ``(m, L_p * 2 * kv_width)``, before dropout."""
        return self.mlp(self.embedding) if self.reparam == "mlp" else self.prefix

    def forward(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """``{layer_idx: (key, value)}``, each ``(1, kv_heads, m, head_dim)`` (broadcast over the batch)."""
        g = self.geometry
        flat = self.dropout(self.flat())  # (m, Lp*2*kv_width)
        kv = flat.view(self.length, len(self.layer_ids), 2, g.num_kv_heads, g.head_dim)
        kv = kv.permute(1, 2, 3, 0, 4).unsqueeze(2)  # (Lp, 2, 1, kv_heads, m, head_dim)
        return {layer: (kv[i, 0], kv[i, 1]) for i, layer in enumerate(self.layer_ids)}

    @torch.no_grad()
    def fold(self) -> None:
        """Replace the MLP by the prefix it computes (inference needs only that tensor)."""
        if self.reparam != "mlp":
            return
        prefix = self.flat().detach().clone()
        del self.mlp, self.embedding
        self.prefix = nn.Parameter(prefix)
        self.reparam = "none"
