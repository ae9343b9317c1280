"""Checkpoint files given by the user: read weights-only (a crafted pickle runs nothing), and every bad file is one
line naming it, in deepprompt-eval, deepprompt-compress and training's ckpt_path= alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepprompt.errors import CheckpointError
from deepprompt.utils.checkpoint import load_checkpoint
from tests.runs.helpers import TINY, metrics


class _Payload:
    """Unpickled with ``weights_only=False``, this calls ``open(marker, "w")``: the file appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def write_malicious(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "epoch": 0, "payload": _Payload(marker)}, path)
    return path


def _unsafe(path: Path) -> str:
    return (
        f"{path}: not a deepprompt checkpoint or unsafe content (it asks to load io.open); only files written "
        "by deepprompt-train are read"
    )


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory) -> Path:
    """A copy of the session's tiny P-Tuning v2 run on RTE (prompt length 4, ``tiny_run``) shared by the CLI tests
    below: they hand its folder to deepprompt-eval/compress, so they get their own copy, not the session's."""
    run = tmp_path_factory.mktemp("trained") / "run"
    shutil.copytree(tiny_run.run, run)
    return run


def _env(benchmark_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DEEPPROMPT_DATA_DIR": str(benchmark_dir),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("DEEPPROMPT_DEBUG", None)
    return env


def _one_line(proc, prefix: str, expected: str) -> None:
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith(prefix)]
    assert errors == [f"{prefix} {expected}"], proc.stderr[-3000:]


def test_load_checkpoint_refuses_code_and_reads_real_checkpoints(tmp_path):
    marker = tmp_path / "pwned"
    bad = write_malicious(tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    assert str(info.value) == _unsafe(bad)
    assert not marker.exists()
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 1, "loops": {"a": [1, 2.0, None]}}, good)
    assert load_checkpoint(good)["epoch"] == 1
    (tmp_path / "half.ckpt").write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"half.ckpt: not a readable checkpoint \(100 bytes; truncated"):
        load_checkpoint(tmp_path / "half.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(
        CheckpointError, match=r"list.ckpt: not a deepprompt checkpoint \(no 'state_dict' in it\)"
    ):
        load_checkpoint(tmp_path / "list.ckpt")


def test_checkpoints_written_by_training_load_weights_only(trained):
    for name in ("best", "last"):
        state = load_checkpoint(trained / "checkpoints" / f"{name}.ckpt")
        assert any("prompt" in key for key in state["state_dict"])


@pytest.mark.parametrize("command", ["eval", "compress"])
def test_malicious_checkpoint_runs_no_code_in_eval_or_compress(
    command, trained, benchmark_dir, tmp_path, monkeypatch, capsys
):
    """The commands' code in this process: deepprompt-eval's evaluate (the command prints its CheckpointError after
    ``deepprompt-eval: error:``, one line: test_first_hour's test_eval_of_a_folder_that_is_no_run_fails_fast) and
    deepprompt-compress's main, which prints the line itself."""
    from deepprompt import compress
    from deepprompt.eval import evaluate

    monkeypatch.setenv("DEEPPROMPT_DATA_DIR", str(benchmark_dir))
    marker = tmp_path / "pwned"
    bad = write_malicious(tmp_path / "evil.ckpt", marker)
    if command == "eval":
        with pytest.raises(CheckpointError) as info:
            evaluate(trained, str(bad))
        assert str(info.value) == _unsafe(bad)
    else:
        with pytest.raises(SystemExit) as info:
            compress.main([f"run_dir={trained}", f"checkpoint={bad}"])
        assert info.value.code == 1
        assert capsys.readouterr().err.splitlines() == [f"deepprompt-compress: error: {_unsafe(bad)}"]
    assert not marker.exists(), f"deepprompt-{command} ran code from the checkpoint"


def test_malicious_checkpoint_runs_no_code_in_training(benchmark_dir, tmp_path):
    marker = tmp_path / "pwned"
    bad = write_malicious(tmp_path / "evil.ckpt", marker)
    run = tmp_path / "resumed"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepprompt.train",
            *TINY,
            "data=rte",
            f"hydra.run.dir={run}",
            f"ckpt_path={bad}",
        ],
        env=_env(benchmark_dir),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert not marker.exists(), "deepprompt-train ran code from the checkpoint"
    expected = f"{_unsafe(bad)}; delete it or pass another ckpt_path (resume=never starts over)"
    _one_line(proc, "deepprompt: error:", expected)
    assert metrics(run)["status"] == "failed"  # recorded in the run folder


