"""Typed config sections: a misspelt key or a bad value fails before training, naming key and valid choices.

Each section of the composed Hydra config is merged onto its dataclass schema with OmegaConf (unknown keys and
type errors fail there) and then turned into the dataclass (whose ``__post_init__`` checks ranges). Sections that
also hold keys of another owner (``data``: the data module's constructor; ``trainer``: Lightning's) are checked on
the keys their schema names (:func:`typed_keys`); the owner checks the rest.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from deepprompt.config.cli_errors import unknown_key_fix
from deepprompt.errors import ConfigError, bad_value
from deepprompt.tasks.classification.tasks import label_map_by_raw  # the task registry: no torch

T = TypeVar("T")


@dataclass
class BackboneConfig:
    """The ``backbone`` section (`deepprompt.backbones.load_backbone` builds it)."""

    name: str = "minilm"
    # hub name or local folder (also the tokenizer)
    name_or_path: str = "sentence-transformers/all-MiniLM-L6-v2"
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
            raise bad_value("head.pooling", "'pooler', 'cls' or 'last'", self.pooling, "cls")
        if not 0.0 <= self.dropout < 1.0:
            raise bad_value("head.dropout", "in [0, 1)", self.dropout, 0.1)


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
            raise bad_value("optim.weight_decay", ">= 0", self.weight_decay, 0.01)
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise bad_value("optim.warmup_ratio", "in [0, 1)", self.warmup_ratio, 0.1)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise bad_value("optim.betas", "two numbers in [0, 1)", list(self.betas), "[0.9,0.999]")
        if not self.eps > 0 or not math.isfinite(self.eps):
            raise bad_value("optim.eps", "a positive number", self.eps, 1e-8)
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise bad_value("optim.max_grad_norm", "positive or null", self.max_grad_norm, 1.0)
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
            raise bad_value("data.num_workers", ">= 0", self.num_workers, 0)
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise bad_value("data.pad_to_multiple_of", ">= 1 or null", self.pad_to_multiple_of, 8)


@dataclass
class TrainerConfig:
    """The ``trainer`` keys deepprompt relies on (Lightning checks its others)."""

    max_epochs: int | None = None
    max_steps: int = -1

    def __post_init__(self) -> None:
        if self.max_epochs is not None and self.max_epochs != -1 and self.max_epochs < 1:
            raise bad_value(
                "trainer.max_epochs", ">= 1 (or -1: no limit; 0 trains nothing)", self.max_epochs, 3
            )
        if self.max_steps != -1 and self.max_steps < 1:
            raise bad_value("trainer.max_steps", ">= 1 (or -1: no limit)", self.max_steps, 1000)


def typed_keys(cls: type[T], data: Any, where: str) -> T:
    """:func:`structured` on the keys of ``data`` that ``cls`` names (the section's other keys are left alone,
    unresolved: e.g. ``trainer.default_root_dir`` interpolates Hydra's runtime, set only inside a job)."""
    names = [name for name in _field_names(cls) if name in (data or {})]
    subset = {name: data[name] for name in names}  # a DictConfig resolves just these keys
    subset = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in subset.items()
    }
    if subset.get("label_map") is not None:  # numbers as keys (data.label_map={0: entailment}): as text
        try:
            subset["label_map"] = label_map_by_raw(subset["label_map"], where)
        except ConfigError as err:
            raise ConfigError(err.problem, key=f"{where}.label_map", fix=err.fix) from None
    return structured(cls, subset, where)


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def structured(cls: type[T], data: Any, where: str) -> T:
    """``data`` (dict or DictConfig) checked against dataclass ``cls``, whose keys live under ``where`` (e.g.
    'method'; '' for top-level keys). A ConfigError names the full dotted key (``key``) and the fix; the
    dataclasses' own checks raise theirs with the full key."""
    if isinstance(data, DictConfig):
        data = OmegaConf.to_container(data, resolve=True)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), data or {})
        return OmegaConf.to_object(merged)
    except ConfigKeyError as err:
        key = getattr(err, "full_key", None) or str(err)
        full = _dotted(where, key)
        # the same words as a typo on the command line (deepprompt.config.cli_errors): did you mean, valid keys
        fix = unknown_key_fix(full, _field_names(_level(cls, key)))
        raise ConfigError(f"unknown key '{full}'", key=full, fix=fix) from None
    except ValidationError as err:
        raise _wrong_type(cls, where, err) from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"invalid {where or 'top-level'} config: {err}") from None


def _dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _wrong_type(cls, where: str, err: ValidationError) -> ConfigError:
    """``<key> must be an integer, got 'abc': pass e.g. <key>=<its default>`` for a value of the wrong type."""
    key = str(getattr(err, "full_key", "") or "")
    full = _dotted(where, key)
    level = _level(cls, key)
    leaf = key.rpartition(".")[2]
    field = {f.name: f for f in dataclasses.fields(level)}.get(leaf)
    rule = _type_rule(_type_hints(level).get(leaf))
    problem = (
        f"{full} must be {rule}, got {err.value!r}"
        if rule and hasattr(err, "value")
        else f"bad value for '{full}': {str(err).splitlines()[0]}"
    )
    default = dataclasses.MISSING
    if field is not None:
        default = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
    fix = f"pass e.g. {full}={_as_override(default)}" if default is not dataclasses.MISSING else None
    return ConfigError(problem, key=full, fix=fix)


_RULES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _type_rule(hint: Any) -> str | None:
    """How a value of the annotated type is written (``int | None``: 'an integer or null'); None if not simple."""
    args = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else ()
    )
    kinds = [a for a in args if a is not type(None)] if args else [hint]
    if len(kinds) != 1 or kinds[0] not in _RULES:
        return None
    return _RULES[kinds[0]] + (" or null" if type(None) in args else "")


def _as_override(value: Any) -> str:
    """``value`` as written on the command line: true/false, null, [a,b]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_as_override(v) for v in value) + "]"
    return str(value)


def _type_hints(cls) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: the message goes without the rule
        return {}


def _level(cls, key: str):
    """The dataclass that holds the last part of the dotted ``key`` (descending into nested dataclasses)."""
    for part in key.split(".")[:-1]:
        field = {f.name: f for f in dataclasses.fields(cls)}.get(part)
        default = (
            field.default_factory() if field and field.default_factory is not dataclasses.MISSING else None
        )
        if default is None or not dataclasses.is_dataclass(default):
            break
        cls = type(default)
    return cls
