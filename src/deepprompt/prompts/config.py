"""`DeepPromptConfig`: what the deep prompts look like (length, depth, reparameterization)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from deepprompt.errors import ConfigError

REPARAMS = ("none", "mlp")
INITS = ("normal", "uniform")
_TOP_BOTTOM = re.compile(r"^(top|bottom)-(\d+)$")


@dataclass
class DeepPromptConfig:
    """Deep prompts (P-Tuning v2): ``length`` trainable key/value vectors in the attention of chosen layers.

    ``layers`` is ``"all"``, ``"top-k"`` (the k layers nearest the output), ``"bottom-k"`` (nearest the
    input) or an explicit list of 0-based layer indices.
    """

    length: int = field(
        default=16, metadata={"help": "prompt tokens per layer (paper: 4-32 for classification)"}
    )
    layers: Any = field(
        default="all", metadata={"help": "'all', 'top-k', 'bottom-k' or a list of layer indices"}
    )
    reparam: str = field(
        default="none", metadata={"help": "'none' or 'mlp' (the paper's reparameterization)"}
    )
    reparam_hidden: int = field(default=512, metadata={"help": "hidden width of the MLP reparameterization"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the prefix keys/values while training"})
    init: str = field(
        default="normal", metadata={"help": "'normal' (N(0, init_std), as the official code) or 'uniform'"}
    )
    init_std: float = field(
        default=1.0, metadata={"help": "scale of the initial prompts (official code: 1.0)"}
    )

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length <= 0:
            raise ConfigError(f"prompt length must be a positive integer, got {self.length!r}")
        if self.reparam not in REPARAMS:
            raise ConfigError(f"prompt reparam must be one of {REPARAMS}, got {self.reparam!r}")
        if self.init not in INITS:
            raise ConfigError(f"prompt init must be one of {INITS}, got {self.init!r}")
        if self.reparam_hidden <= 0:
            raise ConfigError(f"prompt reparam_hidden must be positive, got {self.reparam_hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"prompt dropout must be in [0, 1), got {self.dropout}")
        if self.init_std <= 0:
            raise ConfigError(f"prompt init_std must be positive, got {self.init_std}")
        if not isinstance(self.layers, str):
            self.layers = [int(i) for i in self.layers]  # ListConfig / tuple -> list of int
        else:
            self.resolve_layers(None)  # syntax check only

    def resolve_layers(self, num_layers: int | None) -> list[int]:
        """The sorted layer indices that get prompts, validated against ``num_layers`` when given."""
        spec = self.layers
        if isinstance(spec, str):
            if spec == "all":
                return list(range(num_layers)) if num_layers is not None else []
            match = _TOP_BOTTOM.match(spec)
            if not match:
                raise ConfigError(
                    f"prompt layers must be 'all', 'top-k', 'bottom-k' or a list of indices, got {spec!r}"
                )
            side, k = match.group(1), int(match.group(2))
            if k <= 0 or (num_layers is not None and k > num_layers):
                raise ConfigError(f"prompt layers {spec!r}: k must be in 1..{num_layers or 'L'}")
            if num_layers is None:
                return []
            return list(range(num_layers - k, num_layers)) if side == "top" else list(range(k))
        layers = sorted(set(spec))
        if not layers:
            raise ConfigError("prompt layers is an empty list: give at least one layer index")
        if num_layers is not None:
            bad = [i for i in layers if not 0 <= i < num_layers]
            if bad:
                raise ConfigError(
                    f"prompt layer indices {bad} out of range: the backbone has layers 0..{num_layers - 1}"
                )
        return layers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
