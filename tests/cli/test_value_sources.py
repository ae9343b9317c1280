"""A refused value names where it was set: the command-line override, or the config file and its line."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from deepprompt.config.sources import where_set
from deepprompt.errors import ConfigError
from deepprompt.train import validate
from tests.sweeps import REPO, compose_cfg

BASE = ("backbone=tiny", "data=rte")
CONF = REPO / "conf"


def line_of(file: Path, text: str) -> int:
    """The 1-based number of the one line of ``file`` that reads ``text`` (before its comment)."""
    lines = file.read_text().splitlines()
    [number] = [i for i, line in enumerate(lines, 1) if line.split(" #")[0].rstrip() == text]
    return number


@pytest.fixture
def extra(tmp_path, monkeypatch):
    """A config folder of the user's own (``hydra.searchpath``) with experiments; the working directory is
    its parent, so messages name its files as ``extra/experiment/<name>.yaml``."""
    (tmp_path / "extra" / "experiment").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    def write(name: str, text: str) -> list[str]:
        (tmp_path / "extra" / "experiment" / f"{name}.yaml").write_text(text)
        return [f"hydra.searchpath=[file://{tmp_path / 'extra'}]", f"experiment={name}"]

    return write


def refusal(overrides) -> str:
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg([*BASE, *overrides]))
    return str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "method.lr=-1",
            "method.lr must be a positive number, got -1.0 (from `method.lr=-1` on the command line): "
            "pass e.g. method.lr=0.01",
        ),
        (
            "seed=abc",
            "seed must be an integer, got 'abc' (from `seed=abc` on the command line): pass e.g. seed=42",
        ),
        (  # head.pooling is ${backbone.pooling}: the override that set the referenced key
            "backbone.pooling=mean",
            "head.pooling must be 'pooler', 'cls' or 'last', got 'mean' (from `backbone.pooling=mean` on the "
            "command line): pass e.g. head.pooling=cls",
        ),
    ],
)
def test_a_value_from_the_command_line_names_the_override(override, message):
    assert refusal([override]) == message


EXPERIMENT = """# @package _global_
# a recipe with mistakes in it
method:
  lr: 1.0e-2
  prompt:
    length: {length}
backbone:
  pretrained: {pretrained}
"""


@pytest.mark.parametrize(
    ("length", "pretrained", "message"),
    [
        (
            -3,
            "true",
            "method.prompt.length must be a positive integer, got -3 (from extra/experiment/recipe.yaml:6): "
            "pass e.g. method.prompt.length=16",
        ),
        (
            16,
            "maybe",
            "backbone.pretrained must be true or false, got 'maybe' (from extra/experiment/recipe.yaml:8): "
            "pass e.g. backbone.pretrained=true",
        ),
    ],
)
def test_a_value_from_a_config_file_names_the_file_and_line(extra, length, pretrained, message):
    assert refusal(extra("recipe", EXPERIMENT.format(length=length, pretrained=pretrained))) == message


def test_an_unknown_key_in_a_config_file_names_the_file_and_line(extra):
    overrides = extra("typo", "# @package _global_\nmethod:\n  prompt:\n    lenght: 8\n")
    assert refusal(overrides) == (
        "unknown key 'method.prompt.lenght' (from extra/experiment/typo.yaml:4): did you mean 'length'? (valid "
        "keys of method.prompt: dropout, init, init_std, layers, length, reparam, reparam_hidden, split_layers)"
    )


def test_the_command_line_wins_over_the_file(extra):
    overrides = extra("recipe", EXPERIMENT.format(length=16, pretrained="true"))
    assert refusal([*overrides, "method.prompt.length=-5"]) == (
        "method.prompt.length must be a positive integer, got -5 (from `method.prompt.length=-5` on the command "
        "line): pass e.g. method.prompt.length=16"
    )


def test_the_file_merged_last_is_named(monkeypatch):
    """Hydra's order: the method file, then the experiment, then debug (train.yaml's defaults list)."""
    monkeypatch.chdir(REPO)
    method, experiment, debug = (
        CONF / "method" / "ptuning_v2.yaml",
        CONF / "experiment" / "rte_minilm.yaml",
        CONF / "debug" / "limit.yaml",
    )
    plain = compose_cfg(list(BASE))
    assert (
        where_set(plain, "method.prompt.length")
        == f"conf/method/ptuning_v2.yaml:{line_of(method, '  length: 16')}"
    )
    recipe = compose_cfg([*BASE, "experiment=rte_minilm", "debug=limit"])
    length = line_of(experiment, "    length: 20")
    assert where_set(recipe, "method.prompt.length") == f"conf/experiment/rte_minilm.yaml:{length}"
    assert (
        where_set(recipe, "data.batch_size") == f"conf/debug/limit.yaml:{line_of(debug, '  batch_size: 8')}"
    )
    # a value that refers to another key: where that key was set
    pooling = line_of(CONF / "backbone" / "tiny.yaml", "pooling: cls")
    assert where_set(recipe, "head.pooling") == f"backbone.pooling at conf/backbone/tiny.yaml:{pooling}"
    assert where_set(recipe, "method.no_such_key") is None


SWEEP = """# @package _global_
task_name: grid
hydra:
  sweeper:
    params:
      method.lr: -1,1e-2
"""


def test_a_value_of_a_sweep_names_the_file_of_the_sweep(extra):
    """A multirun job's override that its experiment's sweep gave names that file; one the sweep has not is
    the command line's."""
    overrides = [*extra("grid", SWEEP), "hydra.mode=MULTIRUN"]
    swept = compose_cfg([*BASE, *overrides, "method.lr=-1"])
    assert (
        where_set(swept, "method.lr")
        == "`method.lr=-1`, a value of the sweep at extra/experiment/grid.yaml:6"
    )
    typed = compose_cfg([*BASE, *overrides, "method.lr=-2"])
    assert where_set(typed, "method.lr") == "`method.lr=-2` on the command line"


def test_without_hydra_config_the_message_names_key_and_fix():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*BASE, "method.prompt.length=-3"])  # no `hydra` node
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert (
        str(info.value)
        == "method.prompt.length must be a positive integer, got -3: pass e.g. method.prompt.length=16"
    )


def test_the_message_survives_a_process_boundary():
    """Sweeps record a failed job's error from another process: the copy keeps its key, fix and source."""
    err = ConfigError("x must be 1, got 2", "x", "pass x=1", "`x=2` on the command line")
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.key, copy.fix) == (str(err), "x", "pass x=1")
    assert str(copy) == "x must be 1, got 2 (from `x=2` on the command line): pass x=1"
