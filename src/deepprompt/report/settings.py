"""A run's *setting*: the Hydra overrides that tell it apart from its siblings in a sweep, as one sortable string.

A setting is a run's overrides minus the seed, the group selections that have their own column (``data=``,
``method=``, ``backbone=``) and the switches that do not change the result (``debug=``, ``extras.*``,
``hydra.*``, ...). ``method.`` is dropped from the keys, so ``method.prompt.length=16`` reads
``prompt.length=16``. Rows that differ only by seed share a setting. Text only: no files are read here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

DEFAULT_SETTING = "default"
# override keys that are not part of a setting: the seed, selections with their own column, run plumbing
IGNORED_KEYS = frozenset(
    {
        "seed",
        "data",
        "method",
        "backbone",
        "debug",
        "task_name",
        "tags",
        "local",
        "hparams_search",
        "ckpt_path",
        "resume",
    }
)
IGNORED_PREFIXES = ("extras.", "hydra.", "paths.", "logger")


def _split_override(override: str) -> tuple[str, str] | None:
    override = override.strip().lstrip("~+")
    if "=" not in override:
        return None
    key, value = override.split("=", 1)
    return key.strip(), value.strip()


def setting_parts(overrides: Iterable[str], ignore: Iterable[str] = ()) -> dict[str, str]:
    """``{key: value}`` of the overrides that make up a setting (``method.`` dropped from keys), sorted by key."""
    ignored = IGNORED_KEYS | set(ignore)
    parts: dict[str, str] = {}
    for override in overrides:
        split = _split_override(str(override))
        if split is None:
            continue
        key, value = split
        if key in ignored or key.startswith(IGNORED_PREFIXES):
            continue
        key = key.removeprefix("method.")
        if key in ignored:
            continue
        parts[key] = value
    return dict(sorted(parts.items(), key=lambda kv: natural_key(kv[0])))


def format_setting(parts: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in parts.items()) or DEFAULT_SETTING


def parse_setting(setting: str) -> dict[str, str]:
    """Inverse of :func:`format_setting` (values holding ``", "`` are not supported)."""
    if not setting or setting == DEFAULT_SETTING:
        return {}
    return dict(part.split("=", 1) for part in setting.split(", ") if "=" in part)


def drop_keys(setting: str, keys: Iterable[str]) -> str:
    keys = set(keys)
    return format_setting({k: v for k, v in parse_setting(setting).items() if k not in keys})


def natural_key(text: Any) -> tuple:
    """Sort key that puts ``length=2`` before ``length=16``."""
    return tuple(
        (0, float(tok), "") if re.fullmatch(r"\d+(\.\d+)?", tok) else (1, 0.0, tok)
        for tok in re.split(r"(\d+(?:\.\d+)?)", str(text))
        if tok
    )
