"""Joint multi-task training: task sampling, the module's per-row prompts and heads, per-task exports, the CLI."""

from __future__ import annotations

import json
import math
from collections import Counter

import lightning as L
import pytest
import torch

from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import ConfigError
from deepprompt.eval import evaluate
from deepprompt.prompts import load_prompts
from deepprompt.report.collect import collect_runs
from deepprompt.runs.build import build_data_and_module
from deepprompt.tasks.multitask.data import MultiTaskSampler, task_probabilities
from tests.conftest import run_dirs
from tests.sweeps import REPO, compose_cfg

register_resolvers()
TINY = ("backbone=tiny", "debug=limit", "extras.print_config=false")


# -- sampling -----------------------------------------------------------------------------------------------
def test_task_probabilities_on_known_sizes():
    sizes = [100, 400, 1600]
    assert task_probabilities(sizes, "proportional") == pytest.approx([1 / 21, 4 / 21, 16 / 21])
    # T = 2: p ∝ sqrt(n) = 10, 20, 40
    assert task_probabilities(sizes, "temperature", 2.0) == pytest.approx([1 / 7, 2 / 7, 4 / 7])
    assert task_probabilities(sizes, "temperature", 1.0) == pytest.approx(task_probabilities(sizes))
    assert task_probabilities(sizes, "temperature", 1e9) == pytest.approx([1 / 3] * 3, abs=1e-6)
    assert task_probabilities(sizes, "uniform") == pytest.approx([1 / 3] * 3)
    # RTE / CB / BoolQ train sizes at T = 2 (the knob_multitask experiment)
    p = task_probabilities([2490, 250, 9427], "temperature", 2.0)
    assert [round(x, 3) for x in p] == [0.307, 0.097, 0.596]
    assert task_probabilities([10**6, 1], "temperature", 0.01)[1] == 0.0  # no overflow at small T
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        task_probabilities(sizes, "temperature", 0.0)
    with pytest.raises(ConfigError, match="sampling must be one of"):
        task_probabilities(sizes, "balanced")


def _tasks_of(sampler: MultiTaskSampler, batches: list[list[int]]) -> list[list[int]]:
    return [
        [next(t for t in reversed(range(len(sampler.offsets))) if i >= sampler.offsets[t]) for i in b]
        for b in batches
    ]


@pytest.mark.parametrize("mode", ["mixed", "homogeneous"])
def test_sampler_draws_tasks_with_their_probabilities(mode):
    sizes = [30, 120]
    p = task_probabilities(sizes, "temperature", 2.0)  # sqrt: 1/3, 2/3
    sampler = MultiTaskSampler(sizes, batch_size=8, probabilities=p, num_batches=600, batch_mode=mode, seed=3)
    batches = sampler.batches()
    assert len(batches) == 600 and all(len(b) == 8 for b in batches)
    tasks = _tasks_of(sampler, batches)
    share = Counter(t for row in tasks for t in row)[0] / (600 * 8)
    assert share == pytest.approx(1 / 3, abs=0.04)
    if mode == "homogeneous":
        assert all(len(set(row)) == 1 for row in tasks)
    else:
        assert sum(len(set(row)) > 1 for row in tasks) > 500
    # each task walks through all its examples before any repeats
    stream0 = [i for b in batches for i in b if i < 30]
    assert sorted(stream0[:30]) == list(range(30))
    assert sorted(stream0[30:60]) == list(range(30))
    # the order depends only on (seed, epoch); the flat order is the batches'
    assert list(sampler) == [i for b in batches for i in b]
    sampler.set_epoch(1)
    assert sampler.batches() != batches
    sampler.set_epoch(0)
    assert sampler.batches() == batches


def test_sampler_shards_whole_batches_across_ranks():
    kwargs = dict(sizes=[5, 7], batch_size=4, probabilities=[0.5, 0.5], num_batches=9, seed=1)
    full = MultiTaskSampler(**kwargs, num_replicas=1, rank=0).batches()
    ranks = [list(MultiTaskSampler(**kwargs, num_replicas=2, rank=r)) for r in (0, 1)]
    assert ranks[0] == [i for b in full[0:8:2] for i in b]
    assert ranks[1] == [i for b in full[1:8:2] for i in b]


# -- the module: mixed batches, per-task heads, per-task export -----------------------------------------------
def _build(overrides, monkeypatch, benchmark_dir):
    monkeypatch.setenv("DEEPPROMPT_DATA_DIR", str(benchmark_dir))
    cfg = compose_cfg([*TINY, *overrides])
    L.seed_everything(cfg.seed)
    datamodule, module = build_data_and_module(cfg)
    datamodule.setup("fit")
    return datamodule, module.eval()


