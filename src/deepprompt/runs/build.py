"""Build the data module and the Lightning module of a run from its composed config.

The data module comes from the ``data`` group; the task-family registry (`deepprompt.tasks.registry`) names the
Lightning module that trains on it, and the data module gives the task facts that module needs
(``module_kwargs()``: label count, metrics ...). A new task family plugs in with a folder under
``deepprompt/tasks`` and a registry entry, without touching the entry points.
"""

from __future__ import annotations

import lightning as L
from omegaconf import DictConfig, OmegaConf

from deepprompt.tasks.registry import module_class
from deepprompt.utils.instantiate import build


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def build_data_and_module(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    datamodule = build(cfg.data, "data")
    module = module_class(datamodule)(
        backbone=_plain(cfg.backbone),
        method=_plain(cfg.method),
        head=_plain(cfg.get("head")),
        optim=_plain(cfg.get("optim")),
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        **datamodule.module_kwargs(),
    )
    return datamodule, module