def _eval(benchmark_dir: Path, cwd: Path, *args: str):
    return subprocess.run(
        [sys.executable, "-m", "deepprompt.eval", *args],
        env=_env(benchmark_dir),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


# slow: the default suite checks its parts: the truncated-file message (N bytes) in
# test_load_checkpoint_refuses_code_and_reads_real_checkpoints, evaluate raising the CheckpointError that names an
# unreadable file in test_malicious_checkpoint_runs_no_code_in_eval_or_compress[eval], and deepprompt-eval printing
# such an error as one line in test_first_hour.py::test_eval_of_a_folder_that_is_no_run_fails_fast
@pytest.mark.slow
def test_eval_truncated_checkpoint_is_one_line_with_the_path(trained, benchmark_dir, tmp_path):
    half = tmp_path / "half.ckpt"
    whole = (trained / "checkpoints" / "best.ckpt").read_bytes()
    half.write_bytes(whole[: len(whole) // 2])
    proc = _eval(benchmark_dir, tmp_path, f"run_dir={trained}", f"checkpoint={half}")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("deepprompt-eval: error:")]
    assert line.startswith(
        f"deepprompt-eval: error: {half}: not a readable checkpoint ({len(whole) // 2} bytes;"
    )


@pytest.mark.slow
def test_eval_shape_mismatch_names_parameter_and_both_shapes(trained, benchmark_dir, tmp_path):
    state = load_checkpoint(trained / "checkpoints" / "best.ckpt")["state_dict"]
    [(name, saved)] = [(k, v) for k, v in state.items() if "prompt" in k]
    proc = _eval(
        benchmark_dir,
        tmp_path,
        f"run_dir={trained}",
        "checkpoint=best",
        "override={method: {prompt: {length: 6}}}",
    )
    wanted = [*saved.shape]
    wanted[wanted.index(4)] = 6
    _one_line(
        proc,
        "deepprompt-eval: error:",
        f"{trained / 'checkpoints' / 'best.ckpt'}: parameter {name} has shape {list(saved.shape)} in the "
        f"checkpoint but {wanted} in the model built from the run's config",
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", ["eval", "compress"])
def test_checkpoint_without_the_runs_trained_parameters_is_refused(command, trained, benchmark_dir, tmp_path):
    ckpt = load_checkpoint(trained / "checkpoints" / "best.ckpt")
    ckpt["state_dict"] = {
        k: v for k, v in ckpt["state_dict"].items() if "prompt" not in k
    }  # another method's
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    proc = subprocess.run(
        [sys.executable, "-m", f"deepprompt.{command}", f"run_dir={trained}", f"checkpoint={other}"],
        env=_env(benchmark_dir),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    [line] = [x for x in proc.stderr.splitlines() if x.startswith(f"deepprompt-{command}: error:")]
    assert f"{other} lacks trained parameters of this run: ['encoder.prompt_encoder" in line


def test_a_folder_that_is_not_a_prompt_export_is_named(tmp_path):
    from deepprompt.runs.restore import load_trained

    with pytest.raises(CheckpointError) as info:
        load_trained(None, tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: a folder but not a prompt export (no prompt_config.json); give a .ckpt file or a "
        "prompts/<name> folder"
    )


@pytest.mark.parametrize(
    ("ratios", "bad"), [("ratios=[1.0,abc]", "'abc'"), ("ratios=0", "0"), ("ratios=[1.5]", "1.5")]
)
def test_compress_bad_ratio_is_one_line_before_loading(ratios, bad, tmp_path, capsys):
    from deepprompt.compress import main

    with pytest.raises(SystemExit) as info:
        main([f"run_dir={tmp_path / 'no-such-run'}", ratios])
    assert info.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"deepprompt-compress: error: ratios: {bad} is not a compression ratio in (0, 1], e.g. "
        "ratios=[1.0,0.5,0.25]"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "EOFError)"),
        (b"hello, not a checkpoint\n", "KeyError: 101)"),
    ],
    ids=["empty", "text"],
)
def test_foreign_files_are_unreadable_checkpoints(tmp_path, content, expected):
    path = tmp_path / "x.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == (
        f"{path}: not a readable checkpoint ({len(content)} bytes; truncated or corrupt: {expected}"
    )
