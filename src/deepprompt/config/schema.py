"""Typed config sections: a misspelt key or a bad value fails before training, naming key and valid choices.

Each section of the composed Hydra config is merged onto its dataclass schema with OmegaConf (unknown keys and
type errors fail there) and then turned into the dataclass (whose ``__post_init__`` checks ranges).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from deepprompt.config.cli_errors import unknown_key_message
from deepprompt.errors import ConfigError

T = TypeVar("T")


@dataclass
class HeadConfig:
    pooling: str = (
        "pooler"  # 'pooler' (BERT's pooler output, as the official code) or 'cls' (hidden state of [CLS])
    )
    dropout: float = 0.1  # on the pooled vector, before the linear head

    def __post_init__(self) -> None:
        if self.pooling not in ("pooler", "cls"):
            raise ConfigError(f"head.pooling must be 'pooler' or 'cls', got {self.pooling!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"head.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class OptimConfig:
    weight_decay: float = 0.0  # official P-Tuning v2 scripts use none on the prompts
    warmup_ratio: float = 0.0  # share of steps with linear warm-up, then linear decay to 0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    max_grad_norm: float | None = (
        None  # None: no clipping (set trainer.gradient_clip_val instead if preferred)
    )

    def __post_init__(self) -> None:
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"optim.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        self.betas = tuple(self.betas)


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def structured(cls: type[T], data: Any, where: str) -> T:
    """``data`` (dict or DictConfig) checked against dataclass ``cls``; errors name ``where`` (e.g. 'method')."""
    if isinstance(data, DictConfig):
        data = OmegaConf.to_container(data, resolve=True)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), data or {})
        return OmegaConf.to_object(merged)
    except ConfigKeyError as err:
        key = getattr(err, "full_key", None) or str(err)
        # the same line as a typo on the command line (deepprompt.config.cli_errors): did you mean, valid keys
        raise ConfigError(unknown_key_message(f"{where}.{key}", _valid_keys(cls, key))) from None
    except ValidationError as err:
        key = getattr(err, "full_key", "")
        raise ConfigError(f"bad value for '{where}.{key}': {str(err).splitlines()[0]}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"invalid {where} config: {err}") from None
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _valid_keys(cls, key: str) -> list[str]:
    """Field names at the level of the bad key (descending into nested dataclasses)."""
    for part in key.split(".")[:-1]:
        field = {f.name: f for f in dataclasses.fields(cls)}.get(part)
        default = (
            field.default_factory() if field and field.default_factory is not dataclasses.MISSING else None
        )
        if default is None or not dataclasses.is_dataclass(default):
            break
        cls = type(default)
    return _field_names(cls)
