"""Every config option composes and passes the typed checks; data and trainer configs instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from deepprompt.config.resolvers import register_resolvers
from deepprompt.tasks.registry import module_class
from deepprompt.train import validate

CONF = Path(__file__).resolve().parents[2] / "conf"
register_resolvers()


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture
def compose_train():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield lambda *overrides: compose("train", overrides=list(overrides))
    GlobalHydra.instance().clear()


def test_defaults_are_ptuning_v2_minilm_sst2(compose_train):
    cfg = compose_train()
    assert (cfg.data.task, cfg.backbone.name, cfg.method.name) == ("sst2", "minilm", "ptuning_v2")
    validate(cfg)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_and_validates(compose_train, experiment):
    cfg = compose_train(f"experiment={experiment}")
    validate(cfg)
    assert cfg.task_name, "experiments name their output folder"


@pytest.mark.parametrize(
    ("group", "option"),
    [
        (g, o)
        for g in ("backbone", "method", "data", "trainer", "logger", "callbacks", "debug")
        for o in options(g)
    ],
)
def test_every_group_option_composes_and_validates(compose_train, group, option):
    cfg = compose_train(f"{group}={option}")
    validate(cfg)


# Generation data needs a causal-LM tokenizer (tests/generation builds those with its own tiny tokenizer).
ENCODER_DATA = [
    o
    for o in options("data")
    if "deepprompt.tasks.generation" not in (CONF / "data" / f"{o}.yaml").read_text()
]


@pytest.mark.parametrize("task", ENCODER_DATA)
def test_data_configs_instantiate(compose_train, benchmark_dir, task):
    cfg = compose_train(f"data={task}", "backbone=tiny", f"paths.data_dir={benchmark_dir}")
    datamodule = instantiate(cfg.data)
    # every data module belongs to a task family that names the Lightning module that trains on it
    assert module_class(datamodule).__module__.startswith("deepprompt.tasks.")


def test_cpu_trainer_instantiates(compose_train, tmp_path):
    cfg = compose_train("trainer=cpu", f"trainer.default_root_dir={tmp_path}")
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs


def test_installed_console_scripts_find_their_configs(tmp_path):
    """`deepprompt-train` as installed (not `python -m`): Hydra looks the configs up as a package."""
    import subprocess
    import sys

    for script in ("deepprompt-train", "deepprompt-eval"):
        exe = Path(sys.executable).parent / script
        proc = subprocess.run(
            [str(exe), "--cfg", "job"], capture_output=True, text=True, cwd=tmp_path, timeout=300
        )
        assert proc.returncode == 0 or "run_dir" in proc.stderr + proc.stdout, proc.stderr[-2000:]
        assert "Primary config module" not in proc.stderr
