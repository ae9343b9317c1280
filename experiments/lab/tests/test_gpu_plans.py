"""The GPU job plans (experiments/scripts/gpu_plans.py): every plan builds, runs each (group, name) once, and its
follow-up seeds point at a grid that is in the same plan."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "gpu_plans.py"


def _plans():
    spec = importlib.util.spec_from_file_location("gpu_plans", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_plans", module)  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module.PLANS


@pytest.mark.parametrize("name", sorted(_plans()))
def test_plan_is_consistent(name):
    jobs = _plans()[name]()
    keys = [(j.group, j.name) for j in jobs]
    assert len(keys) == len(set(keys)), f"plan {name} runs a job twice into one folder"
    grids = {j.grid for j in jobs if j.grid}
    assert {j.pick_lr_from for j in jobs if j.pick_lr_from} <= grids
    for job in jobs:
        assert any(a.startswith("data=") or a.startswith("experiment=") for a in job.args), job.name
