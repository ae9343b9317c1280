"""Helpers for tests of sweep configs: compose like the CLI, expand a sweep like Hydra's BasicSweeper."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parents[1]
CONF = str(REPO / "conf")


def compose_cfg(overrides: list[str]) -> DictConfig:
    """``train.yaml`` with ``overrides``, Hydra's own config included (``hydra.sweeper.params``)."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def jobs(experiment: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
    """The job overrides `deepprompt-train -m experiment=<experiment> <extra>` launches (as BasicSweeper does)."""
    cfg = compose_cfg([f"experiment={experiment}"])  # command-line sweeps are the sweeper's, not compose's
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    parsed = OverridesParser.create().parse_overrides(
        [f"{k}={v}" for k, v in params.items()] + [f"experiment={experiment}", *extra]
    )
    [batch] = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return batch
