"""The GPU fast path: every branch of the decision with its line word for word, the facts read from composed
configs (what the user set vs the defaults), and a CPU run through the CLI that prints the line and trains as
before."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from deepprompt.config.resolvers import register_resolvers
from deepprompt.runs.fast_path import Facts, apply, decide, read_facts
from tests.conftest import run_dirs

CONF = Path(__file__).resolve().parents[2] / "conf"
register_resolvers()

GPU = Facts(device="cuda", precision="bf16-mixed")  # trainer=gpu, ptuning_v2, SST-2: every lever
ALL = {
    "method.frozen_dtype": "bf16",
    "method.cuda_graphs": True,
    "data.pad_to_multiple_of": 32,
    "data.num_workers": 0,
}
ALL_LINE = (
    "fast path: method.frozen_dtype=bf16, method.cuda_graphs=true, data.pad_to_multiple_of=32, "
    "data.num_workers=0 (turn off: fast_path=false)"
)
NO_LEVERS = frozenset({"compile"})  # e.g. prefix: compile, but neither lever


def facts(**changes) -> Facts:
    return dataclasses.replace(GPU, **changes)


@pytest.mark.parametrize(
    ("enabled", "changes", "settings", "line"),
    [
        # where the fast path does not apply at all
        (False, {}, {}, "fast path: off (fast_path=false): eager path"),
        (True, {"device": "cpu"}, {}, "fast path: CPU: eager path (the fast path needs a CUDA GPU)"),
        (True, {"device": "mps"}, {}, "fast path: MPS: eager path (the fast path needs a CUDA GPU)"),
        (
            True,
            {"precision": "32-true"},
            {},
            "fast path: eager path: trainer.precision=32-true (the fast path runs under bf16-mixed, as trainer=gpu "
            "sets)",
        ),
        (
            True,
            {"method": "lora", "method_keys": frozenset()},
            {},
            "fast path: eager path: method lora has no fast-path option",
        ),
        (
            True,
            {"method": "prefix", "method_keys": NO_LEVERS},
            {},
            "fast path: eager path: method prefix has no fast-path option",
        ),
        # every lever
        (True, {}, ALL, ALL_LINE),
        (True, {"precision": "bf16"}, ALL, ALL_LINE),  # Lightning's older name of bf16-mixed
        # a method with one lever
        (
            True,
            {"method": "linear_probe", "method_keys": frozenset({"frozen_dtype"})},
            {"method.frozen_dtype": "bf16"},
            "fast path: method.frozen_dtype=bf16; no CUDA graphs: method linear_probe has no cuda_graphs "
            "(turn off: fast_path=false)",
        ),
        # what the user set is kept
        (
            True,
            {"explicit": {"method.frozen_dtype": "fp32"}},
            {"method.cuda_graphs": True, "data.pad_to_multiple_of": 32, "data.num_workers": 0},
            "fast path: method.cuda_graphs=true, data.pad_to_multiple_of=32, data.num_workers=0; no bf16 frozen "
            "weights: method.frozen_dtype=fp32 is set (turn off: fast_path=false)",
        ),
        (
            True,
            {"explicit": {"method.cuda_graphs": False}},
            {"method.frozen_dtype": "bf16"},
            "fast path: method.frozen_dtype=bf16; no CUDA graphs: method.cuda_graphs=false is set "
            "(turn off: fast_path=false)",
        ),
        (
            True,
            {"explicit": {"data.pad_to_multiple_of": 8}},
            {"method.frozen_dtype": "bf16", "method.cuda_graphs": True, "data.num_workers": 0},
            "fast path: method.frozen_dtype=bf16, method.cuda_graphs=true, data.num_workers=0 "
            "(turn off: fast_path=false)",
        ),
        (  # the user's workers are kept
            True,
            {"explicit": {"data.num_workers": 2}},
            {"method.frozen_dtype": "bf16", "method.cuda_graphs": True, "data.pad_to_multiple_of": 32},
            "fast path: method.frozen_dtype=bf16, method.cuda_graphs=true, data.pad_to_multiple_of=32 "
            "(turn off: fast_path=false)",
        ),
        (  # the user's own graphs still get the padding that keeps the shapes few
            True,
            {"explicit": {"method.cuda_graphs": True, "method.frozen_dtype": "bf16"}},
            {"data.pad_to_multiple_of": 32, "data.num_workers": 0},
            "fast path: data.pad_to_multiple_of=32, data.num_workers=0 (turn off: fast_path=false)",
        ),
        (
            True,
            {"explicit": {"method.frozen_dtype": "fp32", "method.cuda_graphs": False}},
            {},
            "fast path: eager path; no bf16 frozen weights: method.frozen_dtype=fp32 is set; no CUDA graphs: "
            "method.cuda_graphs=false is set",
        ),
        # combinations CUDA graphs do not support (or that are not verified)
        (
            True,
            {"compile": "reduce-overhead"},
            {"method.frozen_dtype": "bf16"},
            "fast path: method.frozen_dtype=bf16; no CUDA graphs: method.compile=reduce-overhead is set "
            "(turn off: fast_path=false)",
        ),
        (
            True,
            {"gradient_checkpointing": True},
            {"method.frozen_dtype": "bf16"},
            "fast path: method.frozen_dtype=bf16; no CUDA graphs: gradient_checkpointing=true "
            "(turn off: fast_path=false)",
        ),
        (
            True,
            {"processes": 2, "strategy": "HydraDDPStrategy"},
            {"method.frozen_dtype": "bf16"},
            "fast path: method.frozen_dtype=bf16; no CUDA graphs: not verified with DDP, 2 processes "
            "(turn off: fast_path=false)",
        ),
        (
            True,
            {"strategy": "ddp"},
            {"method.frozen_dtype": "bf16"},
            "fast path: method.frozen_dtype=bf16; no CUDA graphs: not verified with trainer.strategy=ddp "
            "(turn off: fast_path=false)",
        ),
        (
            True,
            {"task_module": "MultipleChoiceModule"},
            {"method.frozen_dtype": "bf16"},
            "fast path: method.frozen_dtype=bf16; no CUDA graphs: not verified with MultipleChoiceModule "
            "(turn off: fast_path=false)",
        ),
        (
            True,
            {"task_module": "MultiTaskModule"},
            {},
            "fast path: eager path; no bf16 frozen weights: not verified with MultiTaskModule; no CUDA graphs: "
            "not verified with MultiTaskModule",
        ),
        (
            True,
            {"task_module": "GenerationModule"},
            {},
            "fast path: eager path; no bf16 frozen weights: not verified with GenerationModule; no CUDA graphs: "
            "not verified with GenerationModule",
        ),
        (  # a decoder-only classifier (SmolLM2): bf16 weights, no CUDA graphs
            True,
            {"pooling": "last"},
            {"method.frozen_dtype": "bf16"},
            "fast path: method.frozen_dtype=bf16; no CUDA graphs: not verified with a decoder-only backbone "
            "(head.pooling=last) (turn off: fast_path=false)",
        ),
        (  # a data module without the padding and workers options: graphs, no data setting
            True,
            {"pads": False, "workers": False},
            {"method.frozen_dtype": "bf16", "method.cuda_graphs": True},
            "fast path: method.frozen_dtype=bf16, method.cuda_graphs=true (turn off: fast_path=false)",
        ),
    ],
)
def test_decision_and_its_line(enabled, changes, settings, line):
    choice = decide(enabled, facts(**changes))
    assert choice.settings == settings
    assert choice.line == line


# -- facts from composed configs ---------------------------------------------------------------------------------
@pytest.fixture
def compose_train():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield lambda *overrides: compose("train", overrides=list(overrides))
    GlobalHydra.instance().clear()


CLS = "ClassificationModule"


def test_the_defaults_are_open_and_resolve_to_the_plain_values(compose_train, benchmark_dir):
    cfg = compose_train("trainer=gpu", "backbone=tiny", f"paths.data_dir={benchmark_dir}")
    got = read_facts(cfg, CLS, cuda_devices=1)
    assert got == Facts(device="cuda", precision="bf16-mixed", method_keys=got.method_keys)
    assert {"frozen_dtype", "cuda_graphs", "compile"} <= got.method_keys
    # any other reader (deepprompt-eval, a test) gets the plain values
    assert (cfg.method.frozen_dtype, cfg.method.cuda_graphs, cfg.data.pad_to_multiple_of) == (
        "fp32",
        False,
        8,
    )
    assert cfg.data.num_workers == 2
    datamodule = instantiate(cfg.data)
    assert datamodule.collator.pad_to_multiple_of == 8 and datamodule.num_workers == 2


@pytest.mark.parametrize(
    ("overrides", "explicit"),
    [
        (
            ("method.frozen_dtype=fp32",),
            {"method.frozen_dtype": "fp32"},
        ),  # equal to the default: still the user's
        (("method.cuda_graphs=true",), {"method.cuda_graphs": True}),
        (("data.pad_to_multiple_of=8",), {"data.pad_to_multiple_of": 8}),
        (("data.pad_to_multiple_of=null",), {"data.pad_to_multiple_of": None}),
        (("data.num_workers=2",), {"data.num_workers": 2}),
        (("data=copa",), {"data.num_workers": 2}),  # a data config that sets its workers itself
        (("data=rte", "method=linear_probe"), {}),
        (("method=lora",), {}),
    ],
)
def test_what_the_user_sets_is_explicit(compose_train, overrides, explicit):
    assert read_facts(compose_train("trainer=gpu", *overrides), CLS, cuda_devices=1).explicit == explicit


@pytest.mark.parametrize(
    ("overrides", "cuda_devices", "expected"),
    [
        (
            ("trainer=gpu",),
            1,
            {"device": "cuda", "precision": "bf16-mixed", "processes": 1, "strategy": None},
        ),
        (("trainer=cpu",), 1, {"device": "cpu", "precision": "32-true", "processes": 1}),
        (("trainer=default",), 0, {"device": "cpu", "precision": "32-true"}),  # accelerator auto, no GPU
        (("trainer=default",), 2, {"device": "cuda", "precision": "32-true", "processes": 1}),
        (("trainer=ddp",), 4, {"device": "cuda", "processes": 2, "strategy": "HydraDDPStrategy"}),
        (("trainer=gpu", "trainer.devices=-1"), 4, {"processes": 4}),
        (("trainer=gpu", "trainer.devices=[0,1]", "+trainer.num_nodes=2"), 2, {"processes": 4}),
        (("trainer=gpu", "gradient_checkpointing=true"), 1, {"gradient_checkpointing": True}),
        (("trainer=gpu", "method.compile=default"), 1, {"compile": "default"}),
        (("trainer=gpu", "method=lora"), 1, {"method": "lora", "compile": "none"}),
        (("trainer=gpu", "backbone=tiny_llama"), 1, {"pooling": "last"}),
        (("trainer=gpu",), 1, {"pooling": "pooler"}),
    ],
)
def test_facts_of_a_composed_config(compose_train, overrides, cuda_devices, expected):
    got = read_facts(compose_train(*overrides), CLS, cuda_devices)
    assert {k: getattr(got, k) for k in expected} == expected
    if "method=lora" in overrides:
        assert not {"frozen_dtype", "cuda_graphs"} & got.method_keys


def test_task_module_and_padding_option_come_from_the_data(compose_train):
    cfg = compose_train(
        "trainer=gpu", "data=e2e", "backbone=tiny_llama"
    )  # generation data: no padding option
    got = read_facts(cfg, "GenerationModule", 1)
    assert got.task_module == "GenerationModule" and got.pads is False
    assert got.explicit == {"data.num_workers": 0}  # its workers are its own


def test_apply_writes_the_choice_and_says_whether_the_data_changed(compose_train):
    cfg = compose_train("trainer=gpu")
    choice = decide(True, read_facts(cfg, CLS, 1))
    assert apply(cfg, choice) is True
    assert (cfg.method.frozen_dtype, cfg.method.cuda_graphs, cfg.data.pad_to_multiple_of) == (
        "bf16",
        True,
        32,
    )
    assert cfg.data.num_workers == 0
    cfg = compose_train("trainer=gpu", "method=linear_probe")
    assert apply(cfg, decide(True, read_facts(cfg, CLS, 1))) is False
    assert cfg.method.frozen_dtype == "bf16" and cfg.data.pad_to_multiple_of == 8
    assert cfg.data.num_workers == 2


def test_fast_path_must_be_a_bool(compose_train):
    from deepprompt.errors import ConfigError
    from deepprompt.train import validate

    with pytest.raises(ConfigError, match=r"fast_path must be true or false, got 'off'"):
        validate(compose_train("fast_path=off"))


# -- the CLI on CPU ------------------------------------------------------------------------------------------------
def test_cpu_run_prints_the_line_and_trains_as_with_the_fast_path_off(run_cli, tmp_path):
    proc = run_cli(
        "deepprompt.train",
        "-m",
        "backbone=tiny",
        "debug=limit",
        "extras.print_config=false",
        "data=sst2",
        "method.prompt.length=4",
        "fast_path=true,false",
    )
    output = proc.stdout + proc.stderr
    assert output.count("fast path: CPU: eager path (the fast path needs a CUDA GPU)") == 1
    assert output.count("fast path: off (fast_path=false): eager path") == 1
    on, off = sorted(
        (json.loads((d / "metrics.json").read_text()) for d in run_dirs(tmp_path / "outputs")),
        key=lambda s: s["fast_path"].startswith("fast path: off"),
    )
    assert on["fast_path"] == "fast path: CPU: eager path (the fast path needs a CUDA GPU)"
    for summary in (on, off):
        assert summary["status"] == "finished"
        method, data = summary["config"]["method"], summary["config"]["data"]
        assert (method["frozen_dtype"], method["cuda_graphs"], data["pad_to_multiple_of"]) == (
            "fp32",
            False,
            8,
        )
    assert on["history"] == off["history"]  # same numbers: the CPU run is the eager run
