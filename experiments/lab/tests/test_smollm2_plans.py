"""The SmolLM2 plans (experiments/lab/smollm2_plans.py): the classification plan runs every task x method x seed
once, seed 1 of everything before any seed 2, at the rates tuned on MiniLM; MiniLM's counterpart is the same plan."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

LAB = Path(__file__).parents[1]
sys.path.insert(0, str(LAB))

import smollm2_plans  # noqa: E402


def test_classification_plan_covers_the_grid_in_seed_order():
    jobs = smollm2_plans.PLANS["smollm2_cls"]()
    keys = {(a.split("=")[1] for a in j.args if a.startswith(("data=", "method=", "seed="))) for j in jobs}
    assert len(jobs) == 48 and len({j.key for j in jobs}) == 48 and len(keys) == 48
    by_seed = {}
    for job in jobs:
        seed = next(a for a in job.args if a.startswith("seed="))
        by_seed.setdefault(seed, []).append(job.priority)
    assert max(by_seed["seed=1"]) < min(by_seed["seed=2"]) and max(by_seed["seed=2"]) < min(by_seed["seed=3"])


def test_rates_are_minilm_tuned_ones_and_both_scales_share_the_protocol():
    with open(LAB.parent / "method_comparison_minilm" / "tuned.csv") as f:
        tuned = {(r["task"], r["method"]): r["chosen"] for r in csv.DictReader(f)}
    for job in smollm2_plans.PLANS["smollm2_cls"]():
        task = next(a for a in job.args if a.startswith("data=")).split("=")[1]
        method = next(a for a in job.args if a.startswith("method=")).split("=")[1]
        assert f"method.lr={tuned[(task, method)]}" in job.args
    small = smollm2_plans.PLANS["minilm_budget"]()
    large = smollm2_plans.PLANS["smollm2_cls"]()
    strip = lambda args: [a for a in args if not a.startswith("task_name=")]  # noqa: E731
    assert [strip(j.args) for j in small] == [strip(j.args) for j in large]


def test_e2e_plan_trains_on_the_full_set_and_decodes_the_test_set_with_beams():
    jobs = smollm2_plans.PLANS["smollm2_e2e"]()
    assert [j.name for j in jobs] == ["e2e_ptuning_v2_s1", "e2e_prefix_s1", "e2e_lora_s1", "e2e_finetune_s1"]
    for job in jobs:
        assert "data.eval_split=test" in job.args and "data.generation.num_beams=5" in job.args
        assert not any(a.startswith("data.limit_train_examples") for a in job.args)


def test_webnlg_plan_decodes_a_spread_test_subset_at_e2e_rates():
    jobs = smollm2_plans.PLANS["smollm2_webnlg"]()
    assert [j.name for j in jobs] == [f"webnlg_{m}_s1" for m in smollm2_plans.METHODS]
    for job, method in zip(jobs, smollm2_plans.METHODS, strict=True):
        assert {"data=webnlg", "data.eval_split=test", "++data.eval_every=2", "data.batch_size=16"} <= set(
            job.args
        )
        assert "data.generation.num_beams=5" in job.args and "seed=1" in job.args
        assert f"method.lr={smollm2_plans.E2E_LR[method]}" in job.args
        assert not any(
            a.startswith(("data.limit_train_examples", "data.limit_eval_examples")) for a in job.args
        )
        assert job.steps == 400 + 931 * 300 // 630  # training steps + the beam search's cost in steps
    smoke = smollm2_plans.PLANS["smollm2_webnlg_smoke"]()
    assert smoke and all("data.limit_eval_examples=4" in j.args for j in smoke)


def test_generation_sequence_runs_all_of_e2e_before_webnlg():
    jobs = sorted(smollm2_plans.PLANS["smollm2_gen"](), key=lambda j: j.priority)
    assert [j.name for j in jobs] == [f"{t}_{m}_s1" for t in ("e2e", "webnlg") for m in smollm2_plans.METHODS]
    assert [j.args for j in jobs] == [j.args for j in smollm2_plans.e2e() + smollm2_plans.webnlg()]
    assert len({j.priority for j in jobs}) == 8


def test_gen_seeds_add_the_other_seeds_of_both_generation_plans_seed_by_seed(monkeypatch):
    monkeypatch.setenv("GEN_SEEDS", "2 3")
    jobs = smollm2_plans.PLANS["smollm2_gen"]()
    names = [j.name for j in sorted(jobs, key=lambda j: j.priority)]
    methods = smollm2_plans.METHODS
    want = [f"{data}_{m}_s{seed}" for data in ("e2e", "webnlg") for seed in (2, 3) for m in methods]
    assert names == want
    for job in jobs:
        seed = job.name.rsplit("_s", 1)[1]
        assert f"seed={seed}" in job.args and "seed=1" not in job.args


def test_webnlg_tuned_plan_picks_each_methods_rate_on_dev_then_scores_every_test_entry():
    jobs = smollm2_plans.PLANS["smollm2_webnlg_tuned"]()
    grid = [j for j in jobs if j.grid]
    tests = [j for j in jobs if j.pick_lr_from]
    assert len(grid) == 12 and len(tests) == 12 and len(jobs) == 24
    for method in smollm2_plans.METHODS:
        runs = [j for j in grid if j.grid == f"webnlg_lr_{method}"]
        assert sorted(j.lr for j in runs) == sorted(smollm2_plans.WEBNLG_LR_GRID[method])
        for job in runs:
            assert {"data=webnlg", "data.eval_split=validation", "data.limit_eval_examples=200", "seed=1"} <= set(
                job.args
            )
        followers = [j for j in tests if j.pick_lr_from == f"webnlg_lr_{method}"]
        assert sorted(j.name for j in followers) == [f"webnlg_{method}_s{s}" for s in (1, 2, 3)]
    for job in tests:
        assert {"data.eval_split=test", "++data.eval_every=1"} <= set(job.args)
        assert not any(a.startswith("data.limit_eval_examples") for a in job.args)
    assert max(j.priority for j in grid) < min(j.priority for j in tests)
