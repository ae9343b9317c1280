"""``deepprompt-train``: compose the config with Hydra, train, write ``metrics.json`` and the prompt export.

deepprompt-train                                   # P-Tuning v2, MiniLM, SST-2
deepprompt-train data=rte method.prompt.length=32
deepprompt-train -m method.prompt.length=4,8,16 backbone=tiny debug=limit
deepprompt-train experiment=rte_minilm
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import ConfigError
from deepprompt.runs import fast_path
from deepprompt.runs.checks import check_output_root, check_positions
from deepprompt.runs.closing import recipe_line
from deepprompt.runs.guard import run_guarded
from deepprompt.runs.loggers import finish_wandb
from deepprompt.runs.preflight import check_run_resources
from deepprompt.runs.restore import write_resolved_config
from deepprompt.runs.startup import (  # its import ends the start-up's "python" phase
    clock,
    hold_collection,
    quick_exit_collection,
    restore_collection,
)
from deepprompt.runs.summary import objective, summarise, summary_writer, trainable_line

# torch, Lightning and transformers are imported inside the functions that use them: a mistake on the command
# line, missing data or an offline Hub is reported in a second or two, not after half a minute of imports.

log = logging.getLogger("deepprompt.train")
register_resolvers()


def validate(cfg: DictConfig) -> None:
    """Check every typed section before anything heavy happens (data loading, model download); a refused value
    is a ConfigError naming its key, where it was set (override, or file and line) and the fix."""
    from deepprompt.config import (
        BackboneConfig,
        DataConfig,
        HeadConfig,
        OptimConfig,
        RunConfig,
        TrainerConfig,
        structured,
        typed_keys,
    )
    from deepprompt.config.sources import with_source
    from deepprompt.methods import method_schema

    try:
        structured(RunConfig, {"seed": cfg.get("seed")}, "")
        typed_keys(DataConfig, cfg.data, "data")
        typed_keys(TrainerConfig, cfg.trainer, "trainer")
        structured(BackboneConfig, cfg.backbone, "backbone")
        structured(method_schema(cfg.method.name), cfg.method, "method")
        structured(HeadConfig, cfg.head, "head")
        structured(OptimConfig, cfg.optim, "optim")
        if not isinstance(cfg.get("fast_path", True), bool):
            raise ConfigError(
                f"fast_path must be true or false, got {cfg.fast_path!r}",
                key="fast_path",
                fix="pass fast_path=true or fast_path=false",
            )
    except ConfigError as err:
        raise with_source(err, cfg) from None


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one run; returns the summary written to ``metrics.json``."""
    started = time.time()
    clock.mark("config")
    check_run_resources(cfg)  # data, backbone, network: fails in seconds, naming the fix
    write_resolved_config(cfg, run_dir)
    log.info("recipe: %s", recipe_line(cfg))
    validate(cfg)

    import lightning as L

    from deepprompt.utils.quiet import one_lightning_console

    one_lightning_console()

    from deepprompt.callbacks import ConsoleReport, GracefulStop
    from deepprompt.callbacks.csv_history import CSVHistoryOnResume
    from deepprompt.callbacks.startup import StartupReport
    from deepprompt.runs.baselines import majority_baseline
    from deepprompt.runs.build import build_module, build_trainer
    from deepprompt.runs.resume import LAST_CHECKPOINT, install_resumable_train_loader, resolve_ckpt_path
    from deepprompt.tasks.registry import module_class
    from deepprompt.utils.instantiate import build

    clock.mark("imports")
    L.seed_everything(cfg.seed, workers=True)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.get("resume", "auto"), run_dir)
    datamodule = build(cfg.data, "data")
    fast = fast_path.choose(cfg, module_class(datamodule).__name__)  # GPU: the speed settings left open
    log.info(fast.line)
    if fast_path.apply(cfg, fast):
        datamodule = build(cfg.data, "data")  # with the chosen padding
    clock.mark("tokenizer")
    if cfg.extras.get("print_config"):
        from deepprompt.utils.printing import print_config_tree  # rich's syntax highlighting: only for this

        print_config_tree(cfg, save_to=run_dir / "config_tree.log")
    module = build_module(cfg, datamodule)
    check_positions(cfg, module)
    clock.mark("backbone")
    install_resumable_train_loader(datamodule)  # mid-epoch checkpoints resume at the right batch
    params = module.parameter_counts()
    log.info("Trainable parameters: %s", trainable_line(params))

    extra_callbacks = [
        CSVHistoryOnResume(),  # metrics.csv kept across resumes
        GracefulStop(
            dirpath=str(run_dir / LAST_CHECKPOINT.parent), filename=LAST_CHECKPOINT.stem
        ),  # SIGTERM/INT
        ConsoleReport(started=started, monitor=cfg.monitor, mode=cfg.monitor_mode),
        StartupReport(clock),  # marks data and loop, logs the start-up line at the first step
    ]
    trainer = build_trainer(cfg, params, extra_callbacks, interactive=sys.stdout.isatty())
    clock.mark("trainer")
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)

    summary = {
        **summarise(cfg, module, datamodule, trainer, params, ckpt_path, started),
        "fast_path": fast.line,
        **clock.summary(),
    }
    if baseline := majority_baseline(datamodule, getattr(datamodule, "num_labels", None)):
        summary["baselines"] = {"majority": baseline}
    return summary


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def hydra_main(cfg: DictConfig) -> float:
    from deepprompt.runs.closing import report_job  # the summary block, or a multirun's one-line summary

    clock.start_job()  # a sweep's later jobs in this process count from their own start
    hold_collection()  # until the first training step (StartupReport)
    summary = None
    try:
        summary = run_guarded(cfg, train, summary_writer(cfg))
    finally:
        restore_collection()  # this job's objects can be collected again (a sweep's next job in this process)
        finish_wandb(exit_code=0 if summary and summary.get("status") == "finished" else 1)
    report_job(summary, cfg)
    return objective(summary, cfg.monitor)


def main() -> None:
    """Console entry point: check that outputs can be written (Hydra would fail with a traceback), then run;
    Hydra's composition errors (typos, unknown options) come out as one line; a multirun ends with a table."""
    from deepprompt.config.cli_errors import install
    from deepprompt.runs.closing import report_sweep
    from deepprompt.utils.quiet import quiet_third_party

    hold_collection()  # no cyclic collection during the start-up (runs.startup)
    check_output_root()
    install("deepprompt")
    quiet_third_party()
    hydra_main()
    report_sweep()
    quick_exit_collection()  # seconds off the interpreter's teardown


if __name__ == "__main__":
    main()
