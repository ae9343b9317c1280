"""`PromptEncoder`: the trainable parameters that produce every prompted layer's prefix keys and values.

Two parameterizations, as in the paper:
- ``none``: the prefix keys/values are the parameters themselves.
- ``mlp``: an embedding ``(m, hidden)`` goes through ``Linear -> tanh -> Linear`` to the same shape. The MLP
  only helps optimisation; `fold()` replaces it by its output, so inference and saved prompts never carry it.

Two layouts of the ``none`` parameters:
- joint (uniform length, ``split_layers`` false; the original layout): one parameter ``prefix`` of shape
  ``(m, L_p * 2 * kv_width)``;
- split (per-layer lengths, or ``split_layers``): one parameter per prompted layer, ``prefixes[str(layer)]``
  of shape ``(m_l, 2 * kv_width)`` -- so an optimizer can give each layer its own learning rate.
Both use the same column order per layer, ``(2 [key, value], kv_heads, head_dim)``.

With ``mlp`` and per-layer lengths, the shared MLP produces ``m_max`` rows for every layer and layer l keeps
its first ``m_l`` rows (the rows past m_l are computed and discarded; `fold()` keeps only the used ones).
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
        all_lengths = config.resolve_lengths(geometry.num_layers)
        self.layer_ids = config.resolve_layers(geometry.num_layers)
        self.lengths = {layer: all_lengths[layer] for layer in self.layer_ids}  # {layer: m_l}
        self.length = max(self.lengths.values())  # m_max (== m for uniform prompts)
        self.split = config.split_layers or len(set(self.lengths.values())) > 1
        self.reparam = config.reparam
        width = len(self.layer_ids) * 2 * geometry.kv_width
        if config.reparam == "mlp":
            self.embedding = nn.Parameter(self._init((self.length, geometry.hidden_size)))
            self.mlp = nn.Sequential(
                nn.Linear(geometry.hidden_size, config.reparam_hidden),
                nn.Tanh(),
                nn.Linear(config.reparam_hidden, width),
            )
        elif self.split:
            self.prefixes = nn.ParameterDict(
                {
                    str(layer): nn.Parameter(self._init((m, 2 * geometry.kv_width)))
                    for layer, m in self.lengths.items()
                }
            )
        else:
            self.prefix = nn.Parameter(self._init((self.length, width)))
        self.dropout = nn.Dropout(config.dropout)

    def _init(self, shape: tuple[int, int]) -> torch.Tensor:
        if self.config.init == "uniform":
            bound = self.config.init_std * math.sqrt(3.0)  # same variance as the normal init
            return torch.empty(shape).uniform_(-bound, bound)
        return torch.randn(shape) * self.config.init_std

    # -- the prefix as tensors ------------------------------------------------------------------------------
    def flat(self) -> torch.Tensor:
        """All prefixes as one tensor, ``(m, L_p * 2 * kv_width)``, before dropout (uniform lengths only)."""
        if len(set(self.lengths.values())) > 1:
            raise ValueError(
                "flat() needs one length for every layer; use layer_tensors() for per-layer lengths"
            )
        if self.reparam == "mlp":
            return self.mlp(self.embedding)
        if self.split:
            return torch.cat([self.prefixes[str(layer)] for layer in self.layer_ids], dim=1)
        return self.prefix

    def layer_tensors(self) -> dict[int, torch.Tensor]:
        """``{layer: (m_l, 2 * kv_width)}`` before dropout, columns ``(2 [key, value], kv_heads, head_dim)``."""
        w = 2 * self.geometry.kv_width
        if self.split and self.reparam != "mlp":
            return {layer: self.prefixes[str(layer)] for layer in self.layer_ids}
        flat = self.mlp(self.embedding) if self.reparam == "mlp" else self.prefix
        return {
            layer: flat[: self.lengths[layer], i * w : (i + 1) * w] for i, layer in enumerate(self.layer_ids)
        }

    @torch.no_grad()
    def set_layer_tensors(self, tensors: dict[int, torch.Tensor]) -> None:
        """Overwrite the (folded) prompts with ``{layer: (m_l, 2 * kv_width)}`` tensors of the same shapes."""
        if self.reparam == "mlp":
            raise ValueError("fold() the MLP reparameterization before setting prompt tensors")
        for layer, target in self.layer_tensors().items():
            source = tensors[layer]
            if tuple(source.shape) != tuple(target.shape):
                raise ValueError(
                    f"layer {layer}: prompt of shape {tuple(source.shape)}, expected {tuple(target.shape)}"
                )
            target.copy_(source)

    def layer_parameters(self) -> dict[int, nn.Parameter]:
        """``{layer: parameter}`` in the split layout (each prompted layer's prompt is its own parameter)."""
        if not self.split or self.reparam == "mlp":
            raise ValueError(
                "per-layer parameters need the split layout without MLP reparameterization "
                "(set prompt.split_layers=true and prompt.reparam=none)"
            )
        return {layer: self.prefixes[str(layer)] for layer in self.layer_ids}

    def per_layer_counts(self) -> dict[int, int]:
        """Prompt numbers each prompted layer contributes (``m_l * 2 * kv_width``; what inference stores)."""
        return {layer: m * 2 * self.geometry.kv_width for layer, m in self.lengths.items()}

    def forward(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """``{layer_idx: (key, value)}``, each ``(1, kv_heads, m_l, head_dim)`` (broadcast over the batch)."""
        g = self.geometry
        if not self.split and self.reparam != "mlp":  # the original joint layout: one view, one dropout
            flat = self.dropout(self.prefix)  # (m, Lp*2*kv_width)
            kv = flat.view(self.length, len(self.layer_ids), 2, g.num_kv_heads, g.head_dim)
            kv = kv.permute(1, 2, 3, 0, 4).unsqueeze(2)  # (Lp, 2, 1, kv_heads, m, head_dim)
            return {layer: (kv[i, 0], kv[i, 1]) for i, layer in enumerate(self.layer_ids)}
        out = {}
        for layer, tensor in self.layer_tensors().items():
            m = tensor.shape[0]
            kv = self.dropout(tensor).view(m, 2, g.num_kv_heads, g.head_dim).permute(1, 2, 0, 3).unsqueeze(1)
            out[layer] = (kv[0], kv[1])  # each (1, kv_heads, m_l, head_dim)
        return out

    @torch.no_grad()
    def fold(self) -> None:
        """Replace the MLP by the prefix it computes (inference needs only that tensor)."""
        if self.reparam != "mlp":
            return
        if self.split:
            tensors = {layer: t.detach().clone() for layer, t in self.layer_tensors().items()}
            del self.mlp, self.embedding
            self.prefixes = nn.ParameterDict({str(layer): nn.Parameter(t) for layer, t in tensors.items()})
        else:
            prefix = self.flat().detach().clone()
            del self.mlp, self.embedding
            self.prefix = nn.Parameter(prefix)
        self.reparam = "none"
