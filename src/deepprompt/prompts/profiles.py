"""Named per-layer profiles: prompt lengths per layer and learning-rate multipliers per prompted layer.

Length profiles (``DeepPromptConfig.length = {profile: ..., base, c, min, max}``), for layer l = 0..L-1 of an
L-layer backbone, before clipping to [min, max] (``max`` None: no upper bound) and after rounding half-even:

- ``uniform``:     length(l) = round(base * c)
- ``middle``:      length(l) = round(base * c * (1 + 0.5 * sin(pi * l / L)))   (largest in the middle layers)
- ``linear_up``:   length(l) = round(base * c * (0.5 + l / (L - 1)))          (0.5x at the bottom, 1.5x at the top)
- ``linear_down``: length(l) = round(base * c * (1.5 - l / (L - 1)))          (1.5x at the bottom, 0.5x at the top)

``linear_up``/``linear_down`` keep the mean factor 1, so at equal ``base`` they spend about the same total
budget as ``uniform``; ``middle`` spends ~1.32x (mean of 1 + 0.5 sin) -- lower ``c`` to 1/1.32 ~ 0.76 for an
equal budget. A single-layer backbone (L = 1) uses factor 1.

Learning-rate multiplier profiles (``method.layer_lr = {profile: ..., ...}``), over the P prompted layers in
increasing layer order, i = 0..P-1:

- ``none``:            1 for every layer (no per-layer groups)
- ``early_mid_late``:  thirds of the prompted layers get ``early`` / ``middle`` / ``late`` (0.5 / 1.0 / 1.5);
                        layer i is in third floor(3 i / P)
- ``linear``:          from ``start`` to ``end`` linearly: start + (end - start) * i / (P - 1)
- ``geometric``:       ``ratio ** i`` (the bottom prompted layer at 1x, each next one ``ratio`` times that)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from deepprompt.errors import ConfigError

LENGTH_PROFILES = ("uniform", "middle", "linear_up", "linear_down")
LR_PROFILES = ("none", "early_mid_late", "linear", "geometric")
_LENGTH_KEYS = {"profile", "base", "c", "min", "max"}


def _factor(profile: str, layer: int, num_layers: int) -> float:
    if profile == "uniform" or num_layers == 1:
        return 1.0
    if profile == "middle":
        return 1.0 + 0.5 * math.sin(math.pi * layer / num_layers)
    if profile == "linear_up":
        return 0.5 + layer / (num_layers - 1)
    if profile == "linear_down":
        return 1.5 - layer / (num_layers - 1)
    raise ConfigError(f"unknown prompt length profile {profile!r}; choose one of {LENGTH_PROFILES}")


def check_length_profile(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The profile dict with defaults filled in (base 16, c 1.0, min 1, max None), validated."""
    spec = dict(spec)
    unknown = set(spec) - _LENGTH_KEYS
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)} in prompt length profile; valid: {sorted(_LENGTH_KEYS)}"
        )
    if "profile" not in spec:
        raise ConfigError(f"prompt length profile needs 'profile' (one of {LENGTH_PROFILES})")
    out = {"profile": spec["profile"], "base": 16, "c": 1.0, "min": 1, "max": None} | spec
    if out["profile"] not in LENGTH_PROFILES:
        raise ConfigError(
            f"unknown prompt length profile {out['profile']!r}; choose one of {LENGTH_PROFILES}"
        )
    if out["base"] <= 0 or out["c"] <= 0:
        raise ConfigError(
            f"prompt length profile: base and c must be positive, got {out['base']}, {out['c']}"
        )
    if out["min"] < 0 or (out["max"] is not None and out["max"] < max(out["min"], 1)):
        raise ConfigError(
            f"prompt length profile: need 0 <= min <= max, max >= 1; got {out['min']}, {out['max']}"
        )
    return out


def length_profile(spec: Mapping[str, Any], num_layers: int) -> list[int]:
    """One prompt length per layer (see the module docstring for the formulas)."""
    spec = check_length_profile(spec)
    lengths = []
    for layer in range(num_layers):
        value = round(spec["base"] * spec["c"] * _factor(spec["profile"], layer, num_layers))
        value = max(value, spec["min"])
        if spec["max"] is not None:
            value = min(value, spec["max"])
        lengths.append(int(value))
    return lengths


def lr_multipliers(spec: Mapping[str, Any] | None, num_prompted: int) -> list[float]:
    """One learning-rate multiplier per prompted layer (bottom to top); see the module docstring."""
    spec = dict(spec or {})
    profile = spec.get("profile", "none")
    n = num_prompted
    if profile == "none":
        return [1.0] * n
    if profile == "early_mid_late":
        parts = (spec.get("early", 0.5), spec.get("middle", 1.0), spec.get("late", 1.5))
        return [float(parts[min(2, (3 * i) // n)]) for i in range(n)]
    if profile == "linear":
        a, b = float(spec.get("start", 0.5)), float(spec.get("end", 1.5))
        return [a if n == 1 else a + (b - a) * i / (n - 1) for i in range(n)]
    if profile == "geometric":
        r = float(spec.get("ratio", 1.2))
        return [r**i for i in range(n)]
    raise ConfigError(f"unknown layer_lr profile {profile!r}; choose one of {LR_PROFILES}")
