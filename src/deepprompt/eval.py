"""``deepprompt-eval run_dir=...``: evaluate a trained run's checkpoint on its validation split."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import ConfigError, DeepPromptError
from deepprompt.runs.guard import debug_enabled
from deepprompt.runs.preflight import check_run_resources
from deepprompt.utils.atomic import atomic_write_json

# torch and Lightning are imported in evaluate(): a wrong run folder or missing data is reported at once

log = logging.getLogger("deepprompt.eval")
register_resolvers()


def load_run_config(run_dir: Path, override: DictConfig | dict | None = None) -> DictConfig:
    """The run's config, with the data folder and backbone it trained with, then ``override`` on top.

    The saved config keeps ``${oc.env:DEEPPROMPT_DATA_DIR}`` and the model-package resolver unresolved;
    ``.hydra/resolved.yaml`` (written by deepprompt-train) holds what they resolved to, so the run is evaluated
    on the same data and backbone without the training shell's environment. A run trained from the Hub
    (no data folder) keeps resolving ``DEEPPROMPT_DATA_DIR``.
    """
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a deepprompt run folder: {path} is missing")
    cfg = OmegaConf.load(path)
    # paths.output_dir pointed at Hydra's runtime folder of the training job: pin it to the run folder.
    cfg.paths.output_dir = str(run_dir)
    resolved = run_dir / ".hydra" / "resolved.yaml"
    if resolved.is_file():
        pinned = OmegaConf.load(resolved)
        if pinned.paths.get("data_dir") is not None:
            cfg.paths.data_dir = pinned.paths.data_dir
        if pinned.backbone.get("name_or_path"):
            cfg.backbone.name_or_path = pinned.backbone.name_or_path
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


def evaluate(run_dir: Path, checkpoint: str = "best", override=None) -> dict[str, float]:
    cfg = load_run_config(run_dir, override)
    check_run_resources(cfg)  # data and backbone still there (or reachable): one line naming the fix
    import lightning as L
    import torch

    from deepprompt.prompts import load_prompts
    from deepprompt.runs.build import build_data_and_module

    # Same seed, same construction order as training: a randomly initialised backbone (backbone.pretrained=false)
    # is then rebuilt bit for bit, since checkpoints hold only the trained parameters.
    L.seed_everything(cfg.seed, workers=True)
    datamodule, module = build_data_and_module(cfg)
    source = resolve_checkpoint(run_dir, checkpoint)
    if source.is_dir():  # a prompt-only export: prompts + classifier head
        _, extra = load_prompts(module.encoder, source)
        module.classifier.load_state_dict({k.removeprefix("classifier."): v for k, v in extra.items()})
    else:
        state = torch.load(source, map_location="cpu", weights_only=False)
        missing = module.load_state_dict(state["state_dict"], strict=False)
        trainable = {n for n, p in module.named_parameters() if p.requires_grad}
        if trainable & set(missing.missing_keys):
            raise ConfigError(
                f"{source} lacks trained parameters: {sorted(trainable & set(missing.missing_keys))[:5]}"
            )
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
    from deepprompt.utils.quiet import quiet_third_party

    install("deepprompt-eval")
    quiet_third_party()
    hydra_main()


if __name__ == "__main__":
    main()
