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
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import ConfigError
from deepprompt.runs.closing import recipe_line
from deepprompt.runs.guard import run_guarded
from deepprompt.runs.preflight import check_run_resources
from deepprompt.runs.summary import best_and_last, run_task, write_summary

# torch, Lightning and transformers are imported inside the functions that use them: a mistake on the command
# line, missing data or an offline Hub is reported in a second or two, not after half a minute of imports.

log = logging.getLogger("deepprompt.train")
register_resolvers()


def validate(cfg: DictConfig) -> None:
    """Check every typed section before anything heavy happens (data loading, model download)."""
    from deepprompt.backbones import BackboneConfig
    from deepprompt.config import HeadConfig, OptimConfig, structured
    from deepprompt.methods import method_schema

    structured(BackboneConfig, cfg.backbone, "backbone")
    structured(method_schema(cfg.method.name), cfg.method, "method")
    structured(HeadConfig, cfg.head, "head")
    structured(OptimConfig, cfg.optim, "optim")


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one run; returns the summary written to ``metrics.json``."""
    started = time.time()
    check_run_resources(cfg)  # data, backbone, network: fails in seconds, naming the fix
    write_resolved_config(cfg, run_dir)
    log.info("recipe: %s", recipe_line(cfg))
    validate(cfg)

    import lightning as L

    from deepprompt.utils.quiet import one_lightning_console

    one_lightning_console()

    from deepprompt.callbacks import AtomicCheckpointIO, ConsoleReport
    from deepprompt.runs.build import build_data_and_module
    from deepprompt.runs.resume import (
        RestoreTrainLoaderState,
        install_resumable_train_loader,
        resolve_ckpt_path,
    )
    from deepprompt.utils.instantiate import build, build_all
    from deepprompt.utils.printing import print_config_tree

    if cfg.extras.get("print_config"):
        print_config_tree(cfg, save_to=run_dir / "config_tree.log")
    L.seed_everything(cfg.seed, workers=True)

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.get("resume", "auto"), run_dir)
    datamodule, module = build_data_and_module(cfg)
    check_positions(cfg, module)
    install_resumable_train_loader(datamodule)  # mid-epoch checkpoints resume at the right batch
    params = module.parameter_counts()
    log.info("Trainable parameters: %s", trainable_line(params))

    interactive = sys.stdout.isatty()
    callbacks = [
        *build_all(cfg.get("callbacks"), "callbacks"),
        RestoreTrainLoaderState(),
        ConsoleReport(started=started, monitor=cfg.monitor, mode=cfg.monitor_mode),
    ]
    if not interactive:  # no progress bar into a file (plain lines from ConsoleReport instead)
        callbacks = [c for c in callbacks if not _is_progress_bar(c)]
    loggers = build_loggers(cfg.get("logger"))
    # checkpoints are written to a temp file and renamed: a kill mid-save keeps the previous last.ckpt
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    quiet = {} if interactive else {"enable_progress_bar": False, "enable_model_summary": False}
    trainer: L.Trainer = build(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **plugins, **quiet
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
    from deepprompt.runs.baselines import majority_baseline

    if baseline := majority_baseline(datamodule, getattr(datamodule, "num_labels", None)):
        summary["baselines"] = {"majority": baseline}
    if hasattr(
        module, "task_summaries"
    ):  # a joint multi-task run: per-task results, rows in deepprompt-report
        summary["tasks"] = list(module.tasks)
        summary["per_task"] = module.task_summaries(cfg.monitor, cfg.monitor_mode)
        summary["multitask"] = datamodule.sampling_summary()
    return summary


def trainable_line(params: dict[str, Any]) -> str:
    """``74,498 of 22,787,714 parameters (0.327%)``: a share of all parameters, so never above 100%."""
    share = params["trainable"] / params["total"] if params.get("total") else params["trainable_share"]
    return f"{params['trainable']:,} of {params.get('total', params['backbone']):,} parameters ({100 * share:.3g}%)"


def _is_progress_bar(callback: Any) -> bool:
    from lightning.pytorch.callbacks.progress import ProgressBar

    return isinstance(callback, ProgressBar)


def write_resolved_config(cfg: DictConfig, run_dir: Path) -> None:
    """``<run_dir>/.hydra/resolved.yaml``: the data folder and backbone as this run resolved them (from
    ``DEEPPROMPT_DATA_DIR``, the installed model package ...), so that ``deepprompt-eval`` and
    ``deepprompt-compress`` find them again without the environment of the training shell."""
    resolved = {
        "paths": {"data_dir": cfg.paths.get("data_dir")},
        "backbone": {"name_or_path": cfg.backbone.get("name_or_path")},
    }
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(resolved), folder / "resolved.yaml")


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
    from deepprompt.utils.instantiate import build

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


def _write_metrics(run_dir: Path, summary: dict[str, Any]) -> Any:
    """``metrics.json``; under DDP only global rank 0 writes (``rank_zero_writer``). A run that failed before
    Lightning was imported (start-up checks) is no DDP worker yet: it writes without importing Lightning."""
    if "lightning" not in sys.modules and os.environ.get("RANK", "0") == "0":
        return write_summary(run_dir, summary)
    from deepprompt.runs.distributed import rank_zero_writer

    return rank_zero_writer(write_summary)(run_dir, summary)


def objective(summary: dict[str, Any] | None, monitor: str) -> float:
    """The number a sweeper optimises: the best monitored value (NaN for a failed run)."""
    if not summary or summary.get("status") != "finished" or monitor not in summary.get("best", {}):
        return math.nan
    return float(summary["best"][monitor])


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def hydra_main(cfg: DictConfig) -> float:
    from deepprompt.runs.closing import report_job  # the summary block, or a multirun's one-line summary

    summary = None
    try:
        summary = run_guarded(cfg, train, _write_metrics)
    finally:
        _finish_wandb(exit_code=0 if summary and summary.get("status") == "finished" else 1)
    report_job(summary, cfg)
    return objective(summary, cfg.monitor)


def main() -> None:
    """Console entry point: check that outputs can be written (Hydra would fail with a traceback), then run;
    Hydra's composition errors (typos, unknown options) come out as one line; a multirun ends with a table."""
    from deepprompt.config.cli_errors import install
    from deepprompt.runs.closing import report_sweep
    from deepprompt.utils.quiet import quiet_third_party

    check_output_root()
    install("deepprompt")
    quiet_third_party()
    hydra_main()
    report_sweep()


if __name__ == "__main__":
    main()
