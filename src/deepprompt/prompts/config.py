"""`DeepPromptConfig`: what the deep prompts look like (length, depth, reparameterization)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from deepprompt.errors import ConfigError, bad_value
from deepprompt.prompts.profiles import check_length_profile, length_profile

REPARAMS = ("none", "mlp")
INITS = ("normal", "uniform")
_TOP_BOTTOM = re.compile(r"^(top|bottom)-(\d+)$")
KEY = "method.prompt"  # where a run's config holds these options (the messages name the full key)


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
            raise bad_value(f"{KEY}.reparam", "'none' or 'mlp'", self.reparam, "mlp")
        if self.init not in INITS:
            raise bad_value(f"{KEY}.init", "'normal' or 'uniform'", self.init, "normal")
        if self.reparam_hidden <= 0:
            raise bad_value(f"{KEY}.reparam_hidden", "a positive integer", self.reparam_hidden, 512)
        if not 0.0 <= self.dropout < 1.0:
            raise bad_value(f"{KEY}.dropout", "in [0, 1)", self.dropout, 0.1)
        if not self.init_std > 0:
            raise bad_value(f"{KEY}.init_std", "a positive number", self.init_std, 1.0)
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
                    f"{KEY}.length lists {len(self.length)} lengths but the backbone has {num_layers} layers, "
                    f"got {self.length}",
                    key=f"{KEY}.length",
                    fix=f"give exactly one length per layer (0 = no prompt), {num_layers} in all, or one length "
                    f"for every layer, e.g. {KEY}.length=16",
                )
            lengths = list(self.length)
        lengths = [n if i in chosen else 0 for i, n in enumerate(lengths)]
        if not any(lengths):
            raise ConfigError(
                f"{KEY}.length={self.length!r} with {KEY}.layers={self.layers!r} prompts no layer at all",
                key=f"{KEY}.layers",
                fix=f"choose layers whose length is > 0, e.g. {KEY}.layers=all",
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
                raise bad_value(
                    f"{KEY}.layers", "'all', 'top-k', 'bottom-k' or a list of layer indices", spec, "all"
                )
            side, k = match.group(1), int(match.group(2))
            if k <= 0 or (num_layers is not None and k > num_layers):
                raise ConfigError(
                    f"{KEY}.layers={spec!r}: k must be in 1..{num_layers or 'L'} (the backbone's layers)",
                    key=f"{KEY}.layers",
                    fix=f"pass e.g. {KEY}.layers={side}-{min(4, num_layers or 4)} or {KEY}.layers=all",
                )
            if num_layers is None:
                return []
            return list(range(num_layers - k, num_layers)) if side == "top" else list(range(k))
        layers = sorted(set(spec))
        if not layers:
            raise ConfigError(
                f"{KEY}.layers is an empty list",
                key=f"{KEY}.layers",
                fix=f"give at least one layer index, e.g. {KEY}.layers=[0,1], or {KEY}.layers=all",
            )
        if num_layers is not None:
            bad = [i for i in layers if not 0 <= i < num_layers]
            if bad:
                raise ConfigError(
                    f"{KEY}.layers: indices {bad} out of range, the backbone has layers 0..{num_layers - 1}",
                    key=f"{KEY}.layers",
                    fix=f"give indices in 0..{num_layers - 1}, or {KEY}.layers=all",
                )
        return layers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalise_length(length: Any) -> int | list[int] | dict[str, Any]:
    key = f"{KEY}.length"
    if hasattr(length, "items"):  # dict / DictConfig: a named profile
        try:
            return check_length_profile({str(k): v for k, v in length.items()})
        except ConfigError as err:
            fix = f"pass e.g. {key}={{profile:middle,base:16}}"
            raise ConfigError(f"{key}: {err.problem}", key=key, fix=fix) from None
    if isinstance(length, str | bool | float) or (isinstance(length, int) and length <= 0):
        raise bad_value(key, "a positive integer", length, 16)
    if isinstance(length, int):
        return length
    try:
        lengths = list(length)
    except TypeError:
        raise bad_value(key, "a positive integer", length, 16) from None
    per_layer = f"pass one length per layer (0 = no prompt), e.g. {key}=[0,8,16,16], or {key}=16"
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in lengths):
        raise ConfigError(
            f"{key}: per-layer lengths must be integers >= 0, got {lengths}", key=key, fix=per_layer
        )
    if not any(lengths):
        raise ConfigError(
            f"{key} has per-layer lengths all 0 (no layer would get a prompt), got {lengths}",
            key=key,
            fix=per_layer,
        )
    return lengths
