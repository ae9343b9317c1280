"""Reopening a run folder: its config, with data-module targets of older run folders mapped to their classes."""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import OmegaConf

from deepprompt.runs.restore import FORMER_DATA_TARGETS, load_run_config


def test_former_data_targets_map_to_existing_classes(tmp_path):
    for new in FORMER_DATA_TARGETS.values():
        assert get_class(new).__name__ == new.rsplit(".", 1)[1]
    (tmp_path / ".hydra").mkdir()
    cfg = {"paths": {"output_dir": "elsewhere"}, "data": {"_target_": "deepprompt.data.SquadDataModule"}}
    OmegaConf.save(OmegaConf.create(cfg), tmp_path / ".hydra" / "config.yaml")
    loaded = load_run_config(tmp_path)
    assert loaded.data._target_ == "deepprompt.tasks.qa.SquadDataModule"
    assert loaded.paths.output_dir == str(tmp_path)