def test_mixed_batch_rows_equal_each_task_alone_and_the_exports(monkeypatch, benchmark_dir, tmp_path):
    datamodule, multi = _build(
        ["data=multitask", "data.tasks=[rte,cb,sst2]", "method.prompt.length=4"], monkeypatch, benchmark_dir
    )
    for encoder in multi.encoder.encoders.values():  # trained-looking prompts: distinct per task
        torch.nn.init.normal_(encoder.prefix, std=0.5)
    batch = next(iter(datamodule.train_dataloader()))
    assert len(set(batch["task_ids"].tolist())) == 3, "a mixed batch"
    with torch.no_grad():
        mixed = multi(batch)
        for task, (rows, logits) in mixed.items():
            alone_batch = {k: v[rows] for k, v in batch.items()}
            [(same_rows, alone)] = multi(alone_batch).values()
            assert torch.equal(same_rows, torch.arange(len(rows)))
            assert (alone - logits).abs().max() < 1e-5, task
        # rows really depend on their task's prompts
        swapped = {**batch, "task_ids": torch.zeros_like(batch["task_ids"])}
        [(_, as_rte)] = multi(swapped).values()
        rows, cb_logits = mixed["cb"]
        assert (as_rte[rows, :2] - cb_logits[:, :2]).abs().max() > 1e-3

    multi.export_prompts(tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["cb", "rte", "sst2"]
    for task in ("rte", "cb"):
        _, single = _build([f"data={task}", "method.prompt.length=4"], monkeypatch, benchmark_dir)
        single.encoder.model.load_state_dict(multi.encoder.model.state_dict())  # the same frozen backbone
        _, extra = load_prompts(single.encoder, tmp_path / "export" / task)
        single.classifier.load_state_dict({k.removeprefix("classifier."): v for k, v in extra.items()})
        rows, logits = mixed[task]
        with torch.no_grad():
            alone = single({k: v[rows] for k, v in batch.items() if k != "task_ids"})
        assert (alone - logits).abs().max() < 1e-5, task


def test_loss_is_the_row_mean_of_each_tasks_cross_entropy(monkeypatch, benchmark_dir):
    datamodule, multi = _build(["data=multitask", "data.tasks=[rte,cb]"], monkeypatch, benchmark_dir)
    batch = next(iter(datamodule.train_dataloader()))
    with torch.no_grad():
        per_row = torch.zeros(len(batch["labels"]))
        for rows, logits in multi(batch).values():
            per_row[rows] = torch.nn.functional.cross_entropy(logits, batch["labels"][rows], reduction="none")
        assert multi.loss(batch).item() == pytest.approx(per_row.mean().item(), rel=1e-5)
    multi.train()
    multi.loss(batch).backward()
    assert all(p.grad is None for p in multi.encoder.model.parameters())
    present = {multi.tasks[t] for t in batch["task_ids"].tolist()}
    for task in present:
        assert multi.encoder.encoders[task].prefix.grad is not None
        assert multi.heads[task].weight.grad is not None


def test_unsupported_methods_fail_clearly(monkeypatch, benchmark_dir):
    with pytest.raises(ConfigError, match="method=lora is not supported"):
        _build(["data=multitask", "method=lora"], monkeypatch, benchmark_dir)
    with pytest.raises(ConfigError, match="unknown task 'imdb'"):
        _build(["data=multitask", "data.tasks=[rte,imdb]"], monkeypatch, benchmark_dir)


# -- the experiment config and the CLI -------------------------------------------------------------------------
def test_knob_multitask_experiment_composes():
    cfg = compose_cfg(["experiment=knob_multitask"])
    assert list(cfg.data.tasks) == ["rte", "cb", "boolq"]
    assert cfg.backbone.name == "minilm" and cfg.method.name == "ptuning_v2" and cfg.monitor == "val/acc"
    assert cfg.data.sampling == "temperature" and cfg.data.batch_mode == "mixed"
    header = (REPO / "conf" / "experiment" / "knob_multitask.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_"
    assert any("deepprompt-train experiment=knob_multitask" in line for line in header)


def test_joint_training_writes_per_task_metrics_exports_and_report_rows(
    run_cli, tmp_path, tiny_run_copy, one_thread
):
    run_cli(
        "deepprompt.train",
        "experiment=knob_multitask",
        *TINY,
        "data.tasks=[rte,cb]",
        "method.prompt.length=4",
    )
    [run] = run_dirs(tmp_path / "outputs")
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "finished"
    assert summary["task"] == "rte+cb" and summary["tasks"] == ["rte", "cb"]
    mt = summary["multitask"]
    assert mt["train_sizes"] == {"rte": 48, "cb": 48} and mt["steps_per_epoch"] == math.ceil(96 / 8)
    assert mt["probabilities"] == pytest.approx({"rte": 0.5, "cb": 0.5})
    for entry in summary["history"]:
        assert {"val/rte/acc", "val/rte/loss", "val/cb/acc", "val/cb/f1_macro", "val/acc"} <= set(entry)
        assert entry["val/acc"] == pytest.approx((entry["val/rte/acc"] + entry["val/cb/acc"]) / 2)
    for task in ("rte", "cb"):
        result = summary["per_task"][task]
        assert result["monitor"] == f"val/{task}/acc"
        assert result["best"]["val/acc"] == max(h[f"val/{task}/acc"] for h in summary["history"])
        assert result["last"]["val/acc"] == summary["history"][-1][f"val/{task}/acc"]
        for which in ("best", "last"):
            assert (run / "prompts" / which / task / "prompts.safetensors").is_file()
    assert "val/cb/f1_macro" not in summary["per_task"]["rte"]["best"]
    assert "val/f1_macro" in summary["per_task"]["cb"]["best"]
    params = summary["params"]
    assert (
        params["per_task"]["rte"]["trainable"] + params["per_task"]["cb"]["trainable"] == params["trainable"]
    )
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert set(ckpt["state_dict"]) == {
        "encoder.encoders.rte.prefix",
        "encoder.encoders.cb.prefix",
        "heads.rte.weight",
        "heads.rte.bias",
        "heads.cb.weight",
        "heads.cb.bias",
    }

    runs = collect_runs([tmp_path / "outputs"])
    assert sorted(runs["task"]) == ["cb", "rte", "rte+cb"]
    rte = runs[runs["task"] == "rte"].iloc[0]
    assert rte["setting"].endswith("joint=rte+cb") and rte["joint"] == "rte+cb"
    assert rte["best_val/acc"] == summary["per_task"]["rte"]["best"]["val/acc"]
    assert rte["trainable"] == params["per_task"]["rte"]["trainable"]

    # deepprompt-eval's evaluate (in this process) on the joint run's checkpoint reproduces its best average, with
    # each task's metrics among those the command prints
    metrics = evaluate(run, "best")
    assert {"val/rte/acc", "val/cb/acc", "val/cb/f1_macro"} <= set(metrics)
    evaluated = json.loads((run / "eval_best.json").read_text())
    assert evaluated["val/acc"] == pytest.approx(summary["best"]["val/acc"], abs=1e-6)

    # the joint run's RTE export, evaluated (deepprompt-eval's evaluate, in this process) inside a single-task RTE
    # run of another seed: the joint run's RTE scores. The run: tiny_run (data=rte method.prompt.length=4), its
    # seed set to 11 as if it had trained with seed=11 (evaluation rebuilds the model from the run's config)
    single = tiny_run_copy
    export = run / "prompts" / "best" / "rte"
    evaluate(single, str(export), {"seed": 11})
    evaluated = json.loads((single / "eval_rte.json").read_text())
    best = summary["per_task"]["rte"]["best"]
    assert evaluated["val/acc"] == pytest.approx(best["val/acc"], abs=1e-6)
    assert evaluated["val/loss"] == pytest.approx(best["val/loss"], abs=1e-5)


@pytest.mark.slow
def test_joint_run_killed_mid_epoch_resumes_exactly(run_cli, tmp_path):
    """SIGKILL at step 6 of 8 (mid-epoch 1; last.ckpt after every step), relaunch: the uninterrupted history."""
    from tests.runs.helpers import env_with_repo

    args = (
        "experiment=knob_multitask",
        *TINY,
        "data.tasks=[rte,cb]",
        "method.prompt.length=4",
        "data.num_workers=0",
        "callbacks.step_checkpoint.every_n_train_steps=1",
    )
    run_cli("deepprompt.train", *args, f"hydra.run.dir={tmp_path / 'full'}")
    killed = tmp_path / "killed"
    kill = ("+callbacks.kill._target_=tests.runs.helpers.KillAt", "+callbacks.kill.step=6")
    proc = run_cli(
        "deepprompt.train", *args, f"hydra.run.dir={killed}", *kill, check=False, env=env_with_repo()
    )
    assert proc.returncode != 0 and not (killed / "metrics.json").exists()
    # the same configuration (a relaunch with other values is refused), the kill disarmed
    run_cli(
        "deepprompt.train", *args, f"hydra.run.dir={killed}", *kill, env={**env_with_repo(), "KILL_AT": "off"}
    )
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["resumed_from"].endswith("last.ckpt") and resumed["steps"] == full["steps"] == 8
    for a, b in zip(full["history"], resumed["history"], strict=True):
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], abs=1e-6) for k in a)
