"""experiments/lab/record_runs.py: a compact record of run folders names no machine path, names each run below
the given folder, and carries the GPU its train.log names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

LAB = Path(__file__).parents[1]
sys.path.insert(0, str(LAB))

import record_runs  # noqa: E402


def _run(folder: Path, overrides: list[str], config_paths: dict[str, str], log: str | None) -> None:
    folder.mkdir(parents=True)
    metrics = {
        "status": "finished",
        "task": "sst2",
        "method": "finetune",
        "seed": 1,
        "best": {"epoch": 0, "val/acc": 0.9},
        "last": {"epoch": 0, "val/acc": 0.9},
        "config": {"data": config_paths},
        "overrides": overrides,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if log is not None:
        (folder / "train.log").write_text(log)


def test_record_is_free_of_machine_paths_and_names_the_gpu(tmp_path):
    runs = tmp_path / "unpacked" / "queue_cls"
    _run(
        runs / "study" / "sst2_finetune_s1",
        ["backbone.name_or_path=/scratch/smollm2/hf", "method=finetune"],
        {"tokenizer": "../../../../hf", "data_dir": "../../../../srv/repo/.smoldata"},
        "You are using a CUDA device ('NVIDIA H200') that has Tensor Cores.\n",
    )
    _run(
        runs / "study" / "sst2_finetune_s2",
        ["backbone.name_or_path=/srv/repo/.device/minilm"],
        {"tokenizer": "../../../../../../srv/repo/.device/minilm", "data_dir": "/opt/x/.device/data"},
        None,
    )
    out = tmp_path / "repo" / "study" / "runs.jsonl"
    record_runs.record(runs, out)
    text = out.read_text()
    for machine in ("/srv", "/scratch", "/opt"):
        assert machine not in text
    lines = {line["run"]: line for line in map(json.loads, text.splitlines())}
    first, second = lines["runs/study/sst2_finetune_s1"], lines["runs/study/sst2_finetune_s2"]
    assert first["gpu"] == "NVIDIA H200" and "gpu" not in second
    assert first["overrides"][0] == "backbone.name_or_path=$TMPDIR/smollm2/hf"
    assert first["config"]["data"] == {"tokenizer": "../../../../hf", "data_dir": ".smoldata"}
    assert second["overrides"] == ["backbone.name_or_path=.device/minilm"]
    assert second["config"]["data"] == {"tokenizer": ".device/minilm", "data_dir": ".device/data"}


def test_a_path_it_cannot_place_stops_the_record(tmp_path, monkeypatch):
    monkeypatch.setattr(record_runs, "MACHINE_ROOTS", ("srv",))
    runs = tmp_path / "runs"
    _run(runs / "a", ["data.cache=/srv/me/cache"], {}, None)
    out = tmp_path / "runs.jsonl"
    with pytest.raises(SystemExit, match="machine paths"):
        record_runs.record(runs, out)
    assert not out.exists()
