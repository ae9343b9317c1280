"""Reopen a finished run: its composed config, its checkpoint, and its trained parameters in a rebuilt module.

``deepprompt-eval`` and ``deepprompt-compress`` rebuild the run as training built it (same config, seed and
construction order: a randomly initialised backbone is rebuilt bit for bit), then load only the trained
parameters, from a prompt export (``prompts/<name>``) or a Lightning checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from deepprompt.errors import ConfigError
from deepprompt.prompts import load_prompts

# Data modules of run folders written when the task families lived in deepprompt.data / deepprompt.generation.
FORMER_DATA_TARGETS = {
    "deepprompt.data.ClassificationDataModule": "deepprompt.tasks.classification.ClassificationDataModule",
    "deepprompt.data.MultipleChoiceDataModule": "deepprompt.tasks.superglue.MultipleChoiceDataModule",
    "deepprompt.data.SuperGLUEDataModule": "deepprompt.tasks.superglue.SuperGLUEDataModule",
    "deepprompt.data.NERDataModule": "deepprompt.tasks.ner.NERDataModule",
    "deepprompt.data.SquadDataModule": "deepprompt.tasks.qa.SquadDataModule",
    "deepprompt.data.MultiTaskDataModule": "deepprompt.tasks.multitask.MultiTaskDataModule",
    "deepprompt.generation.E2EDataModule": "deepprompt.tasks.generation.E2EDataModule",
    "deepprompt.generation.WebNLGDataModule": "deepprompt.tasks.generation.WebNLGDataModule",
}


def load_run_config(run_dir: Path, override: DictConfig | dict | None = None) -> DictConfig:
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a deepprompt run folder: {path} is missing")
    cfg = OmegaConf.load(path)
    target = cfg.data.get("_target_")
    if target in FORMER_DATA_TARGETS:
        cfg.data._target_ = FORMER_DATA_TARGETS[target]
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


def load_trained(module, source: Path) -> None:
    """Load the trained parameters from ``source``: a prompt-only export (prompts + classifier head) or a
    Lightning checkpoint, which must hold every trainable parameter of ``module``."""
    if source.is_dir():
        _, extra = load_prompts(module.encoder, source)
        module.classifier.load_state_dict({k.removeprefix("classifier."): v for k, v in extra.items()})
        return
    state = torch.load(source, map_location="cpu", weights_only=False)
    missing = module.load_state_dict(state["state_dict"], strict=False)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    if trainable & set(missing.missing_keys):
        raise ConfigError(
            f"{source} lacks trained parameters: {sorted(trainable & set(missing.missing_keys))[:5]}"
        )
