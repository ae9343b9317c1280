"""``deepprompt-train``: compose the config with Hydra, train, write ``metrics.json`` and the prompt export.

deepprompt-train                                   # P-Tuning v2, MiniLM, SST-2
deepprompt-train data=rte method.prompt.length=32
deepprompt-train -m method.prompt.length=4,8,16 backbone=tiny debug=limit
deepprompt-train experiment=rte_minilm
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from deepprompt.backbones import BackboneConfig
from deepprompt.callbacks import AtomicCheckpointIO, GracefulStop
from deepprompt.callbacks.csv_history import CSVHistoryOnResume
from deepprompt.config import HeadConfig, OptimConfig, structured
from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import ConfigError
from deepprompt.methods import method_schema
from deepprompt.runs.build import build_data_and_module
from deepprompt.runs.guard import run_guarded
from deepprompt.runs.resume import (
    LAST_CHECKPOINT,
    RestoreTrainLoaderState,
    install_resumable_train_loader,
    resolve_ckpt_path,
)
from deepprompt.runs.summary import best_and_last, run_task, write_summary
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

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.get("resume", "auto"), run_dir)
    datamodule, module = build_data_and_module(cfg)
    check_positions(cfg, module)
    install_resumable_train_loader(datamodule)  # mid-epoch checkpoints resume at the right batch
    params = module.parameter_counts()
    log.info(
        "Trainable parameters: %d of %d backbone (%.3f%%)",
        params["trainable"],
        params["backbone"],
        100 * params["trainable_share"],
    )

    callbacks = [
        *build_all(cfg.get("callbacks"), "callbacks"),
        RestoreTrainLoaderState(),
        CSVHistoryOnResume(),
        GracefulStop(dirpath=str(run_dir / LAST_CHECKPOINT.parent), filename=LAST_CHECKPOINT.stem),
    ]
    loggers = build_loggers(cfg.get("logger"))
    # checkpoints are written to a temp file and renamed: a kill mid-save keeps the previous last.ckpt
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    trainer: L.Trainer = build(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **plugins
    )
    for logger in trainer.loggers:
        logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "params": params})

    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)

    best, last = best_and_last(module.history, cfg.monitor, cfg.monitor_mode)
    summary = {
        "status": "finished",
        "task": run_task(cfg.data),
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
        "resumed_from": str(ckpt_path) if ckpt_path else None,
        "config": {
            "method": OmegaConf.to_container(cfg.method, resolve=True),
            "data": {
                k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "_target_"
            },
            "optim": OmegaConf.to_container(cfg.optim, resolve=True),
            "max_epochs": cfg.trainer.get("max_epochs"),
        },
    }
    if hasattr(
        module, "task_summaries"
    ):  # a joint multi-task run: per-task results, rows in deepprompt-report
        summary["tasks"] = list(module.tasks)
        summary["per_task"] = module.task_summaries(cfg.monitor, cfg.monitor_mode)
        summary["multitask"] = datamodule.sampling_summary()
    return summary


def check_positions(cfg: DictConfig, module: Any) -> None:
    """``data.max_seq_length`` must fit the backbone's position embeddings: fail now, not at the first long batch."""
    backbone = getattr(module, "_backbone", None)
    config = getattr(backbone(), "config", None) if callable(backbone) else None
    positions = getattr(config, "max_position_embeddings", None)
    length = cfg.data.get("max_seq_length")
    if positions is None or length is None:
        return
    # RoBERTa-style models number positions from padding_idx + 1 (514 embeddings for 512 tokens)
    offset = (
        (config.pad_token_id or 0) + 1 if config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
    )
    if length > positions - offset:
        raise ConfigError(
            f"data.max_seq_length={length} exceeds what backbone {cfg.backbone.name} ({config.model_type}) can "
            f"embed: max_position_embeddings={positions}{f' minus {offset}' if offset else ''}; "
            f"set data.max_seq_length<={positions - offset}"
        )


def check_output_root() -> None:
    """Fail with one line when the output root (``DEEPPROMPT_OUTPUT_DIR``) cannot be written, before Hydra tries."""
    root = Path(os.environ.get("DEEPPROMPT_OUTPUT_DIR") or "outputs")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as err:
        print(
            f"deepprompt: error: cannot write run outputs under {root} (DEEPPROMPT_OUTPUT_DIR): "
            f"{err.strerror or err}; point DEEPPROMPT_OUTPUT_DIR at a writable folder",
            file=sys.stderr,
        )
        sys.exit(1)


def build_loggers(cfg: DictConfig | None) -> list[Any]:
    """The ``logger`` group; a W&B logger that cannot start online falls back to offline mode with a warning.

    W&B starts its run lazily (first ``log_hyperparams``): it is started here, so that a missing API key, no
    network or a bad ``WANDB_BASE_URL`` costs a warning (the run syncs later with ``wandb sync``), not the run.
    """
    if not cfg:
        return []
    loggers = []
    for name, node in cfg.items():
        if node is None:
            continue
        is_wandb = str(node.get("_target_", "")).endswith("WandbLogger")
        extra = {"group": sweep_group} if is_wandb and (sweep_group := _sweep_group()) else {}
        logger = build(node, f"logger.{name}", **extra)
        if type(logger).__name__ == "WandbLogger" and os.environ.get("WANDB_MODE") not in (
            "offline",
            "disabled",
        ):
            try:
                logger.experiment  # noqa: B018 - starts the W&B run
            except Exception as err:  # wandb raises many types (UsageError, CommError, timeouts)
                log.warning(
                    "W&B could not start online (%s: %s); falling back to offline mode "
                    "(sync later with `wandb sync %s`)",
                    type(err).__name__,
                    str(err).splitlines()[0] if str(err) else "",
                    node.get("save_dir", "."),
                )
                os.environ["WANDB_MODE"] = "offline"
                _finish_wandb()
                logger = build(node, f"logger.{name}", offline=True, **extra)
        loggers.append(logger)
    return loggers


def _sweep_group() -> str | None:
    """The sweep folder relative to the outputs root (``<task_name>/multiruns/<time>``) in a multirun, so that
    a sweep's W&B runs share one group; None for a single run (the config's ``group`` stays)."""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return "/".join(Path(hc.sweep.dir).parts[-3:])


def _finish_wandb(exit_code: int = 1) -> None:
    """End the W&B run of this job, if any: a multirun's next job would otherwise log into it."""
    if "wandb" not in sys.modules:
        return
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)
        wandb.teardown()  # forget the settings (mode=online) cached by the failed start
    except Exception:  # a half-started run: nothing more to clean
        pass


def objective(summary: dict[str, Any] | None, monitor: str) -> float:
    """The number a sweeper optimises: the best monitored value (NaN for a failed run)."""
    if not summary or summary.get("status") != "finished" or monitor not in summary.get("best", {}):
        return math.nan
    return float(summary["best"][monitor])


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def hydra_main(cfg: DictConfig) -> float:
    from deepprompt.runs.distributed import rank_zero_writer  # DDP: only global rank 0 writes metrics.json

    summary = None
    try:
        summary = run_guarded(cfg, train, rank_zero_writer(write_summary))
    finally:
        _finish_wandb(exit_code=0 if summary and summary.get("status") == "finished" else 1)
    return objective(summary, cfg.monitor)


def main() -> None:
    """Console entry point: check that outputs can be written (Hydra would fail with a traceback), then run."""
    check_output_root()
    hydra_main()


if __name__ == "__main__":
    main()
