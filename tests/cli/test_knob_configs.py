"""The knob experiment configs compose and expand to their grids; every job passes the typed checks."""

from __future__ import annotations

import pytest

from deepprompt.config import structured
from deepprompt.methods import method_schema
from deepprompt.train import validate
from tests.sweeps import REPO, compose_cfg, jobs

GRIDS = {
    "knob_length_profile": (4 * 3, {"method.prompt.length", "seed"}),
    "knob_layer_lr": (4 * 3, {"method.layer_lr.profile", "seed"}),
}


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
