"""Tiny trained runs for the predict and serve tests: `deepprompt-train` on the fixture folders, once a session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli, run_dirs, write_benchmarks
from tests.tasks.conftest import write_task_benchmarks
from tests.tasks.generation.test_data_metrics import save_tokenizer, write_e2e

TINY = ("debug=limit", "extras.print_config=false", "method.prompt.length=4", "trainer.max_epochs=1")


def env(data_dir: Path, **extra: str) -> dict[str, str]:
    full = {
        **os.environ,
        "DEEPPROMPT_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        **extra,
    }
    full.pop("DEEPPROMPT_DEBUG", None)
    return full


def data_root(root: Path) -> Path:
    """Every fixture benchmark in one folder: sst2/rte/boolq/cb, wic/wsc/multirc/copa/conll2003/squad, e2e."""
    if not (root / "e2e").is_dir():
        write_benchmarks(root)
        write_task_benchmarks(root)
        write_e2e(root, n_train=40)
    return root


def train(root: Path, name: str, *overrides: str) -> Path:
    """A finished tiny run of ``overrides`` under ``root/runs/name`` (trained once, reused)."""
    out = root / "runs" / name
    done = run_dirs(out) if out.is_dir() else []
    if done:
        return done[0]
    data = data_root(root / "data")
    extra = ["backbone=tiny"]
    if "backbone=tiny_llama" in overrides:  # a decoder classifier: an offline word-level tokenizer
        extra = [f"backbone.name_or_path={save_tokenizer(root / 'e2e_tokenizer')}"]
    if "data=e2e" in overrides:  # tiny Llama with an offline word-level tokenizer
        tok = save_tokenizer(root / "e2e_tokenizer")
        extra = ["backbone=tiny_llama", f"backbone.name_or_path={tok}"]
        extra += ["data.generation.num_beams=2", "data.generation.max_new_tokens=8"]
    proc = subprocess.run(
        [sys.executable, "-m", "deepprompt.train", *TINY, *overrides, *extra],
        capture_output=True,
        text=True,
        env=env(data, DEEPPROMPT_OUTPUT_DIR=str(out)),
        cwd=root,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    [run] = run_dirs(out)
    return run


def predict_cli(run: Path, *args: str, data: Path, stdin: str | None = None, check: bool = True):
    proc = subprocess.run(
        [sys.executable, "-m", "deepprompt.predict", f"run_dir={run}", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env(data),
        timeout=600,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def failed_before_torch(module: str, *args: str, cwd: Path) -> tuple[int, list[str], set[str]]:
    """``(exit status, stderr lines, modules imported)`` of ``python -m module *args`` in a fresh process, its imports
    listed by ``PYTHONPROFILEIMPORTTIME``: a command-line mistake of deepprompt-predict or deepprompt-serve."""
    proc = cli(
        module,
        *args,
        data_dir=cwd,
        out=cwd / "outputs",
        cwd=cwd,
        check=False,
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    lines = proc.stderr.splitlines()
    imported = {line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:")}
    return proc.returncode, [line for line in lines if not line.startswith("import time:")], imported
