"""The knob experiment configs compose and expand to their grids; every job passes the typed checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from deepprompt.config import structured
from deepprompt.methods import method_schema
from deepprompt.train import validate

REPO = Path(__file__).resolve().parents[2]
CONF = str(REPO / "conf")
GRIDS = {
    "knob_length_profile": (4 * 3, {"method.prompt.length", "seed"}),
    "knob_layer_lr": (4 * 3, {"method.layer_lr.profile", "seed"}),
}


def compose_cfg(overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def jobs(experiment, extra=()):
    cfg = compose_cfg([f"experiment={experiment}"])
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    parsed = OverridesParser.create().parse_overrides(
        [f"{k}={v}" for k, v in params.items()] + [f"experiment={experiment}", *extra]
    )
    [batch] = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return batch


@pytest.mark.parametrize("experiment", sorted(GRIDS))
def test_knob_experiment_grid_and_jobs_validate(experiment):
    count, keys = GRIDS[experiment]
    cfg = compose_cfg([f"experiment={experiment}"])
    assert set(cfg.hydra.sweeper.params) == keys
    batch = jobs(experiment)
    assert len(batch) == count == len({tuple(j) for j in batch})
    header = (REPO / "conf" / "experiment" / f"{experiment}.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_"
    assert any(f"deepprompt-train -m experiment={experiment}" in line for line in header)
    seen = set()
    for job in batch:
        if job[0] in seen:
            continue
        seen.add(job[0])
        validate(compose_cfg(job))


def test_length_profiles_and_lists_from_the_command_line():
    batch = jobs("knob_length_profile", ("method.prompt.length=16,[0,0,8,8,16,16]",))
    lengths = {job[0] for job in batch}
    assert lengths == {"method.prompt.length=16", "method.prompt.length=[0,0,8,8,16,16]"}
    cfg = compose_cfg(["method.prompt.length=[0,0,8,8,16,16]"])
    method = structured(method_schema("ptuning_v2"), cfg.method, "method")
    assert method.prompt.length == [0, 0, 8, 8, 16, 16]
    cfg = compose_cfg(["method.prompt.length={profile:middle,base:16,c:0.76}"])
    method = structured(method_schema("ptuning_v2"), cfg.method, "method")
    assert method.prompt.length["profile"] == "middle" and method.prompt.length["c"] == 0.76
    assert compose_cfg(["experiment=knob_layer_lr"]).callbacks.lr_monitor.logging_interval == "step"
