"""``deepprompt-train``: compose the config with Hydra, train, write ``metrics.json`` and the prompt export.

deepprompt-train                                   # P-Tuning v2, MiniLM, SST-2
deepprompt-train data=rte method.prompt.length=32
deepprompt-train -m method.prompt.length=4,8,16 backbone=tiny debug=limit
deepprompt-train experiment=rte_minilm
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from deepprompt.backbones import BackboneConfig
from deepprompt.config import HeadConfig, OptimConfig, structured
from deepprompt.config.resolvers import register_resolvers
from deepprompt.methods import method_schema
from deepprompt.runs.build import build_data_and_module
from deepprompt.runs.guard import run_guarded
from deepprompt.runs.summary import best_and_last, write_summary
from deepprompt.utils.instantiate import build, build_all
from deepprompt.utils.printing import print_config_tree

log = logging.getLogger("deepprompt.train")
register_resolvers()


def validate(cfg: DictConfig) -> None:
    """Check every typed section before anything heavy happens (data loading, model download)."""
    structured(BackboneConfig, cfg.backbone, "backbone")
    structured(method_schema(cfg.method.name), cfg.method, "method")
    structured(HeadConfig, cfg.head, "head")
    structured(OptimConfig, cfg.optim, "optim")


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one run; returns the summary written to ``metrics.json``."""
    started = time.time()
    validate(cfg)
    if cfg.extras.get("print_config"):
        print_config_tree(cfg, save_to=run_dir / "config_tree.log")
    L.seed_everything(cfg.seed, workers=True)

    datamodule, module = build_data_and_module(cfg)
    params = module.parameter_counts()
    log.info(
        "Trainable parameters: %d of %d backbone (%.3f%%)",
        params["trainable"],
        params["backbone"],
        100 * params["trainable_share"],
    )

    callbacks = build_all(cfg.get("callbacks"), "callbacks")
    loggers = build_all(cfg.get("logger"), "logger")
    trainer: L.Trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    for logger in trainer.loggers:
        logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "params": params})

    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    best, last = best_and_last(module.history, cfg.monitor, cfg.monitor_mode)
    return {
        "status": "finished",
        "task": cfg.data.task,
        "method": cfg.method.name,
        "backbone": cfg.backbone.name,
        "seed": cfg.seed,
        "monitor": cfg.monitor,
        "best": best,
        "last": last,
        "history": module.history,
        "params": params,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "wall_time_s": round(time.time() - started, 2),
        "config": {
            "method": OmegaConf.to_container(cfg.method, resolve=True),
            "data": {
                k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "_target_"
            },
            "optim": OmegaConf.to_container(cfg.optim, resolve=True),
            "max_epochs": cfg.trainer.get("max_epochs"),
        },
    }


def objective(summary: dict[str, Any] | None, monitor: str) -> float:
    """The number a sweeper optimises: the best monitored value (NaN for a failed run)."""
    if not summary or summary.get("status") != "finished" or monitor not in summary.get("best", {}):
        return math.nan
    return float(summary["best"][monitor])


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    summary = run_guarded(cfg, train, write_summary)
    return objective(summary, cfg.monitor)


if __name__ == "__main__":
    main()
