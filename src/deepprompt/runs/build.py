"""Build a run's pieces from its composed config: the data module, the Lightning module, the trainer.

The data module comes from the ``data`` group; the task-family registry (`deepprompt.tasks.registry`) names the
Lightning module that trains on it, and the data module gives the task facts that module needs
(``module_kwargs()``: label count, metrics ...). A new task family plugs in with a folder under
``deepprompt/tasks`` and a registry entry, without touching the entry points.
"""

from __future__ import annotations

import os
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


# set by MPI launchers (Open MPI's mpirun, MPICH/Intel MPI's Hydra, PMIx, MVAPICH) in the processes they start
MPI_LAUNCHER_VARIABLES = (
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "PMI_RANK",
    "PMIX_RANK",
    "MV2_COMM_WORLD_SIZE",
    "MPI_LOCALNRANKS",
)


def cluster_environment() -> Any | None:
    """Lightning's plain ``LightningEnvironment`` where its own detection would pick it anyway, else None (let
    Lightning detect).

    Lightning tries TorchElastic, SLURM, LSF and MPI in that order; its MPI check imports ``mpi4py.MPI`` (over half
    a second where mpi4py is installed) and asks for the world size, which is 1 unless an MPI launcher started the
    process. Where none of the first three applies and no launcher variable is set, the answer is known without
    the import."""
    if any(os.environ.get(name) for name in MPI_LAUNCHER_VARIABLES):
        return None
    from lightning.fabric.plugins.environments import (
        LightningEnvironment,
        LSFEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    if any(env.detect() for env in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment)):
        return None
    return LightningEnvironment()


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
    # checkpoints are written to a temp file and renamed: a kill mid-save keeps the previous last.ckpt; the
    # cluster environment is given where it is plainly Lightning's own (no mpi4py import to find out)
    plugins = {}
    if not cfg.trainer.get("plugins"):
        strategy = cfg.trainer.get("strategy")
        own = isinstance(strategy, DictConfig) and strategy.get("cluster_environment") is not None
        env = None if own else cluster_environment()
        plugins["plugins"] = [AtomicCheckpointIO(), *([env] if env is not None else [])]
    quiet = {} if interactive else {"enable_progress_bar": False, "enable_model_summary": False}
    trainer: L.Trainer = build(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **plugins, **quiet
    )
    for logger in trainer.loggers:
        logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "params": params})
    return trainer
