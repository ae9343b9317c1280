"""Fixtures shared by the whole suite: a small benchmark folder in the original formats, a CLI runner, and one
intra-op thread for the in-process model tests."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORDS = [
    "good",
    "bad",
    "great",
    "awful",
    "fine",
    "dull",
    "bright",
    "dark",
    "warm",
    "cold",
    "happy",
    "sad",
    "calm",
    "loud",
    "fast",
    "slow",
]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)


def write_benchmarks(root: Path, n_train: int = 48, n_val: int = 16, seed: int = 0) -> Path:
    """sst2/rte/boolq/cb in their published formats (gzip), with learnable labels (sentiment words)."""
    rng = random.Random(seed)
    for _split, n, sst_name, sg_name in (
        ("train", n_train, "train.tsv.gz", "train.jsonl.gz"),
        ("val", n_val, "dev.tsv.gz", "val.jsonl.gz"),
    ):
        rows = []
        for i in range(n):
            label = i % 2
            text = _sentence(rng, rng.randint(3, 12)) + (" good" if label else " bad")
            rows.append((text, label))
        _gz(root / "sst2" / sst_name, "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
        rte = [
            {
                "premise": _sentence(rng, 8),
                "hypothesis": t,
                "label": ["not_entailment", "entailment"][y],
                "idx": i,
            }
            for i, (t, y) in enumerate(rows)
        ]
        _gz(root / "rte" / sg_name, "".join(json.dumps(r) + "\n" for r in rte))
        boolq = [
            {"question": t, "passage": _sentence(rng, 20), "label": bool(y), "idx": i}
            for i, (t, y) in enumerate(rows)
        ]
        _gz(root / "boolq" / sg_name, "".join(json.dumps(r) + "\n" for r in boolq))
        cb = [
            {
                "premise": _sentence(rng, 6),
                "hypothesis": t,
                "label": ["contradiction", "entailment", "neutral"][i % 3],
                "idx": i,
            }
            for i, (t, _) in enumerate(rows)
        ]
        _gz(root / "cb" / sg_name, "".join(json.dumps(r) + "\n" for r in cb))
    return root


@pytest.fixture
def one_thread():
    """One torch intra-op thread during the test, restored after: on a busy 2-core CPU, OpenMP spin-waiting makes
    tiny steps up to 100x slower. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def benchmark_dir(tmp_path_factory) -> Path:
    return write_benchmarks(tmp_path_factory.mktemp("benchmarks"))


