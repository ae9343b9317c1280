"""Reopen a finished run: its composed config, its checkpoint, and its trained parameters in a rebuilt module.

``deepprompt-eval`` and ``deepprompt-compress`` rebuild the run as training built it (same config, seed and
construction order: a randomly initialised backbone is rebuilt bit for bit), then load only the trained
parameters, from a prompt export (``prompts/<name>``) or a Lightning checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import CheckpointError, ConfigError

# torch is imported in load_trained(): a wrong run folder or missing data is reported before the heavy imports

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
    """The run's config, with the data folder and backbone it trained with, then ``override`` on top.

    The saved config keeps ``${oc.env:DEEPPROMPT_DATA_DIR}`` and the model-package resolver unresolved;
    ``.deepprompt/resolved.yaml`` (written by deepprompt-train) holds what they resolved to, so the run is evaluated
    on the same data and backbone without the training shell's environment. A run trained from the Hub
    (no data folder) keeps resolving ``DEEPPROMPT_DATA_DIR``.
    """
    register_resolvers()  # the saved config keeps ${local_model:...} and ${auto:...} unresolved
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a deepprompt run folder: {path} is missing")
    cfg = OmegaConf.load(path)
    target = cfg.data.get("_target_")
    if target in FORMER_DATA_TARGETS:
        cfg.data._target_ = FORMER_DATA_TARGETS[target]
    # paths.output_dir pointed at Hydra's runtime folder of the training job: pin it to the run folder.
    cfg.paths.output_dir = str(run_dir)
    resolved = run_dir / ".deepprompt" / "resolved.yaml"
    if resolved.is_file():
        pinned = OmegaConf.load(resolved)
        if pinned.paths.get("data_dir") is not None:
            cfg.paths.data_dir = pinned.paths.data_dir
        if pinned.backbone.get("name_or_path"):
            cfg.backbone.name_or_path = pinned.backbone.name_or_path
    return OmegaConf.merge(cfg, override or {})


def write_resolved_config(cfg: DictConfig, run_dir: Path) -> None:
    """``<run_dir>/.deepprompt/resolved.yaml`` (beside the run's lock and its copy of ``.hydra``): the data
    folder and backbone as this run resolved them (from
    ``DEEPPROMPT_DATA_DIR``, the installed model package ...), so that `load_run_config` finds them again
    without the environment of the training shell."""
    resolved = {
        "paths": {"data_dir": cfg.paths.get("data_dir")},
        "backbone": {"name_or_path": cfg.backbone.get("name_or_path")},
    }
    folder = run_dir / ".deepprompt"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(resolved), folder / "resolved.yaml")


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
    from deepprompt.prompts import load_prompts
    from deepprompt.prompts.io import CONFIG as PROMPT_CONFIG
    from deepprompt.utils.checkpoint import load_checkpoint

    if source.is_dir():
        if not (source / PROMPT_CONFIG).is_file():
            raise CheckpointError(
                f"{source}: a folder but not a prompt export (no {PROMPT_CONFIG}); give a .ckpt file or a "
                "prompts/<name> folder"
            )
        _, extra = load_prompts(module.encoder, source)
        state = {k.removeprefix("classifier."): v for k, v in extra.items() if k.startswith("classifier.")}
        if state:  # the task head, when the run has one (a generation run has none)
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
