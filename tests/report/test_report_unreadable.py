"""A run whose metrics.json cannot be read is a failure of the report, not a silent omission."""

from __future__ import annotations

import json

import yaml

from deepprompt.report import collect_runs
from deepprompt.report.cli import main


def _run(folder, summary_text: str, task="rte", seed=1):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(summary_text)
    (folder / ".hydra").mkdir()
    config = {
        "seed": seed,
        "data": {"task": task},
        "method": {"name": "ptuning_v2"},
        "backbone": {"name": "tiny"},
    }
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}", "method.lr=0.01"]))


def test_corrupt_metrics_json_is_listed_as_failed(tmp_path):
    sweep = tmp_path / "sweep"
    good = {
        "status": "finished",
        "task": "rte",
        "method": "ptuning_v2",
        "backbone": "tiny",
        "seed": 0,
        "monitor": "val/acc",
        "best": {"epoch": 0, "val/acc": 0.75},
        "last": {"epoch": 0, "val/acc": 0.75},
        "overrides": ["seed=0", "method.lr=0.01"],
        "wall_time_s": 1.0,
    }
    _run(sweep / "0", json.dumps(good), seed=0)
    _run(sweep / "1", '{"status": "finished", "best": {"val/ac', seed=1)  # cut short mid-write
    _run(sweep / "2", "[1, 2]", seed=2)

    runs = collect_runs([sweep])
    bad = runs[runs.status != "finished"].sort_values("run_dir")
    assert list(bad.status) == ["unreadable", "unreadable"]
    assert list(bad.seed) == [1, 2] and set(bad.task) == {"rte"} and set(bad.setting) == {"lr=0.01"}
    assert bad.error.iloc[0].startswith("unreadable metrics.json: ")

    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "- Runs: 3 (1 finished, 2 failed)" in md
    section = md.split("## Failed runs (2)", 1)[1]
    assert f"`{sweep / '1'}`" in section and f"`{sweep / '2'}`" in section
    assert "| rte | ptuning_v2 | tiny | lr=0.01 | 1 | 2 |" in md  # one seed done, two failed (backbone: tiny)
