"""Every sweep experiment and the Optuna search compose, and their sweeper params expand to the intended grids."""

from __future__ import annotations

import math

import pytest

from deepprompt.train import validate
from tests.conftest import run_dirs
from tests.sweeps import REPO, compose_cfg, jobs

METHODS = [
    "ptuning_v2",
    "prefix",
    "prefix_mlp",
    "prompt_tuning",
    "ptuning_v1",
    "lora",
    "finetune",
    "linear_probe",
]
LR_GRIDS = {
    "ptuning_v2": [5e-3, 1e-2, 2e-2],
    "prefix": [5e-3, 1e-2, 2e-2],
    "prefix_mlp": [5e-3, 1e-2, 2e-2],
    "lora": [5e-4, 1e-3],
    "finetune": [2e-5, 5e-5],
    "prompt_tuning": [1e-2, 3e-2],
    "ptuning_v1": [1e-2, 3e-2],
    "linear_probe": [1e-3, 3e-3],
}
# experiment -> number of jobs, the keys swept
GRIDS = {
    "length_sweep": (8 * 3, {"method.prompt.length", "seed"}),
    "depth_ablation": (12, {"method.prompt.layers"}),
    "reparam_ablation": (2 * 4, {"method.prompt.reparam", "data"}),
    "method_comparison": (8 * 4 * 3, {"method", "data", "seed"}),
    **{f"lr_grid_{m}": (len(g), {"method.lr"}) for m, g in LR_GRIDS.items()},
}


@pytest.mark.parametrize("experiment", sorted(GRIDS))
def test_experiment_expands_to_its_grid(experiment):
    count, keys = GRIDS[experiment]
    cfg = compose_cfg([f"experiment={experiment}"])
    assert set(cfg.hydra.sweeper.params) == keys
    batch = jobs(experiment)
    assert len(batch) == count
    assert len({tuple(job) for job in batch}) == count  # no duplicates
    header = (REPO / "conf" / "experiment" / f"{experiment}.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_"
    assert any(f"deepprompt-train -m experiment={experiment}" in line for line in header)


@pytest.mark.parametrize("experiment", sorted(GRIDS))
def test_every_job_of_the_experiment_composes_and_validates(experiment):
    """Each job's full config (first, last and one per swept value) passes the typed checks of a real run."""
    batch = jobs(experiment)
    picked = {0, len(batch) - 1}
    seen: set[str] = set()
    for i, job in enumerate(batch):
        new = set(job) - seen
        if new:
            picked.add(i)
            seen |= new
    combos = []
    for i in sorted(picked):
        cfg = compose_cfg(batch[i])
        validate(cfg)
        combos.append((cfg.method.name, cfg.method.lr))
    if experiment.startswith("lr_grid_"):  # exactly the method's rates, with that method
        method = experiment.removeprefix("lr_grid_")
        assert combos == [(method, lr) for lr in LR_GRIDS[method]]


def test_method_comparison_covers_every_method_task_and_seed():
    combos = set()
    for job in jobs("method_comparison"):
        values = dict(o.split("=", 1) for o in job)
        combos.add((values["method"], values["data"], values["seed"]))
    assert {m for m, _, _ in combos} == set(METHODS)
    assert len(combos) == 96


def test_command_line_replaces_a_swept_list():
    """How depth_ablation adapts to another depth: the command-line list wins over the file's."""
    batch = jobs("depth_ablation", ("method.prompt.layers=top-1,top-12,bottom-24",))
    assert [j[0] for j in batch] == [
        "method.prompt.layers=top-1",
        "method.prompt.layers=top-12",
        "method.prompt.layers=bottom-24",
    ]


def test_optuna_search_composes():
    cfg = compose_cfg(["hparams_search=ptuning_v2_optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize" and sweeper.storage is None and sweeper.study_name
    assert set(sweeper.params) == {"method.lr", "method.prompt.length", "method.prompt.dropout"}
    assert "log" in sweeper.params["method.lr"]
    assert cfg.optimized_metric == cfg.monitor == "val/acc"
    assert cfg.hydra.mode.name == "MULTIRUN"
    validate(cfg)


@pytest.mark.slow
def test_two_trial_optuna_sweep_with_sqlite(run_cli, tmp_path):
    optuna = pytest.importorskip("optuna")
    db = tmp_path / "optuna.db"
    run_cli(
        "deepprompt.train",
        "hparams_search=ptuning_v2_optuna",
        "backbone=tiny",
        "debug=limit",
        "extras.print_config=false",
        "data=rte",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage=sqlite:///{db}",
        "hydra.sweeper.study_name=tiny_rte",
    )
    assert db.is_file()
    study = optuna.load_study(study_name="tiny_rte", storage=f"sqlite:///{db}")
    assert len(study.trials) == 2
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert all(not math.isnan(t.value) for t in study.trials)
    assert {"method.lr", "method.prompt.length", "method.prompt.dropout"} <= set(study.trials[0].params)
    assert len(run_dirs(tmp_path / "outputs")) == 2
