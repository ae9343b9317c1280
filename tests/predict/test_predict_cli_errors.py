"""`deepprompt-predict`'s command-line mistakes: one line, before torch and Lightning are imported."""

from __future__ import annotations

import pytest

from tests.predict.helpers import failed_before_torch


@pytest.fixture(autouse=True)
def fixture_data_dir():
    """No trained run: the command stops before it would read one."""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("input=x.jsonl", "bogus=1"),
            "deepprompt-predict: error: unknown key 'bogus': (valid keys at the top level: batch_size, checkpoint, "
            "device, format, input, output, override, progress, run_dir)",
        ),
        (
            ("input=x.jsonl",),
            "deepprompt-predict: error: {run} is not a deepprompt run folder: {run}/.hydra/config.yaml is missing",
        ),
    ],
    ids=["unknown-key", "no-run-folder"],
)
def test_a_mistake_is_one_line_before_torch_is_imported(tmp_path, args, expected):
    run = tmp_path / "no_run"
    status, stderr, imported = failed_before_torch(
        "deepprompt.predict", f"run_dir={run}", *args, cwd=tmp_path
    )
    assert status == 1
    assert stderr == [expected.format(run=run)]
    assert "deepprompt.config.cli_errors" in imported  # the listing holds what main() imports
    assert not {"torch", "lightning"} & imported
