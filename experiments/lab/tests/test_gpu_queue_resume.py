"""The GPU job queue across short calls (experiments/lab/gpu_queue.py): a second call on the same --root skips the
jobs whose metrics.json says finished and starts over the one stopped at the budget; a fresh root (a machine lost)
skips the jobs a --skip-done list names; a job that fails on its own is tried MAX_TRIES times, then given up."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_gpu_queue import _load


@pytest.fixture
def lab(monkeypatch, tmp_path):
    plans = _load("gpu_plans")
    queue = _load("gpu_queue")
    jobs = [plans.Job(f"job{i}", "g", [f"seed={i}"], steps=10, priority=i) for i in range(4)]
    monkeypatch.setitem(queue.PLANS, "four", lambda: list(jobs))
    launched: list[str] = []
    behaviour: dict[str, str] = {}  # job name -> "finish" (default), "fail", "hang"

    def fake_launch(self, ready):  # a real process that writes what deepprompt.train would
        launched.append(ready.key)
        run_dir = self.run_dir(ready)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "stale").write_text("")  # what an earlier attempt would leave
        what = behaviour.get(ready.name, "finish")
        code = {
            "finish": f"open({str(run_dir / 'metrics.json')!r}, 'w').write('{{\"status\": \"finished\"}}')",
            "fail": "raise SystemExit(1)",
            "hang": "import time; time.sleep(60)",
        }[what]
        proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        self.running.append(queue.Running(ready, proc, time.time(), tmp_path / "log"))

    monkeypatch.setattr(queue.Queue, "launch", fake_launch)
    return queue, launched, behaviour


def _jobs(root: Path) -> dict:
    return json.loads((root / "queue.json").read_text())


def test_a_second_call_skips_finished_jobs_and_restarts_the_stopped_one(lab, tmp_path):
    queue, launched, behaviour = lab
    root = tmp_path / "warm" / "queue"
    behaviour["job1"] = "hang"  # still running when the first call's budget ends
    queue.main(
        ["--plan", "four", "--budget", "4", "--parallel", "2", "--startup-s", "0", "--root", str(root)]
    )
    first = _jobs(root)
    assert first["jobs"]["g/job0"]["rc"] == 0
    assert first["jobs"]["g/job1"]["rc"] == "stopped at the budget"
    assert first["left"] == sum(1 for d in first["jobs"].values() if d["rc"] != 0) >= 1

    (root / "g" / "job1" / "metrics.csv").write_text("epoch\n0\n")  # the stopped attempt's partial log
    launched.clear()
    behaviour.clear()
    queue.main(
        ["--plan", "four", "--budget", "30", "--parallel", "2", "--startup-s", "0", "--root", str(root)]
    )
    assert "g/job0" not in launched and "g/job1" in launched
    assert _jobs(root)["jobs"]["g/job0"]["earlier_call"] is True and _jobs(root)["left"] == 0
    assert not (root / "g" / "job1" / "metrics.csv").exists()  # started over in a clean folder
    for name in ("job0", "job1", "job2", "job3"):
        assert json.loads((root / "g" / name / "metrics.json").read_text())["status"] == "finished"


def test_a_fresh_machine_skips_what_the_done_list_names(lab, tmp_path):
    queue, launched, _ = lab
    done = tmp_path / "done.txt"
    done.write_text("# finished on a machine since lost\ng/job0\n\ng/job2  # CB\nother/job3\n")
    root = tmp_path / "fresh" / "queue"
    queue.main(["--plan", "four", "--budget", "30", "--skip-done", str(done), "--root", str(root)])
    assert sorted(launched) == ["g/job1", "g/job3"]  # other/job3 is another group's job3
    jobs = _jobs(root)["jobs"]
    assert jobs["g/job0"] == {"rc": 0, "seconds": 0, "earlier_call": True, "from": "done list"}


def test_in_order_holds_back_later_jobs_behind_one_that_does_not_fit(lab, tmp_path, monkeypatch):
    queue, launched, _ = lab
    plans = sys.modules["gpu_plans"]
    jobs = [
        plans.Job("e2e", "gen", [], steps=1000, priority=0),
        plans.Job("webnlg", "gen", [], steps=10, priority=1),
    ]
    monkeypatch.setitem(queue.PLANS, "gen", lambda: list(jobs))
    args = ["--plan", "gen", "--budget", "20", "--steps-per-s", "10", "--startup-s", "0"]
    queue.main([*args, "--in-order", "--root", str(tmp_path / "a")])
    assert launched == []
    assert _jobs(tmp_path / "a")["next"] == {"job": "gen/e2e", "estimate_s": 100}  # what a call must leave it
    queue.main([*args, "--root", str(tmp_path / "b")])
    assert launched == ["gen/webnlg"]


def test_a_job_failing_on_its_own_is_given_up_after_max_tries(lab, tmp_path):
    queue, launched, behaviour = lab
    behaviour["job3"] = "fail"
    root = tmp_path / "queue"
    args = ["--plan", "four", "--budget", "30", "--startup-s", "0", "--root", str(root)]
    for _ in range(queue.MAX_TRIES):
        queue.main(args)
    assert launched.count("g/job3") == queue.MAX_TRIES
    launched.clear()
    queue.main(args)
    assert launched == []
    summary = _jobs(root)
    assert summary["jobs"]["g/job3"]["rc"].startswith("given up") and summary["left"] == 0


def test_a_job_that_ran_out_of_gpu_memory_goes_back_in_the_queue_uncounted(lab, tmp_path, monkeypatch):
    """An OutOfMemoryError in the log is the neighbours' doing: the job runs again, its failures stay at 0."""
    queue, launched, behaviour = lab
    tries = {"n": 0}
    real = queue.Queue.launch

    def launch_oom_once(self, ready):
        if ready.name == "job2" and tries["n"] == 0:
            tries["n"] += 1
            log = tmp_path / "oom.log"
            log.write_text("deepprompt: error: OutOfMemoryError: CUDA out of memory.\n")
            proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"], start_new_session=True)
            self.running.append(queue.Running(ready, proc, time.time(), log))
            launched.append(ready.key)
            return
        real(self, ready)

    monkeypatch.setattr(queue.Queue, "launch", launch_oom_once)
    root = tmp_path / "queue"
    queue.main(
        ["--plan", "four", "--budget", "30", "--startup-s", "0", "--parallel", "1", "--root", str(root)]
    )
    assert launched.count("g/job2") == 2
    summary = _jobs(root)
    assert summary["jobs"]["g/job2"]["rc"] == 0 and summary["left"] == 0
    assert not (root / "failures.json").exists() or "g/job2" not in json.loads(
        (root / "failures.json").read_text()
    )


def test_min_free_gib_holds_starts_while_the_gpu_is_full(lab, tmp_path, monkeypatch):
    queue, launched, _ = lab
    asked: list[float] = []

    def free_gib():  # full for the first two looks, then room
        asked.append(1.0 if len(asked) < 2 else 30.0)
        return asked[-1]

    monkeypatch.setattr(queue, "free_gib", free_gib)
    real, first = queue.Queue.launch, []

    def launch(self, ready):
        first.append(len(asked))
        real(self, ready)

    monkeypatch.setattr(queue.Queue, "launch", launch)
    root = tmp_path / "queue"
    args = [
        "--plan",
        "four",
        "--budget",
        "30",
        "--startup-s",
        "0",
        "--root",
        str(root),
        "--min-free-gib",
        "10",
    ]
    queue.main(args)
    assert launched == [f"g/job{i}" for i in range(4)]  # all ran, once the memory was there
    assert first[0] == 3  # not before the GPU had room
