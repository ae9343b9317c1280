"""`deepprompt-serve`'s command-line mistakes: one line, before torch is imported."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from deepprompt.errors import ConfigError
from deepprompt.serve.cli import build_server
from tests.predict.helpers import failed_before_torch


@pytest.fixture(autouse=True)
def fixture_data_dir():
    """No trained run: the command stops before it would load one."""


def test_an_unknown_key_is_one_line_before_torch_is_imported(tmp_path):
    status, stderr, imported = failed_before_torch("deepprompt.serve.cli", "bogus=1", cwd=tmp_path)
    assert status == 1
    assert stderr == [
        "deepprompt-serve: error: unknown key 'bogus': (valid keys at the top level: allow_task_changes, backbone, "
        "batching, compile, device, dtype, eager_buckets, gil_switch_ms, graphs, host, log_level, max_shapes, "
        "pad_to_multiple_of, port, prompts, seed, threads, warmup_shapes)"
    ]
    assert "deepprompt.config.cli_errors" in imported  # the listing holds what main() imports
    assert "torch" not in imported


def test_a_refused_value_names_the_override_before_torch_is_imported(tmp_path):
    status, stderr, imported = failed_before_torch(
        "deepprompt.serve.cli", "prompts={sst2: runs/sst2}", "eager_buckets=on", cwd=tmp_path
    )
    assert status == 1
    assert stderr == [
        "deepprompt-serve: error: eager_buckets must be auto, true or false, got 'on' (from `eager_buckets=on` on "
        "the command line): pass eager_buckets=auto (on a GPU), true or false"
    ]
    assert "torch" not in imported


@pytest.mark.parametrize("prompts", [None, {}])
def test_no_prompts_says_how_to_name_the_tasks(prompts):
    with pytest.raises(ConfigError) as info:
        build_server(OmegaConf.create({"prompts": prompts}))
    assert str(info.value) == 'no tasks to serve: pass prompts="{<task>: <run folder>, ...}"'
