"""``deepprompt-eval run_dir=...``: evaluate a trained run's checkpoint on its validation split."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import DeepPromptError
from deepprompt.runs.guard import debug_enabled
from deepprompt.runs.preflight import check_run_resources
from deepprompt.runs.restore import load_run_config, load_trained, resolve_checkpoint
from deepprompt.utils.atomic import atomic_write_json

# torch and Lightning are imported in evaluate(): a wrong run folder or missing data is reported at once

log = logging.getLogger("deepprompt.eval")
register_resolvers()


def evaluate(run_dir: Path, checkpoint: str = "best", override=None) -> dict[str, float]:
    cfg = load_run_config(run_dir, override)
    check_run_resources(cfg)  # data and backbone still there (or reachable): one line naming the fix
    import lightning as L

    from deepprompt.runs.build import build_data_and_module

    # Same seed, same construction order as training: a randomly initialised backbone (backbone.pretrained=false)
    # is then rebuilt bit for bit, since checkpoints hold only the trained parameters.
    source = resolve_checkpoint(run_dir, checkpoint)
    L.seed_everything(cfg.seed, workers=True)
    datamodule, module = build_data_and_module(cfg)
    load_trained(module, source)
    trainer = L.Trainer(
        accelerator=cfg.trainer.get("accelerator", "auto"),
        devices=1,
        logger=False,
        precision=cfg.trainer.get("precision", "32-true"),
        enable_checkpointing=False,
    )
    results = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    metrics = {k: float(v) for k, v in results.items()}
    atomic_write_json(
        run_dir / f"eval_{Path(str(checkpoint)).stem}.json", {"checkpoint": str(source), **metrics}
    )
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def hydra_main(cfg: DictConfig) -> None:
    try:
        metrics = evaluate(Path(cfg.run_dir), str(cfg.checkpoint), cfg.override)
    except DeepPromptError as err:  # one clear line, as deepprompt-train (DEEPPROMPT_DEBUG=1: traceback)
        if debug_enabled():
            raise
        print(f"deepprompt-eval: error: {err}", file=sys.stderr)
        sys.exit(1)
    for name, value in sorted(metrics.items()):
        print(f"{name:>16s}  {value:.4f}")


def main() -> None:
    """Console entry point; a mistake on the command line is one line (``deepprompt.config.cli_errors``)."""
    from deepprompt.config.cli_errors import install
    from deepprompt.runs.startup import quick_exit_collection
    from deepprompt.utils.quiet import quiet_third_party

    install("deepprompt-eval")
    quiet_third_party()
    hydra_main()
    quick_exit_collection()  # seconds off the interpreter's teardown


if __name__ == "__main__":
    main()
