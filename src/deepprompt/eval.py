"""``deepprompt-eval run_dir=...``: evaluate a trained run's checkpoint on its validation split."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import CheckpointError, ConfigError, DeepPromptError
from deepprompt.prompts import load_prompts
from deepprompt.prompts.io import CONFIG as PROMPT_CONFIG
from deepprompt.runs.build import build_data_and_module
from deepprompt.runs.guard import debug_enabled
from deepprompt.utils.atomic import atomic_write_json
from deepprompt.utils.checkpoint import load_checkpoint

log = logging.getLogger("deepprompt.eval")
register_resolvers()


def load_run_config(run_dir: Path, override: DictConfig | dict | None = None) -> DictConfig:
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a deepprompt run folder: {path} is missing")
    cfg = OmegaConf.load(path)
    # paths.output_dir pointed at Hydra's runtime folder of the training job: pin it to the run folder.
    cfg.paths.output_dir = str(run_dir)
    return OmegaConf.merge(cfg, override or {})


def resolve_checkpoint(run_dir: Path, checkpoint: str) -> Path:
    if checkpoint in ("best", "last"):
        for candidate in (run_dir / "checkpoints" / f"{checkpoint}.ckpt", run_dir / "prompts" / checkpoint):
            if candidate.exists():
                return candidate
        raise ConfigError(f"no '{checkpoint}' checkpoint in {run_dir} (looked in checkpoints/ and prompts/)")
    path = Path(checkpoint)
    if not path.exists():
        raise ConfigError(f"checkpoint {path} does not exist")
    return path


def load_trained(module: Any, source: Path) -> None:
    """Load a prompt export (folder: prompts + head) or a Lightning checkpoint (file) into ``module``.

    The checkpoint is read weights-only (:func:`deepprompt.utils.checkpoint.load_checkpoint`). Every failure is
    one line naming ``source``: unreadable or unsafe file, a parameter whose shape differs from the model the run's
    config builds (name and both shapes), or trained parameters missing (a checkpoint of another method).
    """
    if source.is_dir():
        if not (source / PROMPT_CONFIG).is_file():
            raise CheckpointError(
                f"{source}: a folder but not a prompt export (no {PROMPT_CONFIG}); give a .ckpt file or a "
                "prompts/<name> folder"
            )
        _, extra = load_prompts(module.encoder, source)
        state = {k.removeprefix("classifier."): v for k, v in extra.items()}
        check_shapes(module.classifier, state, source, prefix="classifier.")
        module.classifier.load_state_dict(state)
        return
    state = load_checkpoint(source)["state_dict"]
    check_shapes(module, state, source)
    missing = set(module.load_state_dict(state, strict=False).missing_keys)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    if trainable & missing:
        raise CheckpointError(
            f"{source} lacks trained parameters of this run: {sorted(trainable & missing)[:5]} (a checkpoint "
            "of another method or task?)"
        )


def check_shapes(module: Any, state: dict[str, Any], source: Path, prefix: str = "") -> None:
    """CheckpointError naming the first parameter of ``state`` whose shape differs from ``module``'s."""
    own = module.state_dict()
    for name, saved in state.items():
        if name in own and hasattr(saved, "shape") and tuple(saved.shape) != tuple(own[name].shape):
            raise CheckpointError(
                f"{source}: parameter {prefix}{name} has shape {list(saved.shape)} in the checkpoint but "
                f"{list(own[name].shape)} in the model built from the run's config"
            )


def evaluate(run_dir: Path, checkpoint: str = "best", override=None) -> dict[str, float]:
    cfg = load_run_config(run_dir, override)
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
def main(cfg: DictConfig) -> None:
    try:
        metrics = evaluate(Path(cfg.run_dir), str(cfg.checkpoint), cfg.override)
    except DeepPromptError as err:  # one clear line, as deepprompt-train (DEEPPROMPT_DEBUG=1: traceback)
        if debug_enabled():
            raise
        print(f"deepprompt-eval: error: {err}", file=sys.stderr)
        sys.exit(1)
    for name, value in sorted(metrics.items()):
        print(f"{name:>16s}  {value:.4f}")


if __name__ == "__main__":
    main()
