"""Build a run's pieces from its composed config: the data module, the Lightning module, the trainer.

The data module comes from the ``data`` group; the task-family registry (`deepprompt.tasks.registry`) names the
Lightning module that trains on it, and the data module gives the task facts that module needs
(``module_kwargs()``: label count, metrics ...). A new task family plugs in with a folder under
``deepprompt/tasks`` and a registry entry, without touching the entry points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks.progress import ProgressBar
from omegaconf import DictConfig, OmegaConf

from deepprompt.callbacks import AtomicCheckpointIO
from deepprompt.runs.loggers import build_loggers
from deepprompt.runs.resume import RestoreTrainLoaderState
from deepprompt.tasks.registry import module_class
from deepprompt.utils.instantiate import build, build_all


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def build_data_and_module(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    datamodule = build(cfg.data, "data")
    return datamodule, build_module(cfg, datamodule)


def build_module(cfg: DictConfig, datamodule: L.LightningDataModule) -> L.LightningModule:
    """The Lightning module that trains on ``datamodule`` (the task-family registry's class for it), from ``cfg``'s sections."""
    module_cls = module_class(datamodule)
    return module_cls(
        backbone=_plain(cfg.backbone),
        method=_plain(cfg.method),
        head=_plain(cfg.get("head")),
        optim=_plain(cfg.get("optim")),
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        **datamodule.module_kwargs(),
    )


def build_trainer(
    cfg: DictConfig, params: dict[str, Any], extra_callbacks: Sequence[Any] = (), interactive: bool = True
) -> L.Trainer:
    """The trainer with the ``callbacks`` and ``logger`` groups (plus ``extra_callbacks``); every logger records
    the config and ``params``. Off a terminal (``interactive=False``) there is no progress bar and no model
    summary table: plain per-epoch lines (``ConsoleReport``) say what happens."""
    callbacks = [*build_all(cfg.get("callbacks"), "callbacks"), RestoreTrainLoaderState(), *extra_callbacks]
    if not interactive:
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = build_loggers(cfg.get("logger"))
    # checkpoints are written to a temp file and renamed: a kill mid-save keeps the previous last.ckpt
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    quiet = {} if interactive else {"enable_progress_bar": False, "enable_model_summary": False}
    trainer: L.Trainer = build(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **plugins, **quiet
    )
    for logger in trainer.loggers:
        logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "params": params})
    return trainer
