"""``deepprompt-train``: compose the config with Hydra, train, write ``metrics.json`` and the prompt export.

deepprompt-train                                   # P-Tuning v2, MiniLM, SST-2
deepprompt-train data=rte method.prompt.length=32
deepprompt-train -m method.prompt.length=4,8,16 backbone=tiny debug=limit
deepprompt-train experiment=rte_minilm
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig

from deepprompt.config import DataConfig, RunConfig, TrainerConfig, structured, typed_keys
from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import ConfigError
from deepprompt.runs import fast_path
from deepprompt.runs.build import build_module, build_trainer
from deepprompt.runs.checks import check_output_root, check_positions
from deepprompt.runs.guard import run_guarded
from deepprompt.runs.loggers import finish_wandb
from deepprompt.runs.resume import install_resumable_train_loader, resolve_ckpt_path
from deepprompt.runs.summary import objective, summarise, summary_writer
from deepprompt.tasks.module import typed_configs
from deepprompt.tasks.registry import module_class
from deepprompt.utils.instantiate import build
from deepprompt.utils.printing import print_config_tree

log = logging.getLogger("deepprompt.train")
register_resolvers()


def validate(cfg: DictConfig) -> None:
    """Check every typed section before anything heavy happens (data loading, model download)."""
    structured(RunConfig, {"seed": cfg.get("seed")}, "")
    typed_keys(DataConfig, cfg.data, "data")
    typed_keys(TrainerConfig, cfg.trainer, "trainer")
    typed_configs(cfg.backbone, cfg.method, cfg.head, cfg.optim)
    if not isinstance(cfg.get("fast_path", True), bool):
        raise ConfigError(f"fast_path must be true or false, got {cfg.fast_path!r} (train.yaml)")


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one run; returns the summary written to ``metrics.json``."""
    started = time.time()
    validate(cfg)
    L.seed_everything(cfg.seed, workers=True)

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.get("resume", "auto"), run_dir)
    datamodule = build(cfg.data, "data")
    fast = fast_path.choose(
        cfg, module_class(datamodule).__name__
    )  # GPU: the speed settings the config leaves open
    log.info(fast.line)
    if fast_path.apply(cfg, fast):
        datamodule = build(cfg.data, "data")  # with the chosen padding
    if cfg.extras.get("print_config"):
        print_config_tree(cfg, save_to=run_dir / "config_tree.log")
    module = build_module(cfg, datamodule)
    check_positions(cfg, module)
    install_resumable_train_loader(datamodule)  # mid-epoch checkpoints resume at the right batch
    params = module.parameter_counts()
    log.info(
        "Trainable parameters: %d of %d backbone (%.3f%%)",
        params["trainable"],
        params["backbone"],
        100 * params["trainable_share"],
    )
    trainer = build_trainer(cfg, params)

    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)

    summary = summarise(cfg, module, datamodule, trainer, params, ckpt_path, started)
    return {**summary, "fast_path": fast.line}


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def hydra_main(cfg: DictConfig) -> float:
    from deepprompt.runs.distributed import rank_zero_writer  # DDP: only global rank 0 writes metrics.json

    summary = None
    try:
        summary = run_guarded(cfg, train, rank_zero_writer(summary_writer(cfg)))
    finally:
        finish_wandb(exit_code=0 if summary and summary.get("status") == "finished" else 1)
    return objective(summary, cfg.monitor)


def main() -> None:
    """Console entry point: check that outputs can be written (Hydra would fail with a traceback), then run."""
    check_output_root()
    hydra_main()


if __name__ == "__main__":
    main()
