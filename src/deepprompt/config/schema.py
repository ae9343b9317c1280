"""Typed config sections: a misspelt key or a bad value fails before training, naming key and valid choices.

Each section of the composed Hydra config is merged onto its dataclass schema with OmegaConf (unknown keys and
type errors fail there) and then turned into the dataclass (whose ``__post_init__`` checks ranges). Sections that
also hold keys of another owner (``data``: the data module's constructor; ``trainer``: Lightning's) are checked on
the keys their schema names (:func:`typed_keys`); the owner checks the rest.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from deepprompt.config.cli_errors import unknown_key_message
from deepprompt.errors import ConfigError
from deepprompt.tasks.classification.tasks import label_map_by_raw  # the task registry: no torch

T = TypeVar("T")


@dataclass
class BackboneConfig:
    """The ``backbone`` section (`deepprompt.backbones.load_backbone` builds it)."""

    name: str = "minilm"
    name_or_path: str = (
        "sentence-transformers/all-MiniLM-L6-v2"  # hub name or local folder (also the tokenizer)
    )
    pretrained: bool = True  # false: random weights from the config (tests, speed benchmarks)
    attn_implementation: str = "sdpa"  # 'sdpa' or 'eager' (deep prompts wrap either)
    # e.g. tiny shapes for tests; with pretrained false, ``model_type`` builds that architecture from these alone
    config_overrides: dict[str, Any] = field(default_factory=dict)
    # the head's input: 'pooler' (official P-Tuning v2 head input), 'cls' (last hidden state of [CLS]) or 'last'
    # (the last real token: decoder-only backbones, whose last token is the only one that has read the whole text)
    pooling: str = "pooler"
    # the modules LoRA adapts on this backbone (method=lora reads it; None: the method's own default, BERT's names)
    lora_target_modules: list[str] | None = None


@dataclass
class HeadConfig:
    # 'pooler' (BERT's pooler output, as the official code), 'cls' (hidden state of [CLS]) or 'last' (hidden state
    # of the last real token, for decoder-only backbones: found from the attention mask, so either padding side works)
    pooling: str = "pooler"
    dropout: float = 0.1  # on the pooled vector, before the linear head

    def __post_init__(self) -> None:
        if self.pooling not in ("pooler", "cls", "last"):
            raise ConfigError(f"head.pooling must be 'pooler', 'cls' or 'last', got {self.pooling!r}")
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
        if not self.weight_decay >= 0:  # also refuses NaN
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"optim.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(
                f"optim.betas must be two numbers in [0, 1), e.g. [0.9, 0.999], got {list(self.betas)}"
            )
        if not self.eps > 0 or not math.isfinite(self.eps):
            raise ConfigError(f"optim.eps must be a positive number, got {self.eps}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError(f"optim.max_grad_norm must be positive or null, got {self.max_grad_norm}")
        self.betas = tuple(self.betas)


@dataclass
class RunConfig:
    """Top-level keys of a training run."""

    seed: int = 42


@dataclass
class DataConfig:
    """The ``data`` keys shared by the data modules (the others are the module's own constructor arguments)."""

    batch_size: int = 32
    eval_batch_size: int | None = None
    max_seq_length: int = 128
    num_workers: int = 0
    group_by_length: bool = False
    pad_to_multiple_of: int | None = None
    limit_train_examples: int | None = None
    limit_eval_examples: int | None = None
    seed: int = 42
    # what the labels of local classification files mean, {raw label: label name}, e.g. {0: entailment, ...}
    label_map: dict[str, str] | None = None
    # where tokenized splits are kept for the next run (deepprompt.data.cache); null: tokenize every run
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ConfigError(f"data.pad_to_multiple_of must be >= 1 or null, got {self.pad_to_multiple_of}")


@dataclass
class TrainerConfig:
    """The ``trainer`` keys deepprompt relies on (Lightning checks its others)."""

    max_epochs: int | None = None
    max_steps: int = -1

    def __post_init__(self) -> None:
        if self.max_epochs is not None and self.max_epochs != -1 and self.max_epochs < 1:
            raise ConfigError(
                f"trainer.max_epochs must be >= 1 (or -1: no limit), got {self.max_epochs}: nothing would train"
            )
        if self.max_steps != -1 and self.max_steps < 1:
            raise ConfigError(f"trainer.max_steps must be >= 1 (or -1: no limit), got {self.max_steps}")


def typed_keys(cls: type[T], data: Any, where: str) -> T:
    """:func:`structured` on the keys of ``data`` that ``cls`` names (the section's other keys are left alone,
    unresolved: e.g. ``trainer.default_root_dir`` interpolates Hydra's runtime, set only inside a job)."""
    names = [name for name in _field_names(cls) if name in (data or {})]
    subset = {name: data[name] for name in names}  # a DictConfig resolves just these keys
    subset = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in subset.items()
    }
    if subset.get("label_map") is not None:  # numbers as keys (data.label_map={0: entailment}): as text
        subset["label_map"] = label_map_by_raw(subset["label_map"], where)
    return structured(cls, subset, where)


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
        raise ConfigError(unknown_key_message(_dotted(where, key), _valid_keys(cls, key))) from None
    except ValidationError as err:
        key = getattr(err, "full_key", "")
        raise ConfigError(f"bad value for '{_dotted(where, key)}': {str(err).splitlines()[0]}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"invalid {where or 'top-level'} config: {err}") from None
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}" if where else str(err)) from None


def _dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


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