def cli(
    module: str, *args: str, data_dir: Path, out: Path, cwd: Path, check: bool = True, env: dict | None = None
):
    """Run a console entry point (``deepprompt.train`` ...) in a subprocess on ``data_dir``, outputs under ``out``."""
    full_env = {
        **os.environ,
        "DEEPPROMPT_DATA_DIR": str(data_dir),
        "DEEPPROMPT_OUTPUT_DIR": str(out),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "TOKENIZERS_PARALLELISM": "false",
        **(env or {}),
    }
    full_env.pop("DEEPPROMPT_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


@pytest.fixture
def run_cli(benchmark_dir, tmp_path):
    """Run a console entry point (``deepprompt.train`` ...) in a subprocess, outputs under ``tmp_path``."""

    def run(module: str, *args: str, check: bool = True, env: dict | None = None, cwd: Path | None = None):
        return cli(
            module,
            *args,
            data_dir=benchmark_dir,
            out=tmp_path / "outputs",
            cwd=cwd or tmp_path,
            check=check,
            env=env,
        )

    return run


TINY_RUN = ("backbone=tiny", "debug=limit", "extras.print_config=false", "data=rte", "method.prompt.length=4")


@dataclass(frozen=True)
class TinyRun:
    """A finished ``deepprompt-train`` run: its folder and the finished process (stdout, stderr)."""

    run: Path
    proc: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def tiny_run(benchmark_dir, tmp_path_factory) -> TinyRun:
    """``deepprompt-train`` + ``TINY_RUN`` (2 epochs of 4 steps), trained once a session for the tests that read a
    finished run; tests that write into the run folder (eval, compress) take ``tiny_run_copy``."""
    root = tmp_path_factory.mktemp("tiny_run")
    proc = cli("deepprompt.train", *TINY_RUN, data_dir=benchmark_dir, out=root / "outputs", cwd=root)
    [run] = run_dirs(root / "outputs")
    return TinyRun(run, proc)


TINY_NER_RUN = (
    "backbone=tiny",
    "debug=limit",
    "extras.print_config=false",
    "data=conll2003",
    "method.prompt.length=4",
)


@pytest.fixture(scope="session")
def tiny_ner_run(tmp_path_factory) -> TinyRun:
    """``deepprompt-train`` + ``TINY_NER_RUN`` (2 epochs of the NER fixture files, ``write_task_benchmarks``),
    trained once a session: tests/tasks reads it, the predict and serve tests take a copy as their NER run."""
    from tests.tasks.conftest import write_task_benchmarks

    root = tmp_path_factory.mktemp("tiny_ner_run")
    data = write_task_benchmarks(root / "data")
    proc = cli("deepprompt.train", *TINY_NER_RUN, data_dir=data, out=root / "outputs", cwd=root)
    [run] = run_dirs(root / "outputs")
    return TinyRun(run, proc)


@pytest.fixture(scope="session")
def tiny_llama_runs(benchmark_dir, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """``deepprompt-train -m backbone=tiny_llama data=rte debug=limit method=lora,ptuning_v2`` (offline word-level
    tokenizer), once a session: the decoder-classification CLI tests read it, the predict tests take a copy of the
    ptuning_v2 job as their decoder classifier; {method: (run folder, the process's stdout)}."""
    from tests.tasks.generation.test_data_metrics import save_tokenizer

    root = tmp_path_factory.mktemp("tiny_llama")
    tok = save_tokenizer(root / "tok")
    proc = cli(
        "deepprompt.train", "-m", "backbone=tiny_llama", f"backbone.name_or_path={tok}", "data=rte",
        "debug=limit", "method=lora,ptuning_v2", "extras.print_config=false",
        data_dir=benchmark_dir, out=root / "outputs", cwd=root,
    )  # fmt: skip
    runs = {json.loads((d / "metrics.json").read_text())["method"]: d for d in run_dirs(root / "outputs")}
    assert sorted(runs) == ["lora", "ptuning_v2"], proc.stdout[-2000:]
    return {method: (run, proc.stdout) for method, run in runs.items()}


TINY_SWEEP = (
    "-m",
    "backbone=tiny",
    "debug=limit",
    "extras.print_config=false",
    "data=cb",
    "method.prompt.length=2,4",
    "extras.record_host=true",  # tiny_run records no host: between them, both sides of the switch
    "logger=wandb",  # offline (cli sets WANDB_MODE=offline): a W&B run per job; tiny_run keeps the CSV logger
)


@dataclass(frozen=True)
class TinySweep:
    """A finished ``deepprompt-train -m`` sweep: its job folders and the finished process (stdout, stderr)."""

    runs: list[Path]
    proc: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def tiny_sweep(benchmark_dir, tmp_path_factory) -> TinySweep:
    """``deepprompt-train`` + ``TINY_SWEEP`` (two jobs in one process, the host recorded, W&B offline), run once a
    session for the tests that read a finished sweep."""
    root = tmp_path_factory.mktemp("tiny_sweep")
    proc = cli("deepprompt.train", *TINY_SWEEP, data_dir=benchmark_dir, out=root / "outputs", cwd=root)
    return TinySweep(run_dirs(root / "outputs"), proc)


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    """A copy of ``tiny_run``'s folder under ``tmp_path``, for a test to write into."""
    copy = tmp_path / "tiny_run" / tiny_run.run.name  # not under outputs/: the test's own runs go there
    shutil.copytree(tiny_run.run, copy)
    return copy


def run_dirs(root: Path) -> list[Path]:
    """Every run folder (one holding metrics.json) below ``root``, sorted."""
    return sorted(p.parent for p in root.rglob("metrics.json"))
