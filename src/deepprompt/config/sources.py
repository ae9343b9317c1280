"""Where a value of the composed config was set: a command-line override, or a config file and its line.

Hydra merges the files of the defaults list in order (later files win), then applies the command-line overrides;
it keeps no record of which one gave a key its value. :func:`where_set` asks Hydra for the same defaults list
again (from the run's own Hydra config: its search path, config name and overrides) and looks the key up
from the last override back to the first file, reading the line from the YAML file itself. A value that is a
plain reference (``head.pooling: ${backbone.pooling}``) is followed to where the referenced key was set.

Only errors use this (`ConfigError.source`, filled in by deepprompt-train's check); it imports no torch.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepprompt.errors import ConfigError

_REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")  # ${a.b}: the whole value is another key's value
_MAX_REFERENCES = 4


@dataclass(frozen=True)
class _Composition:
    files: list[tuple[Path, str]]  # (YAML file, the package it is merged at), in merge order
    overrides: list[Any]  # Hydra's parsed config overrides (not group choices), in order
    sweep: dict[str, str]  # a multirun job's hydra.sweeper.params (key -> sweep), else empty


def with_source(err: ConfigError, cfg: Any) -> ConfigError:
    """``err`` naming where its key's value was set in ``cfg`` (unchanged when that is not known)."""
    if not err.key or err.source:
        return err
    source = where_set(cfg, err.key)
    return type(err)(err.problem, err.key, err.fix, source) if source else err


def where_set(cfg: Any, key: str) -> str | None:
    """Where ``cfg`` (composed by Hydra) got the value of the dotted ``key``: "`key=value` on the command
    line", or "<file>:<line>" of the config file that set it last (relative to the working directory when it
    lies inside it). None when there is no Hydra config at hand or nothing but a schema default set the key."""
    try:
        composition = _composition(cfg)
        return _where(composition, key, 0) if composition else None
    except Exception:  # noqa: BLE001 - a message without its source beats no message
        return None


def _where(composition: _Composition, key: str, depth: int) -> str | None:
    parts = key.split(".")
    for override in reversed(composition.overrides):  # the command line wins over every file
        if override.is_delete():
            continue
        set_parts = override.key_or_group.split(".")
        if parts[: len(set_parts)] == set_parts:
            return _from_override(composition, override)
    found = _last_file_setting(composition, parts)
    if found is None:
        return None
    file, line, value = found
    reference = _REFERENCE.match(value or "")
    if reference and depth < _MAX_REFERENCES:
        referenced = _where(composition, reference.group(1), depth + 1)
        if referenced:
            # an override names the referenced key itself; a file line gets it in front
            return referenced if "`" in referenced else f"{reference.group(1)} at {referenced}"
    return f"{_shown(file)}:{line}"


def _last_file_setting(composition: _Composition, parts: list[str]) -> tuple[Path, int, str | None] | None:
    """(file, line, scalar text or None) of the last file in merge order that sets the key ``parts``."""
    for file, package in reversed(composition.files):
        prefix = package.split(".") if package else []
        if parts[: len(prefix)] != prefix or len(parts) == len(prefix):
            continue
        found = _find(_read(file), parts[len(prefix) :])
        if found is not None:
            return file, *found
    return None


def _from_override(composition: _Composition, override: Any) -> str:
    """The override as typed; a multirun job's value that its sweep (a config file's hydra.sweeper.params)
    gave names that file and line."""
    line = override.input_line
    sweep = composition.sweep.get(override.key_or_group)
    if sweep is not None and override.get_value_element_as_str() in _sweep_values(
        override.key_or_group, sweep
    ):
        found = _last_file_setting(composition, ["hydra", "sweeper", "params", override.key_or_group])
        if found is not None:
            return f"`{line}`, a value of the sweep at {_shown(found[0])}:{found[1]}"
    return f"`{line}` on the command line"


def _sweep_values(key: str, sweep: str) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"{key}={sweep}")
    return list(parsed.sweep_string_iterator()) if parsed.is_discrete_sweep() else []


def _composition(cfg: Any) -> _Composition | None:
    """The defaults list and overrides of ``cfg``'s composition, from its ``hydra`` node (a config composed with
    ``return_hydra_config``) or from the running Hydra job; None without either."""
    from omegaconf import OmegaConf

    node = cfg.get("hydra") if hasattr(cfg, "get") else None
    if node is None:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return None
        node = HydraConfig.get()
    hydra = OmegaConf.to_container(node, resolve=False)  # overrides such as a=${b} stay as typed
    sources = hydra["runtime"]["config_sources"]
    overrides = [*hydra["overrides"]["hydra"], *hydra["overrides"]["task"]]

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
    from hydra.types import RunMode

    search_path = ConfigSearchPathImpl()
    for source in sources:
        search_path.append(source["provider"], f"{source['schema']}://{source['path']}")
    defaults = ConfigLoaderImpl(search_path).compute_defaults_list(
        hydra["job"]["config_name"], overrides, RunMode.RUN
    )
    files = [
        (file, entry.package or "")
        for entry in defaults.defaults
        if entry.config_path and (file := _file(entry.config_path, sources)) is not None
    ]
    sweep = {}
    if str(hydra.get("mode")).endswith("MULTIRUN"):
        sweep = (hydra.get("sweeper") or {}).get("params") or {}
    return _Composition(files, list(defaults.config_overrides), {str(k): str(v) for k, v in sweep.items()})


def _file(config_path: str, sources: list[dict[str, str]]) -> Path | None:
    """The YAML file of ``config_path`` (e.g. ``method/ptuning_v2``): the first in the search path, as Hydra."""
    for source in sources:
        for root in _roots(source):
            file = root / f"{config_path}.yaml"
            if file.is_file():
                return file
    return None


def _roots(source: dict[str, str]) -> Iterator[Path]:
    if source["schema"] == "file":
        yield Path(source["path"])
    elif source["schema"] == "pkg":
        try:
            yield Path(str(importlib.resources.files(source["path"])))
        except (ImportError, TypeError):
            return


def _read(file: Path) -> str:
    try:
        return file.read_text()
    except OSError:
        return ""


def _find(text: str, parts: list[str]) -> tuple[int, str | None] | None:
    """(1-based line, scalar text or None) of the key at ``parts`` in the YAML ``text``; None if it is not set
    there."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            pairs = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part]
            if not pairs:
                return None
            key_node, node = pairs[-1]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            return None
    if line is None:
        return None
    return line, node.value if isinstance(node, yaml.ScalarNode) else None


def _shown(file: Path) -> str:
    """``file`` as a user finds it: relative to the working directory when inside it (``conf/...``), links
    resolved (the package's ``deepprompt/conf`` is the repository's ``conf``)."""
    real = Path(os.path.realpath(file))
    try:
        return str(real.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(real)
