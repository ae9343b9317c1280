"""Every config option composes and passes the typed checks; data and trainer configs instantiate."""

from __future__ import annotations

import json
import subprocess
import sys
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
    """The Hydra scripts as installed (not `python -m`): Hydra looks the configs up as a package."""
    for script in ("deepprompt-train", "deepprompt-eval", "deepprompt-predict", "deepprompt-serve"):
        exe = Path(sys.executable).parent / script
        proc = subprocess.run(
            [str(exe), "--cfg", "job"], capture_output=True, text=True, cwd=tmp_path, timeout=300
        )
        assert proc.returncode == 0 or "run_dir" in proc.stderr + proc.stdout, proc.stderr[-2000:]
        assert "Primary config module" not in proc.stderr


# The typed sections import without torch, so that deepprompt-train refuses a bad value in a second, not after
# the imports of torch and transformers. Run in a fresh interpreter: this one has long imported torch.
VALIDATE_IN_A_FRESH_PROCESS = """
import json, sys
from deepprompt.errors import ConfigError
from deepprompt.train import validate
from tests.sweeps import compose_cfg

error = None
try:
    validate(compose_cfg(["backbone=tiny", "data=rte", *sys.argv[1:]]))
except ConfigError as err:
    error = str(err)
print(json.dumps({"error": error, "torch": "torch" in sys.modules}))
"""
BAD_VALUES = [
    (
        ("backbone.pretrained=maybe",),
        "backbone.pretrained must be true or false, got 'maybe' (from `backbone.pretrained=maybe` on the command "
        "line): pass e.g. backbone.pretrained=true",
    ),
    (
        ("method.prompt.length=-4",),
        "method.prompt.length must be a positive integer, got -4 (from `method.prompt.length=-4` on the command "
        "line): pass e.g. method.prompt.length=16",
    ),
    (
        ("method=linear_probe", "method.frozen_dtype=fp8"),
        "method.frozen_dtype must be fp32, bf16 or fp16, got 'fp8' (from `method.frozen_dtype=fp8` on the command "
        "line): pass e.g. method.frozen_dtype=fp32",
    ),
    # a value set in a config file (BAD_EXPERIMENT, in a folder added to the search path): the file and line
    (
        ("hydra.searchpath=[file://{extra}]", "experiment=bad_reparam"),
        "method.prompt.reparam must be 'none' or 'mlp', got 'lstm' (from {extra}/experiment/bad_reparam.yaml:5): "
        "pass e.g. method.prompt.reparam=mlp",
    ),
    # the last section validate checks: every section before it imports without torch too
    (
        ("head.pooling=mean",),
        "head.pooling must be 'pooler', 'cls' or 'last', got 'mean' (from `head.pooling=mean` on the command "
        "line): pass e.g. head.pooling=cls",
    ),
]


BAD_EXPERIMENT = """# @package _global_
method:
  lr: 1.0e-2
  prompt:
    reparam: lstm
"""


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES)
def test_bad_values_are_refused_before_torch_is_imported(tmp_path, overrides, message):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "bad_reparam.yaml").write_text(BAD_EXPERIMENT)
    overrides = [o.format(extra=tmp_path.resolve()) for o in overrides]
    message = message.format(extra=tmp_path.resolve())
    proc = subprocess.run(
        [sys.executable, "-c", VALIDATE_IN_A_FRESH_PROCESS, *overrides],
        capture_output=True,
        text=True,
        cwd=CONF.parent,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == {"error": message, "torch": False}
