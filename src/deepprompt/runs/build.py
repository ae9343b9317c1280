"""Build the data module and the Lightning module of a run from its composed config.

The data module names the Lightning module that trains on it (``module_target``) and the task facts that
module needs (``module_kwargs()``: label count, metrics ...), so a new task family plugs in with a data
module and a Lightning module, without touching the entry points.
"""

from __future__ import annotations

import lightning as L
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from deepprompt.utils.instantiate import build


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def build_data_and_module(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    datamodule = build(cfg.data, "data")
    return datamodule, build_module(cfg, datamodule)


def build_module(cfg: DictConfig, datamodule: L.LightningDataModule) -> L.LightningModule:
    """The Lightning module that trains on ``datamodule`` (its ``module_target``), from ``cfg``'s sections."""
    module_cls = get_class(datamodule.module_target)
    return module_cls(
        backbone=_plain(cfg.backbone),
        method=_plain(cfg.method),
        head=_plain(cfg.get("head")),
        optim=_plain(cfg.get("optim")),
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        **datamodule.module_kwargs(),
    )
