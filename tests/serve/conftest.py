import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from deepprompt.serve.loadtest import free_port, wait_ready
from tests.predict.conftest import fixture_data_dir, runs_root, trained  # noqa: F401  (the same tiny runs)
from tests.predict.helpers import env


@pytest.fixture(scope="session")
def serve_runs(trained):  # noqa: F811
    """The served tasks' tiny runs, trained side by side (each a `deepprompt-train` subprocess whose start-up
    dominates; runs the predict tests trained already are reused)."""
    data = {"rte": "data=rte", "sst2": "data=sst2", "ner": "data=conll2003", "cb": "data=cb"}
    with ThreadPoolExecutor(len(data)) as pool:
        futures = {task: pool.submit(trained, task, option) for task, option in data.items()}
        return {task: future.result() for task, future in futures.items()}


@pytest.fixture(scope="module")
def registry(serve_runs):
    """RTE and SST-2 loaded into one CPU registry on their shared tiny backbone (one per test module)."""
    from deepprompt.runs.restore import load_run_config
    from deepprompt.serve.registry import TaskRegistry

    reg = TaskRegistry(load_run_config(serve_runs["rte"]).backbone, "cpu", "float32", seed=42)
    for name in ("rte", "sst2"):
        reg.load(name, serve_runs[name])
    return reg


@pytest.fixture(scope="package")
def server(serve_runs, runs_root):  # noqa: F811
    """`deepprompt-serve` with the RTE, SST-2 and NER runs, a real process on a free port: its URL. One process for
    tests/serve (test_serve_http and test_serve_load); a test that adds a task removes it again."""
    port = free_port()
    prompts = ", ".join(f"{t}: {serve_runs[t]}" for t in ("rte", "sst2", "ner"))
    log = open(runs_root / f"serve_{port}.log", "w")  # noqa: SIM115  (the server writes it until the end)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deepprompt.serve.cli",
            f"prompts={{{prompts}}}",
            "backbone=tiny",
            f"port={port}",
            "batching.max_wait_ms=200",
            "log_level=warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env(runs_root / "data"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, timeout=300)
    except RuntimeError as err:
        proc.kill()
        raise AssertionError((runs_root / f"serve_{port}.log").read_text()[-4000:]) from err
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
