"""`hydra.utils.instantiate` with errors that name the config group and file."""

from __future__ import annotations

import logging
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from deepprompt.errors import ConfigError

log = logging.getLogger(__name__)


def config_file(group: str) -> str:
    """``conf/<group>/<choice>.yaml`` for the option chosen in ``group`` ('callbacks.x' -> the callbacks file)."""
    top = group.split(".")[0]
    try:
        choice = HydraConfig.get().runtime.choices.get(top)
    except ValueError:  # not inside a Hydra app (tests composing by hand)
        choice = None
    return f"conf/{top}/{choice}.yaml" if choice else f"the '{top}' config"


def build(cfg: DictConfig, where: str, **kwargs: Any) -> Any:
    """Instantiate ``cfg`` (a ``_target_`` node of the config group ``where``, e.g. 'data' or 'logger.wandb'),
    or fail naming the group, the file and the target. ``kwargs`` override the node's own values."""
    target = cfg.get("_target_")
    if target is None:
        raise ConfigError(
            f"{where}: no _target_ in {config_file(where)}; every entry must name the class to build"
        )
    log.info("Instantiating %s <%s>", where, target)
    try:
        return instantiate(cfg, **kwargs)
    except Exception as err:
        cause = err.__cause__ or err
        raise ConfigError(
            f"cannot build {where} from {config_file(where)} (_target_: {target}): {type(cause).__name__}: {cause}"
        ) from err


def build_all(cfg: DictConfig | None, group: str) -> list[Any]:
    """Each ``_target_`` entry of a group like callbacks/logger; a null group gives an empty list."""
    if not cfg:
        return []
    return [build(node, f"{group}.{name}") for name, node in cfg.items() if node is not None]
