"""The GPU job plans of the SmolLM2 studies, for gpu_queue.py (experiments/method_comparison_smollm2,
experiments/generation_e2e_smollm2).

Classification (`smollm2_cls`): SST-2, BoolQ, RTE, CB x {ptuning_v2, prefix, lora, finetune} x seeds 1-3 under one
budget protocol (`BUDGET`), the same for both scales: `minilm_budget` is the identical plan on MiniLM (its
counterpart runs). The MiniLM comparison's full protocol (SST-2 2 epochs, BoolQ 5, RTE 20, CB 40, all data, lr
grids) needs about three times one GPU call on SmolLM2; the budget keeps CB whole, RTE at 10 epochs, the first
16,000 SST-2 and 3,000 BoolQ training examples. Learning rates: each method's rate tuned on MiniLM for that task
(`../method_comparison_minilm/tuned.csv`), not re-tuned. Prompt initialisation N(0, 0.1) for both prompt methods
(N(0, 1) keys/values swamp a pretrained decoder's attention at the start: SmolLM2 on E2E, loss 2.8 -> 7.9).
Order: seed 1 of every task and method first, then seed 2, then 3; within a seed CB, RTE, BoolQ, SST-2.

Generation (`smollm2_e2e`): E2E, the four methods, seed 1 (GEN_SEEDS="2 3": the other seeds), a fixed number of optimizer steps over the full
training set (shuffled), then beam search (5 beams) on the official test set with all its references.

Generation (`smollm2_webnlg`, experiments/generation_webnlg_smollm2): WebNLG 2017 the same way (E2E's per-method
rates), scored on all, seen and unseen test categories; the test set is every WEBNLG_TEST_EVERY-th entry (2: 931 of
1,862, seen and unseen alike) so that the four jobs fit one ~300 s call.
"""

from __future__ import annotations

import os
from dataclasses import replace

from gpu_plans import Job

SEEDS = (1, 2, 3)
METHODS = ("ptuning_v2", "prefix", "lora", "finetune")
TASK_ORDER = ("cb", "rte", "boolq", "sst2")

# task -> (overrides, optimizer steps per run); batch sizes as the MiniLM comparison (gpu_plans.TASKS)
BUDGET: dict[str, tuple[list[str], int]] = {
    "cb": (["data=cb", "data.batch_size=32", "trainer.max_epochs=40"], 40 * 8),
    "rte": (["data=rte", "data.batch_size=32", "trainer.max_epochs=10"], 10 * 78),
    "boolq": (
        ["data=boolq", "data.batch_size=32", "trainer.max_epochs=3", "data.limit_train_examples=3000"],
        3 * 94 * 3,  # long passages: a step costs about three short ones
    ),
    "sst2": (
        ["data=sst2", "data.batch_size=64", "trainer.max_epochs=2", "data.limit_train_examples=16000"],
        2 * 250,
    ),
}
# The rate each method reached its best dev accuracy with on MiniLM (lr grid on seed 1), per task
TUNED_LR: dict[str, dict[str, str]] = {
    "finetune": {"sst2": "5e-5", "boolq": "2e-5", "rte": "2e-5", "cb": "1e-4"},
    "ptuning_v2": {"sst2": "2e-2", "boolq": "2e-2", "rte": "2e-2", "cb": "5e-3"},
    "prefix": {"sst2": "5e-2", "boolq": "2e-2", "rte": "5e-2", "cb": "5e-3"},
    "lora": {"sst2": "3e-3", "boolq": "1e-3", "rte": "5e-4", "cb": "3e-3"},
}
METHOD_ARGS = {
    "ptuning_v2": ["method.prompt.init_std=0.1"],
    "prefix": ["method.init_std=0.1"],
    "lora": [],
    "finetune": [],
}
COMMON = ["optim.warmup_ratio=0.1", "data.num_workers=0", "fast_path=false"]


