"""The cyclic garbage collector around a job (``deepprompt.runs.startup``): paused for the start-up, the objects
of the first training step frozen, and nothing of an earlier job of the same process kept by a later job's freeze
(Lightning's trainer, the model and the data hold reference cycles)."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Iterator

import pytest

from deepprompt.runs import startup
from tests.runs.helpers import TINY, env_with_repo


class _Model:
    """An object only reachable through a reference cycle once dropped, like a job's trainer and model."""

    def __init__(self) -> None:
        self.self = self


@pytest.fixture
def collections(monkeypatch) -> Iterator[list[int]]:
    """A fresh process's collector state; the generations collected by ``gc.collect`` calls are recorded."""
    calls: list[int] = []
    collect = gc.collect

    def counted(generation: int = 2) -> int:
        calls.append(generation)
        return collect(generation)

    monkeypatch.setattr(startup, "_JOB_ENDED", False)
    monkeypatch.setattr(gc, "collect", counted)
    yield calls
    gc.unfreeze()
    gc.enable()


def _job(started: list) -> None:
    """One job's calls, as ``deepprompt-train`` makes them: hold at its start, release at its first training step
    (with its model alive), restore at its end."""
    startup.hold_collection()
    model = _Model()
    started.append(weakref.ref(model))
    startup.release_collection()
    assert gc.get_freeze_count() > 0 and gc.isenabled()
    del model
    startup.restore_collection()
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_a_later_job_collects_the_earlier_jobs_cycles_before_its_freeze(collections):
    models: list[weakref.ref] = []
    _job(models)
    assert collections == []  # the first job of a process: no full collection at its start-up
    startup.hold_collection()  # the next job of the process starts
    assert collections == [2]
    startup.release_collection()
    assert models[0]() is None, "the earlier job's model was frozen into the next job"


@pytest.mark.slow
def test_a_sweep_job_in_one_process_keeps_no_module_of_the_jobs_before(run_cli, tmp_path):
    """``deepprompt-train -m ... seed=1,2,3`` (Hydra's basic launcher: one process): at each job's first
    training step, the Lightning modules of the jobs before it are gone."""
    record = tmp_path / "earlier.jsonl"
    run_cli(
        "deepprompt.train",
        "-m",
        *TINY,
        "data=rte",
        "seed=1,2,3",
        "+trainer.max_steps=1",
        "+callbacks.earlier._target_=tests.runs.helpers.EarlierModulesAtFirstStep",
        f"+callbacks.earlier.path={record}",
        env=env_with_repo(),
    )
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert lines == [{"earlier": n, "alive": 0} for n in range(3)]
