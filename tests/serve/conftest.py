from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.predict.conftest import fixture_data_dir, runs_root, trained  # noqa: F401  (the same tiny runs)


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