def classification(group: str, tasks=TASK_ORDER, methods=METHODS, seeds=SEEDS, extra=()) -> list[Job]:
    jobs = []
    for s_index, seed in enumerate(seeds):
        for t_index, task in enumerate(tasks):
            task_args, steps = BUDGET[task]
            for method in methods:
                lr = TUNED_LR[method][task]
                args = [
                    *task_args,
                    *COMMON,
                    f"method={method}",
                    *METHOD_ARGS[method],
                    f"method.lr={lr}",
                    f"seed={seed}",
                    f"task_name={group}",
                    *extra,
                ]
                jobs.append(
                    Job(f"{task}_{method}_s{seed}", group, args, steps, 100 * s_index + 10 * t_index, lr=lr)
                )
    return jobs


# E2E: E2E_STEPS optimizer steps of batch 16 (800 x 16 = 12,800 pairs drawn from the 42,061 training pairs, 0.3
# epoch) and the test MRs (E2E_TEST: the first N of 630)
E2E_LR = {"ptuning_v2": "2e-2", "prefix": "2e-2", "lora": "2e-3", "finetune": "5e-5"}
# Fine-tuning and LoRA (the weights of the attention train) clip the gradient norm at 1 (as transformers' Trainer
# does by default): without it both diverged on E2E after the warm-up (loss 1.5 -> 1.6 at steps 49 -> 99, NaN from
# step ~150, H100, bf16-mixed), while the two prompt methods trained (BLEU 62-64).
GEN_METHOD_ARGS = {"finetune": ["optim.max_grad_norm=1.0"], "lora": ["optim.max_grad_norm=1.0"]}


def _generation_args(
    data: list[str], steps: int, method: str, group: str, seed: int = 1, lr: str | None = None, split: str = "test"
) -> list[str]:
    """One generation job's overrides: ``data`` (the dataset and its evaluation subset), ``steps`` optimizer steps
    of batch 16, then 5-beam search on ``split``; the learning rate ``lr`` (default: the method's E2E rate),
    ``seed``."""
    return [
        *data,
        f"data.eval_split={split}",
        "data.batch_size=16",
        "data.eval_batch_size=64",
        "data.generation.num_beams=5",
        "data.generation.max_new_tokens=64",
        "trainer.max_epochs=1",
        f"+trainer.limit_train_batches={steps}",
        "trainer.num_sanity_val_steps=0",
        "optim.warmup_ratio=0.1",
        f"method={method}",
        *METHOD_ARGS[method],
        *GEN_METHOD_ARGS.get(method, []),
        f"method.lr={lr or E2E_LR[method]}",
        f"seed={seed}",
        f"task_name={group}",
    ]


# The learning rate per method on E2E's dev set (devset.csv, the first E2E_LR_DEV of its 547 MRs, all their
# references): each method's rate above and about 1/3x and 2.5x of it, E2E_STEPS steps, seed 1, 5 beams. The best
# dev BLEU per method is then the rate of its test runs, seeds 1-3 (`e2e_tuned`; the queue holds them until their
# method's grid has finished). 12 + 12 jobs, ~6 calls of 4 jobs at a time.
E2E_LR_GRID = {
    "ptuning_v2": ("7e-3", "2e-2", "5e-2"),
    "prefix": ("7e-3", "2e-2", "5e-2"),
    "lora": ("7e-4", "2e-3", "5e-3"),
    "finetune": ("2e-5", "5e-5", "1.2e-4"),
}


def lr_grid(
    task: str, grid: dict[str, tuple[str, str, str]], group: str, steps: int, dev: int, data: list[str]
) -> list[Job]:
    """One run per method and rate of ``grid`` on the first ``dev`` entries of ``task``'s dev set, seed 1, 5 beams;
    the methods' middle rates first, then the low and the high ones. Grid ``{task}_lr_{method}``."""
    return [
        Job(
            f"{task}_lr_{method}_{lr}",
            group,
            _generation_args([*data, f"data.limit_eval_examples={dev}"], steps, method, group, 1, lr=lr,
                             split="validation"),
            steps + 300 * dev // 630,
            10 * rank + priority,
            grid=f"{task}_lr_{method}",
            lr=lr,
            monitor="val/bleu",
        )
        for rank in range(3)
        for priority, method in enumerate(METHODS)
        for lr in [grid[method][(rank + 1) % 3]]
    ]


