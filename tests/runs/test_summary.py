"""metrics.json names no machine: paths relative to the run folder, the host only with extras.record_host=true."""

from __future__ import annotations

import json
import platform

from deepprompt.runs.summary import write_summary


def test_absolute_paths_are_written_relative_to_the_run_folder(tmp_path):
    run = tmp_path / "sweep" / "3"
    run.mkdir(parents=True)
    summary = {
        "status": "finished",
        "run_dir": str(run),
        "sweep_dir": str(tmp_path / "sweep"),
        "config": {"data": {"data_dir": str(tmp_path / "data"), "task": "rte"}},
        "files": [str(run / "checkpoints" / "best.ckpt")],
        "overrides": ["data.data_dir=/somewhere/data"],  # what the user typed stays as typed
        "error": "OSError: /somewhere/else missing",
    }
    written = json.loads(write_summary(run, summary).read_text())
    assert written["run_dir"] == "."
    assert written["sweep_dir"] == ".."
    assert written["config"]["data"]["data_dir"] == "../../data"
    assert written["files"] == ["checkpoints/best.ckpt"]
    assert written["overrides"] == summary["overrides"] and written["error"] == summary["error"]
    assert "host" not in written


def test_host_only_when_asked(tmp_path):
    written = json.loads(write_summary(tmp_path, {"status": "finished"}, record_host=True).read_text())
    assert written["host"] == platform.node()


def test_train_writes_no_host_and_no_absolute_path_by_default(tiny_run, tmp_path_factory):
    # deepprompt-train backbone=tiny debug=limit data=rte method.prompt.length=4, no extras.record_host
    text = (tiny_run.run / "metrics.json").read_text()
    summary = json.loads(text)
    assert summary["status"] == "finished" and "host" not in summary
    assert summary["run_dir"] == "."
    # the base of every test folder: holds the run folder and the data folder alike
    assert str(tmp_path_factory.getbasetemp()) not in text


def test_train_records_the_host_with_record_host(tiny_sweep):
    # deepprompt-train -m backbone=tiny debug=limit data=cb method.prompt.length=2,4 extras.record_host=true
    for run in tiny_sweep.runs:
        assert json.loads((run / "metrics.json").read_text())["host"] == platform.node()
