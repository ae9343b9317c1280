"""The start-up breakdown (``deepprompt.runs.startup``): Lightning's sanity check is a phase of its own, ``sanity``,
when one ran; ``loop`` is the rest of the fit's set-up; the phases add up to the total."""

from __future__ import annotations

import json
import re

import pytest

from deepprompt.runs.startup import StartupClock
from tests.conftest import TINY_RUN, run_dirs


def at(clock: StartupClock, seconds: float) -> StartupClock:
    clock.now = lambda: seconds  # the clock's reading, seconds since its start
    return clock


def training_clock(sanity: tuple[float, float] | None) -> StartupClock:
    """The marks of a training run (config 1, imports 4, data 5, first step 31), with a sanity check from
    ``sanity[0]`` to ``sanity[1]`` seconds."""
    clock = StartupClock(started=0.0)
    for name, seconds in (("config", 1.0), ("imports", 4.0), ("data", 5.0)):
        at(clock, seconds).mark(name)
    if sanity:
        at(clock, sanity[0]).begin("sanity")
        at(clock, sanity[1]).end("sanity")
    at(clock, 31.0).mark("loop")
    return clock


def test_the_sanity_check_is_taken_out_of_the_loop_phase():
    clock = training_clock(sanity=(5.5, 30.0))
    assert clock.phases() == {
        "config": 1.0,
        "imports": 3.0,
        "data": 1.0,
        "sanity": 24.5,
        "loop": 1.5,  # 0.5 s before the sanity check, 1.0 s after it
    }
    assert clock.total == 31.0 == sum(clock.phases().values())
    assert clock.line().endswith("(config 1.0 s, imports 3.0 s, data 1.0 s, sanity 24.5 s, loop 1.5 s)")
    summary = clock.summary()
    assert summary["startup_s"] == 31.0 and summary["startup_phases_s"]["sanity"] == 24.5


def test_no_sanity_phase_without_a_sanity_check():
    clock = training_clock(sanity=None)
    assert clock.phases() == {"config": 1.0, "imports": 3.0, "data": 1.0, "loop": 26.0}
    assert "sanity" not in clock.line()


def test_a_sanity_check_that_did_not_end_is_left_in_the_loop_phase():
    clock = training_clock(sanity=None)
    at(clock, 31.5).begin("sanity")
    at(clock, 32.0).end("sanity")  # after the last mark
    at(clock, 40.0).begin("other")  # never ended
    assert clock.phases() == {"config": 1.0, "imports": 3.0, "data": 1.0, "loop": 26.0}


def test_the_first_sanity_check_of_a_job_counts_and_a_new_job_starts_without_one():
    clock = training_clock(sanity=(5.5, 30.0))
    at(clock, 40.0).begin("sanity")
    at(clock, 45.0).end("sanity")
    assert clock.phases()["sanity"] == 24.5
    clock.start_job()  # the process's first job: keeps its clock
    clock.start_job()  # a later job of the same process counts from its own start, with no marks or spans
    assert clock.marks == {} and clock.spans == {} and clock.phases() == {}


def start_up(run) -> tuple[dict, str]:
    """A finished run's ``metrics.json`` start-up record and the ``start-up:`` line of its log."""
    summary = json.loads((run / "metrics.json").read_text())
    [line] = [line for line in (run / "train.log").read_text().splitlines() if "start-up: " in line]
    return summary, line


def test_a_run_records_its_sanity_check_as_a_phase(tiny_run):
    # deepprompt-train backbone=tiny debug=limit data=rte method.prompt.length=4: two sanity validation batches
    summary, line = start_up(tiny_run.run)
    phases = summary["startup_phases_s"]
    assert list(phases)[-3:] == ["data", "sanity", "loop"]
    assert phases["sanity"] > 0 and phases["loop"] >= 0
    assert summary["startup_s"] == pytest.approx(sum(phases.values()), abs=0.01)
    assert re.search(r", data \d+\.\d s, sanity \d+\.\d s, loop \d+\.\d s\)$", line), line


def test_a_run_without_a_sanity_check_records_none(run_cli, tmp_path):
    run_cli("deepprompt.train", *TINY_RUN, "trainer.num_sanity_val_steps=0")
    [run] = run_dirs(tmp_path / "outputs")
    summary, line = start_up(run)
    phases = summary["startup_phases_s"]
    assert "sanity" not in phases and list(phases)[-2:] == ["data", "loop"]
    assert summary["startup_s"] == pytest.approx(sum(phases.values()), abs=0.01)
    assert "sanity" not in line and re.search(r", data \d+\.\d s, loop \d+\.\d s\)$", line), line
