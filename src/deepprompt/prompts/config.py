"""`DeepPromptConfig`: what the deep prompts look like (length, depth, reparameterization)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from deepprompt.errors import ConfigError
from deepprompt.prompts.profiles import check_length_profile, length_profile

REPARAMS = ("none", "mlp")
INITS = ("normal", "uniform")
_TOP_BOTTOM = re.compile(r"^(top|bottom)-(\d+)$")


@dataclass
class DeepPromptConfig:
    """Deep prompts (P-Tuning v2): ``length`` trainable key/value vectors in the attention of chosen layers.

    ``layers`` is ``"all"``, ``"top-k"`` (the k layers nearest the output), ``"bottom-k"`` (nearest the
    input) or an explicit list of 0-based layer indices.

    ``length`` is one of
    - an int: the same number of prompt vectors in every chosen layer (the paper's setting);
    - a list with one length per backbone layer (0 = no prompt in that layer; its size must equal the
      backbone's layer count, checked by `resolve_lengths`); it generalises depth and combines with ``layers``
      (a layer gets a prompt when ``layers`` chooses it and its length is > 0);
    - a named profile ``{profile: uniform|middle|linear_up|linear_down, base: 16, c: 1.0, min: 1, max: None}``,
      e.g. ``middle``: length(l) = round(base * c * (1 + 0.5 * sin(pi * l / L))) clipped to [min, max]
      (all formulas in `deepprompt.prompts.profiles`).

    ``split_layers`` makes every prompted layer's prompt its own parameter (``prefixes.<layer>``), as needed for
    per-layer learning rates; per-layer (non-uniform) lengths imply it.
    """

    length: Any = field(
        default=16,
        metadata={"help": "prompt tokens per layer: int, list (one per layer, 0 = none) or {profile: ...}"},
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
    split_layers: bool = field(
        default=False, metadata={"help": "one parameter per prompted layer (implied by per-layer lengths)"}
    )

    def __post_init__(self) -> None:
        self.length = _normalise_length(self.length)
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

    @property
    def uniform_length(self) -> int | None:
        """The single per-layer length when ``length`` is an int, else None."""
        return self.length if isinstance(self.length, int) else None

    def resolve_lengths(self, num_layers: int) -> list[int]:
        """One prompt length per backbone layer (0 where there is no prompt), validated against ``num_layers``."""
        chosen = set(self.resolve_layers_spec(num_layers))
        if isinstance(self.length, int):
            lengths = [self.length] * num_layers
        elif isinstance(self.length, dict):
            lengths = length_profile(self.length, num_layers)
        else:
            if len(self.length) != num_layers:
                raise ConfigError(
                    f"prompt length list has {len(self.length)} entries but the backbone has {num_layers} "
                    f"layers: give exactly one length per layer (0 = no prompt), got {self.length}"
                )
            lengths = list(self.length)
        lengths = [n if i in chosen else 0 for i, n in enumerate(lengths)]
        if not any(lengths):
            raise ConfigError(
                f"prompt lengths {self.length!r} with layers {self.layers!r} prompt no layer at all"
            )
        return lengths

    def resolve_layers(self, num_layers: int | None) -> list[int]:
        """The sorted layer indices that get prompts (chosen by ``layers`` and of length > 0), validated
        against ``num_layers`` when given."""
        layers = self.resolve_layers_spec(num_layers)
        if num_layers is None or isinstance(self.length, int):
            return layers
        lengths = self.resolve_lengths(num_layers)
        return [i for i in layers if lengths[i] > 0]

    def resolve_layers_spec(self, num_layers: int | None) -> list[int]:
        """The layers chosen by ``layers`` alone (ignoring zero lengths)."""
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


def _normalise_length(length: Any) -> int | list[int] | dict[str, Any]:
    if hasattr(length, "items"):  # dict / DictConfig: a named profile
        return check_length_profile({str(k): v for k, v in length.items()})
    if isinstance(length, str | bool | float):
        raise ConfigError(f"prompt length must be a positive integer, got {length!r}")
    if isinstance(length, int):
        if length <= 0:
            raise ConfigError(f"prompt length must be a positive integer, got {length!r}")
        return length
    try:
        lengths = list(length)
    except TypeError:
        raise ConfigError(f"prompt length must be a positive integer, got {length!r}") from None
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in lengths):
        raise ConfigError(f"per-layer prompt lengths must be integers >= 0, got {lengths}")
    if not any(lengths):
        raise ConfigError(f"per-layer prompt lengths are all 0: no layer would get a prompt ({lengths})")
    return lengths
