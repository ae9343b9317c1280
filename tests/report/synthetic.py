"""A synthetic tree of metrics.json files, with scores from a formula the tests can recompute."""

from __future__ import annotations

import json
import math
from pathlib import Path

TASKS = ("rte", "cb")
METHODS = ("ptuning_v2", "prompt_tuning")
SEEDS = (1, 2, 3)
LENGTHS = (4, 8, 16)
DEPTHS = ("top-1", "top-2", "bottom-1", "bottom-2")
BASE = {"rte": 0.60, "cb": 0.80}
METHOD_BONUS = {"ptuning_v2": 0.05, "prompt_tuning": 0.0}
SEED_NOISE = {1: -0.01, 2: 0.0, 3: 0.025}
DEPTH_SCORE = {"top-1": 0.02, "top-2": 0.03, "bottom-1": -0.05, "bottom-2": -0.04}
BACKBONE_PARAMS = 22_713_216
TITLE = "Synthetic"  # the report title the CLI and notebook tests both use
NOISE_OVERRIDES = ["backbone=minilm", "debug=limit", "extras.print_config=false"]


def score(
    task: str, method: str, seed: int, length: int = 16, layers: str = "all", reparam: str = "none"
) -> float:
    """Best-epoch val/acc of a synthetic run; the last epoch is 0.02 lower."""
    value = BASE[task] + METHOD_BONUS[method] + 0.01 * math.log2(length) + SEED_NOISE[seed]
    value += DEPTH_SCORE.get(layers, 0.0) + (0.015 if reparam == "mlp" else 0.0)
    return round(value, 6)


def trainable(length: int, layers: str = "all") -> int:
    depth = 6 if layers == "all" else int(layers.split("-")[1])
    return length * depth * 2 * 384 + 770


def _write(run_dir: Path, summary: dict, overrides_in_metrics: bool = True) -> None:
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in summary["overrides"]))
    if not overrides_in_metrics:
        summary = {k: v for k, v in summary.items() if k != "overrides"}
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=1))


def finished(task, method, seed, overrides, length=16, layers="all", reparam="none", job_num=0) -> dict:
    best = score(task, method, seed, length, layers, reparam)
    n = trainable(length, layers)
    return {
        "host": "node-a",
        "status": "finished",
        "task": task,
        "method": method,
        "backbone": "minilm",
        "seed": seed,
        "monitor": "val/acc",
        "best": {"epoch": 3, "step": 312, "val/acc": best, "val/loss": 0.6},
        "last": {"epoch": 9, "step": 780, "val/acc": round(best - 0.02, 6), "val/loss": 0.7},
        "history": [],
        "params": {
            "trainable": n,
            "backbone": BACKBONE_PARAMS,
            "total": n + BACKBONE_PARAMS,
            "trainable_share": n / BACKBONE_PARAMS,
        },
        "epochs": 10,
        "steps": 780,
        "wall_time_s": 100.0,
        "config": {
            "method": {
                "name": method,
                "lr": 0.01,
                "prompt": {"length": length, "layers": layers, "reparam": reparam, "reparam_hidden": 512},
            },
            "data": {"task": task, "batch_size": 32, "max_seq_length": 128},
            "optim": {"weight_decay": 0.0},
            "max_epochs": 10,
        },
        "overrides": overrides,
        "job_num": job_num,
    }


def write_tree(root: Path) -> Path:
    """root/lengths/<job>: tasks x methods x lengths x seeds; root/depth/<job>: rte, ptuning_v2, top/bottom-k;
    root/reparam/<job>: both tasks, mlp; root/failed/0: one failed job (overrides only in overrides.yaml)."""
    job = 0
    for task in TASKS:
        for method in METHODS:
            for length in LENGTHS:
                for seed in SEEDS:
                    overrides = [
                        *NOISE_OVERRIDES,
                        f"data={task}",
                        f"method={method}",
                        f"method.prompt.length={length}",
                        f"seed={seed}",
                    ]
                    summary = finished(task, method, seed, overrides, length=length, job_num=job)
                    _write(root / "lengths" / str(job), summary, overrides_in_metrics=job % 2 == 0)
                    job += 1
    for job, (layers, seed) in enumerate((d, s) for d in DEPTHS for s in SEEDS):
        overrides = [*NOISE_OVERRIDES, "data=rte", f"method.prompt.layers={layers}", f"seed={seed}"]
        _write(
            root / "depth" / str(job),
            finished("rte", "ptuning_v2", seed, overrides, layers=layers, job_num=job),
        )
    for job, (task, seed) in enumerate((t, s) for t in TASKS for s in SEEDS):
        overrides = [*NOISE_OVERRIDES, f"data={task}", "method.prompt.reparam=mlp", f"seed={seed}"]
        _write(
            root / "reparam" / str(job),
            finished(task, "ptuning_v2", seed, overrides, reparam="mlp", job_num=job),
        )
    overrides = [*NOISE_OVERRIDES, "data=rte", "method.prompt.layers=[5]", "seed=1"]
    failed = {
        "host": "node-b",
        "status": "failed",
        "error": "ConfigError: prompt layer 5 out of range for a 2-layer backbone\nmore detail",
        "traceback": "Traceback (most recent call last):\n  ...",
        "wall_time_s": 1.5,
        "task": "rte",
        "method": "ptuning_v2",
        "backbone": "minilm",
        "seed": 1,
        "overrides": overrides,
        "job_num": 0,
    }
    _write(root / "failed" / "0", failed, overrides_in_metrics=False)
    return root