def tuned(task: str, grid_jobs: list[Job], test_jobs: list[Job]) -> list[Job]:
    """The grid, then the test runs (one per method and seed, METHODS order within each seed), each at its
    method's best dev rate (the queue holds them until that method's grid has finished)."""
    methods = [*METHODS] * (len(test_jobs) // len(METHODS))
    return [*grid_jobs, *(replace(j, priority=j.priority + 100, pick_lr_from=f"{task}_lr_{m}")
                          for j, m in zip(test_jobs, methods, strict=True))]


def e2e_lr(group: str = "e2e_smollm2_lr", steps: int | None = None, dev: int | None = None) -> list[Job]:
    steps = steps or int(os.environ.get("E2E_STEPS", "800"))
    dev = dev or int(os.environ.get("E2E_LR_DEV", "200"))
    return lr_grid("e2e", E2E_LR_GRID, group, steps, dev, ["data=e2e"])


def e2e_tuned(group: str = "e2e_smollm2_tuned", seeds: tuple[int, ...] = (1, 2, 3)) -> list[Job]:
    """E2E's test runs at each method's best dev rate (`e2e_lr`): the grid first, then these."""
    return tuned("e2e", e2e_lr(), e2e(group, seeds=seeds))


# WebNLG's learning rate per method on its dev set (all seen categories; the first WEBNLG_LR_DEV of its 872
# entries), WEBNLG_STEPS steps, seed 1, 5 beams; then seeds 1-3 at the best rates on ALL 1,862 test entries (seen
# and unseen, `data.eval_every=1`). The prompt methods' and LoRA's grids reach higher than E2E's: on E2E they
# picked the highest rate of their grid.
WEBNLG_LR_GRID = {
    "ptuning_v2": ("2e-2", "5e-2", "1e-1"),
    "prefix": ("2e-2", "5e-2", "1e-1"),
    "lora": ("2e-3", "5e-3", "1e-2"),
    "finetune": ("2e-5", "5e-5", "1.2e-4"),
}


def webnlg_lr(group: str = "webnlg_smollm2_lr", steps: int | None = None, dev: int | None = None) -> list[Job]:
    steps = steps or int(os.environ.get("WEBNLG_STEPS", "400"))
    dev = dev or int(os.environ.get("WEBNLG_LR_DEV", "200"))
    return lr_grid("webnlg", WEBNLG_LR_GRID, group, steps, dev, ["data=webnlg"])


def webnlg_tuned(group: str = "webnlg_smollm2_tuned", seeds: tuple[int, ...] = (1, 2, 3)) -> list[Job]:
    """WebNLG's test runs (every test entry) at each method's best dev rate (`webnlg_lr`): the grid first."""
    return tuned("webnlg", webnlg_lr(), webnlg(group, every=1, seeds=seeds))


def gen_seeds() -> tuple[int, ...]:
    """GEN_SEEDS (default "1"): the seeds of the generation plans, e.g. "2 3" for the second and third."""
    return tuple(int(s) for s in os.environ.get("GEN_SEEDS", "1").split())


def e2e(
    group: str = "e2e_smollm2", steps: int | None = None, test: int | None = None, seeds: tuple[int, ...] = ()
) -> list[Job]:
    steps = steps or int(os.environ.get("E2E_STEPS", "800"))
    test = test or os.environ.get("E2E_TEST") or None  # None: all 630 test MRs
    data = ["data=e2e", f"data.limit_eval_examples={test or 'null'}"]
    # the estimate adds the test set's beam search (~300 training steps' time)
    return [
        Job(
            f"e2e_{method}_s{seed}",
            group,
            _generation_args(data, steps, method, group, seed),
            steps + 300,
            10 * rank + priority,
            monitor="val/bleu",
        )
        for rank, seed in enumerate(seeds or gen_seeds())
        for priority, method in enumerate(METHODS)
    ]


# WebNLG: WEBNLG_STEPS optimizer steps of batch 16 (400 x 16 = 6,400 of the 18,025 training pairs, 0.36 epoch)
# and every WEBNLG_TEST_EVERY-th test entry (1: all 1,862; 2: 931, 486 seen + 445 unseen). References are as long
# as E2E's (~20 words), so the test set's beam search costs about (entries / 630) x 300 training steps' time.
def webnlg(
    group: str = "webnlg_smollm2",
    steps: int | None = None,
    every: int | None = None,
    seeds: tuple[int, ...] = (),
) -> list[Job]:
    steps = steps or int(os.environ.get("WEBNLG_STEPS", "400"))
    every = every or int(os.environ.get("WEBNLG_TEST_EVERY", "2"))
    data = ["data=webnlg", f"++data.eval_every={every}"]
    estimate = steps + (1862 // every) * 300 // 630
    return [
        Job(
            f"webnlg_{method}_s{seed}",
            group,
            _generation_args(data, steps, method, group, seed),
            estimate,
            10 * rank + priority,
            monitor="val/bleu",
        )
        for rank, seed in enumerate(seeds or gen_seeds())
        for priority, method in enumerate(METHODS)
    ]


# CPU smoke runs of both plans (smollm2_gpu.sh SMOKE=1, backbone=tiny_llama): every method, a few batches
SMOKE_CLS = ["trainer.max_epochs=1", "data.limit_train_examples=32", "data.limit_eval_examples=16"]
SMOKE_E2E = [
    "data.limit_train_examples=32",
    "data.generation.num_beams=2",
    "data.generation.max_new_tokens=8",
]


def e2e_smoke() -> list[Job]:
    return [
        Job(j.name, j.group, [*j.args, *SMOKE_E2E], j.steps, j.priority, monitor=j.monitor)
        for j in e2e("e2e_smoke", steps=2, test=4)
        if "method=lora" not in j.args  # LoRA's generate is the backbone's own: covered by the test suite
    ]


def webnlg_smoke() -> list[Job]:
    return [
        Job(
            j.name,
            j.group,
            [*j.args, *SMOKE_E2E, "data.limit_eval_examples=4"],
            j.steps,
            j.priority,
            monitor=j.monitor,
        )
        for j in webnlg("webnlg_smoke", steps=2, every=400)  # entries 0, 400, ... 1600: seen and unseen
        if "method=lora" not in j.args
    ]


def in_sequence(*plans: list[Job]) -> list[Job]:
    """One plan of several, each after the one before (the resumable call sequence's generation queue: E2E, then
    WebNLG)."""
    return [
        Job(j.name, j.group, j.args, j.steps, 100 * index + j.priority, monitor=j.monitor)
        for index, plan in enumerate(plans)
        for j in plan
    ]


PLANS = {
    "smollm2_cls": lambda: classification("method_comparison_smollm2"),
    "minilm_budget": lambda: classification("method_comparison_minilm_budget"),
    "smollm2_e2e": lambda: e2e(),
    "smollm2_e2e_lr": lambda: e2e_lr(),
    "smollm2_e2e_tuned": lambda: e2e_tuned(),
    "smollm2_e2e_lr_smoke": lambda: [
        Job(j.name, j.group, [*j.args, *SMOKE_E2E], j.steps, j.priority, monitor=j.monitor, lr=j.lr)
        for j in e2e_lr("e2e_lr_smoke", steps=2, dev=4)
        if "method=lora" not in j.args
    ],
    "smollm2_webnlg_tuned": lambda: webnlg_tuned(),
    "smollm2_webnlg_lr_smoke": lambda: [
        Job(j.name, j.group, [*j.args, *SMOKE_E2E], j.steps, j.priority, monitor=j.monitor, lr=j.lr)
        for j in webnlg_lr("webnlg_lr_smoke", steps=2, dev=4)
        if "method=lora" not in j.args
    ],
    "smollm2_cls_smoke": lambda: classification(
        "method_comparison_smoke", tasks=("cb", "rte"), seeds=(1,), extra=SMOKE_CLS
    ),
    "smollm2_e2e_smoke": e2e_smoke,
    "smollm2_webnlg": lambda: webnlg(),
    "smollm2_webnlg_smoke": webnlg_smoke,
    "smollm2_gen": lambda: in_sequence(e2e(), webnlg()),
    "smollm2_gen_smoke": lambda: in_sequence(e2e_smoke(), webnlg_smoke()),
}
