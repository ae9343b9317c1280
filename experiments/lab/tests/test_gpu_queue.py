"""The GPU job queue (experiments/scripts/gpu_queue.py): a run finished in an earlier call is skipped, and only
that run: a job of the same name in another group still runs (plan next2's knobs_compress jobs were once
skipped because the knobs group had finished runs of the same names)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def _finished(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"status": "finished", "best": {"val/acc": 0.5}}))


def test_a_finished_run_skips_only_its_own_group(tmp_path, monkeypatch):
    plans = _load("gpu_plans")
    queue = _load("gpu_queue")
    job = plans.Job("rte_uniform_s1", "knobs", ["data=rte"], steps=10, priority=1)
    twin = plans.Job("rte_uniform_s1", "knobs_compress", ["data=rte"], steps=10, priority=0)
    monkeypatch.setitem(queue.PLANS, "twins", lambda: [twin, job])
    prior = tmp_path / "prior"
    _finished(prior / "knobs" / "rte_uniform_s1")

    launched = []

    def fake_launch(self, ready):  # a trivial process instead of deepprompt.train
        launched.append(ready.key)
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        self.running.append(queue.Running(ready, proc, 0.0, tmp_path / "log"))

    monkeypatch.setattr(queue.Queue, "launch", fake_launch)
    root = tmp_path / "queue"
    queue.main(["--plan", "twins", "--budget", "60", "--prior", str(prior), "--root", str(root)])

    assert launched == ["knobs_compress/rte_uniform_s1"]
    jobs = json.loads((root / "queue.json").read_text())["jobs"]
    assert jobs["knobs/rte_uniform_s1"]["earlier_call"] is True
    assert jobs["knobs_compress/rte_uniform_s1"]["rc"] == 0
