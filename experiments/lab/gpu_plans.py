"""The GPU job plans of issues 3, 4 and 9 (MiniLM, `../shared/data`), for gpu_queue.py.

Every job is a `deepprompt.train` command line; nothing here is a result. The method comparison tunes each
method's learning rate on seed 1 over a small grid (the same grid size for every method), then runs seeds 2
and 3 at the grid's best rate. Same data, epochs, batch size, warm-up and head for every method of a task.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SEEDS = (1, 2, 3)

# Per task: overrides shared by every method, and optimizer steps per run (for the queue's time estimates;
# BoolQ's long passages cost about twice a short-sentence step).
TASKS: dict[str, tuple[list[str], int]] = {
    "sst2": (["data=sst2", "data.batch_size=64", "trainer.max_epochs=2"], 2 * 1053),
    "boolq": (["data=boolq", "data.batch_size=32", "trainer.max_epochs=5"], 2 * 5 * 295),
    "rte": (["data=rte", "data.batch_size=32", "trainer.max_epochs=20"], 20 * 78),
    "cb": (["data=cb", "data.batch_size=32", "trainer.max_epochs=40"], 40 * 8),
}
COMMON = ["optim.warmup_ratio=0.1", "data.num_workers=0"]

# Learning-rate grids: three rates per method around each method's usual range (four for the two deep-prompt
# methods, whose best rate sat at the grid's edge).
GRIDS: dict[str, tuple[str, ...]] = {
    # 5e-2 added after the first call, where 2e-2 (then the grid's top) won on SST-2, BoolQ and RTE
    "ptuning_v2": ("5e-3", "1e-2", "2e-2", "5e-2"),
    "prefix": ("5e-3", "1e-2", "2e-2", "5e-2"),
    "lora": ("5e-4", "1e-3", "3e-3"),
    "finetune": ("2e-5", "5e-5", "1e-4"),
    "prompt_tuning": ("1e-2", "3e-2", "1e-1"),
    "ptuning_v1": ("3e-3", "1e-2", "3e-2"),
}
# Cheaper extras (one seed, two rates): the reparameterized peft prefix and the head-only floor.
EXTRA_GRIDS: dict[str, tuple[str, ...]] = {
    "prefix_mlp": ("5e-3", "1e-2"),
    "linear_probe": ("1e-3", "3e-3"),
}


# The extras as full methods (plan next2): wider grids, the earlier rates kept so their runs count
EXTRA_GRIDS_2: dict[str, tuple[str, ...]] = {
    "prefix_mlp": ("1e-4", "3e-4", "1e-3", "5e-3", "1e-2"),
    "linear_probe": ("1e-3", "3e-3", "1e-2"),
}


@dataclass(frozen=True)
class Job:
    name: str
    group: str
    args: list[str]
    steps: int
    priority: int
    grid: str | None = None  # the lr grid this job belongs to
    lr: str | None = None
    pick_lr_from: str | None = None  # run at the best lr of this grid (decided when the grid has finished)
    monitor: str = "val/acc"

    @property
    def key(self) -> str:
        """Unique within a plan (the same run name may sit in two groups, e.g. knobs and knobs_compress)."""
        return f"{self.group}/{self.name}"

    def with_lr(self, lr: str) -> Job:
        return replace(self, args=[*self.args, f"method.lr={lr}"], lr=lr, name=f"{self.name}_lr{lr}")


def method_comparison(
    tasks=("sst2", "boolq", "rte", "cb"), methods=tuple(GRIDS), priority0: int = 0, grids=GRIDS
) -> list[Job]:
    jobs = []
    for t_index, task in enumerate(tasks):
        task_args, steps = TASKS[task]
        for method in methods:
            grid = f"{task}/{method}"
            base = [*task_args, *COMMON, f"method={method}", "task_name=method_comparison"]
            prio = priority0 + 10 * t_index
            for lr in grids[method]:
                jobs.append(
                    Job(
                        f"{task}_{method}_s1_lr{lr}",
                        "method_comparison",
                        [*base, "seed=1", f"method.lr={lr}"],
                        steps,
                        prio,
                        grid=grid,
                        lr=lr,
                    )
                )
            for seed in SEEDS[1:]:
                jobs.append(
                    Job(
                        f"{task}_{method}_s{seed}",
                        "method_comparison",
                        [*base, f"seed={seed}"],
                        steps,
                        prio - 1,
                        pick_lr_from=grid,
                    )
                )
    return jobs


def extras(tasks=("sst2", "boolq", "rte", "cb"), priority0: int = 100) -> list[Job]:
    jobs = []
    for t_index, task in enumerate(tasks):
        task_args, steps = TASKS[task]
        for method, grid in EXTRA_GRIDS.items():
            for lr in grid:
                args = [
                    *task_args,
                    *COMMON,
                    f"method={method}",
                    "task_name=method_comparison",
                    "seed=1",
                    f"method.lr={lr}",
                ]
                jobs.append(
                    Job(f"{task}_{method}_s1_lr{lr}", "method_comparison", args, steps, priority0 + t_index)
                )
    return jobs


def call1() -> list[Job]:
    """Method comparison: every grid on seed 1, then seeds 2-3 at each grid's best lr; extras if time is left."""
    return method_comparison() + extras()


def issue4(seeds=(1,), priority0: int = 50) -> list[Job]:
    """CoNLL-2003 (dev and test entity F1) and the SQuAD 1.1 article split (EM/F1): P-Tuning v2, full FT, prefix."""
    conll = [
        "data=conll2003",
        "data.batch_size=32",
        "trainer.max_epochs=5",
        *COMMON,
        "task_name=issue4_conll03",
    ]
    squad = ["data=squad", "data.batch_size=32", "trainer.max_epochs=3", *COMMON, "task_name=issue4_squad"]
    methods = {  # paper: long prompts for sequence labelling and QA
        "conll": [
            ("ptuning_v2", ["method.prompt.length=128", "method.lr=2e-2"]),
            ("finetune", ["method.lr=5e-5"]),
            ("prefix", ["method.num_virtual_tokens=128", "method.lr=2e-2"]),
        ],
        "squad": [
            ("ptuning_v2", ["method.prompt.length=64", "method.lr=1e-2"]),
            ("finetune", ["method.lr=5e-5"]),
            ("prefix", ["method.num_virtual_tokens=64", "method.lr=1e-2"]),
        ],
    }
    jobs = []
    for seed in seeds:
        for method, extra in methods["squad"]:  # the longest first
            jobs.append(
                Job(
                    f"squad_{method}_s{seed}",
                    "issue4",
                    [*squad, f"method={method}", *extra, f"seed={seed}"],
                    3 * 270 * 6,
                    priority0 + seed,
                    monitor="val/f1",
                )
            )
        for method, extra in methods["conll"]:
            jobs.append(
                Job(
                    f"conll03_{method}_s{seed}",
                    "issue4",
                    [*conll, f"method={method}", *extra, f"seed={seed}"],
                    5 * 439,
                    priority0 + seed,
                    monitor="val/f1",
                )
            )
    return jobs


def conll_long(
    job: Job,
    lr: str | None = None,
    priority: int | None = None,
    length: int | None = None,
    epochs: int = 15,
    max_time: str | None = None,
) -> Job:
    """A CoNLL-2003 job of issue4() at 15 epochs (task_name issue4_conll03_e15, group issue4_long), optionally at
    another learning rate, prompt length or number of epochs (the name then says which). ``max_time``
    (Lightning's DD:HH:MM:SS) ends a job that would not finish before the call's deadline with a normal summary;
    its metrics.json then says how many epochs ran."""
    task_name = "issue4_conll03_e15" if epochs == 15 else f"issue4_conll03_e{epochs}"
    args = [a.replace("task_name=issue4_conll03", f"task_name={task_name}") for a in job.args]
    tag = f"_e{epochs}" + ("" if length is None else f"_psl{length}") + ("" if lr is None else f"_lr{lr}")
    if lr is not None:
        args = [a for a in args if not a.startswith("method.lr=")] + [f"method.lr={lr}"]
    args.append(f"trainer.max_epochs={epochs}")
    if length is not None:
        args.append(f"method.prompt.length={length}")
    if max_time is not None:
        args.append(f"+trainer.max_time={max_time}")
    return replace(
        job,
        name=job.name.replace("_s", f"{tag}_s", 1),
        group="issue4_long",
        args=args,
        steps=epochs * 439,
        priority=job.priority if priority is None else priority,
    )


def sweeps(tasks=("sst2", "rte"), priority0: int = 60) -> list[Job]:
    """Issue 3: P-Tuning v2 prompt length 1..128 and prompts on the top-k vs bottom-k layers (seed 1, lr 2e-2)."""
    jobs = []
    for task in tasks:
        task_args, steps = TASKS[task]
        base = [*task_args, *COMMON, "method=ptuning_v2", "method.lr=2e-2", "seed=1"]
        for length in (1, 4, 16, 32, 64, 128):
            jobs.append(
                Job(
                    f"{task}_length{length}",
                    "length_sweep",
                    [*base, "task_name=length_sweep", f"method.prompt.length={length}"],
                    steps,
                    priority0,
                )
            )
        for side in ("top", "bottom"):
            for k in range(1, 6):  # k = 6 is every layer: the length-16 run above
                jobs.append(
                    Job(
                        f"{task}_{side}{k}",
                        "depth_ablation",
                        [*base, "task_name=depth_ablation", f"method.prompt.layers={side}-{k}"],
                        steps,
                        priority0 + 1,
                    )
                )
    return jobs


def knobs(tasks=("rte", "sst2"), priority0: int = 70) -> list[Job]:
    """Issue 9: per-layer length profiles and layer-wise lr, 3 seeds, against uniform length 16 / one lr."""
    settings = {
        "uniform": [],
        "len_middle": ["method.prompt.length={profile:middle,base:16,c:0.76}"],
        "len_linear_up": ["method.prompt.length={profile:linear_up,base:16}"],
        "len_linear_down": ["method.prompt.length={profile:linear_down,base:16}"],
        "lr_early_mid_late": ["method.layer_lr.profile=early_mid_late"],
        "lr_linear": ["method.layer_lr.profile=linear"],
        "lr_geometric": ["method.layer_lr.profile=geometric"],
    }
    jobs = []
    for t_index, task in enumerate(tasks):
        task_args, steps = TASKS[task]
        for seed in SEEDS:
            for name, extra in settings.items():
                args = [
                    *task_args,
                    *COMMON,
                    "method=ptuning_v2",
                    "method.lr=2e-2",
                    "task_name=knobs",
                    *extra,
                    f"seed={seed}",
                ]
                jobs.append(Job(f"{task}_{name}_s{seed}", "knobs", args, steps, priority0 + t_index + seed))
    return jobs


def multitask(priority0: int = 75) -> list[Job]:
    """Issue 9: joint RTE + CB + BoolQ (experiment=knob_multitask: length 20, lr 1e-2, 10 epochs, seed 11), mixed
    and homogeneous batches, next to separate single-task runs with the same prompt settings."""
    same = ["method.prompt.length=20", "method.lr=1e-2", "seed=11", "data.num_workers=0"]
    jobs = [
        Job(
            "joint_mixed",
            "multitask",
            ["experiment=knob_multitask", "data.num_workers=0", "task_name=multitask_joint_mixed"],
            2 * 3810,
            priority0,
        ),
        Job(
            "joint_homogeneous",
            "multitask",
            [
                "experiment=knob_multitask",
                "data.batch_mode=homogeneous",
                "data.num_workers=0",
                "task_name=multitask_joint_homogeneous",
            ],
            2 * 3810,
            priority0,
        ),
    ]
    for task, steps in (("rte", 10 * 78), ("cb", 10 * 8), ("boolq", 2 * 10 * 295)):
        jobs.append(
            Job(
                f"{task}_separate",
                "multitask",
                [f"experiment={task}_minilm", "trainer.max_epochs=10", *same, "task_name=multitask_separate"],
                steps,
                priority0,
            )
        )
    return jobs


def everything() -> list[Job]:
    """All of it in priority order; each call continues the last (--prior) within its budget."""
    return method_comparison() + issue4() + sweeps() + knobs() + multitask() + extras()


PLANS = {"call1": call1, "all": everything}


def smoke() -> list[Job]:
    """A CPU check of the queue itself: a two-rate grid and one follow-up seed on CB, tiny backbone."""
    base = [
        "data=cb",
        "backbone=tiny",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "data.num_workers=0",
        "method=ptuning_v2",
        "task_name=smoke",
    ]
    grid = [
        Job(f"cb_s1_lr{lr}", "smoke", [*base, "seed=1", f"method.lr={lr}"], 8, 0, grid="cb", lr=lr)
        for lr in ("1e-2", "2e-2")
    ]
    return [*grid, Job("cb_s2", "smoke", [*base, "seed=2"], 8, -1, pick_lr_from="cb")]


PLANS["smoke"] = smoke


def final() -> list[Job]:
    """The last call of the session (about 500 s of queue): what the first two left, cut to fit.

    - method comparison: every grid; seeds 2-3 for every method on SST-2, and on BoolQ/RTE/CB for all but the two
      input-prompt baselines (prompt tuning, P-tuning v1: seed 1 only there; they trail by 6-10 points on SST-2);
    - issue 4 first (SQuAD's long windows make the longest jobs; 2 epochs);
    - sweeps: RTE at 10 epochs (length 1..128, top-k/bottom-k k = 1..5), SST-2 at lengths 1/16/64 and k = 1, 3;
    - knobs: RTE at 10 epochs, 3 seeds.
    """
    jobs = [
        j
        for j in method_comparison()
        if not (
            j.pick_lr_from
            and j.name.split("_")[0] != "sst2"
            and j.pick_lr_from.split("/")[1] in ("prompt_tuning", "ptuning_v1")
        )
    ]
    # SQuAD at 2 epochs here (3 in issue4()): its 384-token windows would not fit the call's budget otherwise
    jobs += [
        replace(j, args=[*j.args, "trainer.max_epochs=2"], steps=j.steps * 2 // 3) if "squad" in j.name else j
        for j in issue4(priority0=-20)
    ]
    rte10 = ["trainer.max_epochs=10"]
    for job in sweeps(tasks=("rte",), priority0=60):
        if job.group == "length_sweep" and "length32" in job.name:
            continue
        jobs.append(replace(job, args=[*job.args, *rte10], steps=job.steps // 2))
    keep_sst2 = {
        "sst2_length1",
        "sst2_length16",
        "sst2_length64",
        "sst2_top1",
        "sst2_top3",
        "sst2_bottom1",
        "sst2_bottom3",
    }
    jobs += [j for j in sweeps(tasks=("sst2",), priority0=62) if j.name in keep_sst2]
    jobs += [
        replace(j, args=[*j.args, *rte10], steps=j.steps // 2) for j in knobs(tasks=("rte",), priority0=70)
    ]
    return jobs


PLANS["final"] = final


def next_session() -> list[Job]:
    """What the 2026-11-23 session could not run (start it with --prior <the unpacked minilm_h100_runs>)."""
    jobs = [j for j in final() if j.group in ("knobs",)]  # RTE knobs: the two seed-3 runs still missing
    jobs += sweeps(tasks=("sst2",), priority0=10)  # all SST-2 lengths and depths
    jobs += knobs(tasks=("sst2",), priority0=20)
    jobs += multitask(priority0=30)
    for task in (
        "sst2",
        "rte",
    ):  # prompt dropout 0 (peft's prefix has none): the gap to peft prefix in issue 3
        task_args, steps = TASKS[task]
        for lr in ("2e-2", "5e-2"):
            for seed in SEEDS:
                args = [
                    *task_args,
                    *COMMON,
                    "method=ptuning_v2",
                    f"method.lr={lr}",
                    "method.prompt.dropout=0.0",
                    "task_name=prompt_dropout",
                    f"seed={seed}",
                ]
                jobs.append(Job(f"{task}_dropout0_lr{lr}_s{seed}", "prompt_dropout", args, steps, 40))
    jobs += [  # as seed 1 ran in final(): SQuAD at 2 epochs
        replace(j, priority=50, args=[*j.args, "trainer.max_epochs=2"])
        if "squad" in j.name
        else replace(j, priority=50)
        for j in issue4(seeds=(2, 3))
    ]
    jobs += extras(priority0=60)
    # Added in the 2026-11-23 evening session: the paper trains NER prompts far longer than 5 epochs; both
    # prefix methods at 15 epochs (seed 1; full FT had converged by epoch 5), started first (the longest jobs).
    jobs += [
        conll_long(j)
        for j in issue4(seeds=(1,), priority0=4)
        if j.name.startswith("conll03_") and "finetune" not in j.name
    ]
    return jobs


PLANS["next"] = next_session


def next_session2() -> list[Job]:
    """What the 2026-11-23 evening session left for a GPU (start it with --prior <the unpacked minilm_h100_runs>):

    - issue 9: RTE prompts to compress (the earlier RTE knob runs kept no prompt files; COMPRESS=1 in
      gpu_call.sh compresses knobs*/*_uniform_s*), and the joint vs separate multi-task runs at seeds 12 and 13;
    - issue 4: full fine-tuning for 15 epochs (seed 1) and the two prefix methods at 15 epochs for seeds 2-3;
    - issue 3: the method comparison at 3 seeds for every method (prompt tuning and P-tuning v1 had seed 1 only
      on BoolQ/RTE/CB), and the extras as full methods: linear_probe (grid + 1e-2) and prefix_mlp with a lower
      grid (1e-4 .. 1e-3: at 5e-3 and 1e-2 it never left the majority class);
    - issue 9's control for the geometric lr profile (uniform prompts at its mean rate, SST-2, 3 seeds), and
      issue 4's P-Tuning v2 rate on CoNLL at 15 epochs (1e-2, 5e-2 next to the 2e-2 run) and the official
      script's 11-token prompt at lr 3e-2;
    - then what `next` did not reach (SQuAD seeds 2-3).
    """
    # priorities: the ~430 s jobs (CoNLL at 15 epochs, joint multi-task) first, so that one call's opening wave
    # starts them all; the queue does not start a job that would not finish before the call's deadline
    jobs = [
        replace(j, group="knobs_compress", priority=1)
        for j in knobs(tasks=("rte",), priority0=1)
        if "_uniform_" in j.name
    ]
    jobs = [
        replace(j, args=[*j.args, "trainer.max_epochs=10"], steps=j.steps // 2) for j in jobs
    ]  # as in final()
    for seed in (12, 13):
        for job in multitask(priority0=1):
            args = [a for a in job.args if not a.startswith("seed=")] + [f"seed={seed}"]
            priority = 0 if job.name.startswith("joint_") else job.priority
            jobs.append(replace(job, name=f"{job.name}_s{seed}", args=args, priority=priority))
    jobs += [  # finetune: seed 1 only; the prefix methods: seeds 2-3 (seed 1 ran in `next`)
        conll_long(j, priority=0)
        for j in issue4(seeds=(1, 2, 3), priority0=0)
        if j.name.startswith("conll03_") and ("finetune" in j.name) == j.name.endswith("_s1")
    ]
    # issue 9's control for the geometric layer-lr profile: its multipliers average 1.66, so a uniform prompt at
    # 1.66 x 2e-2 tells a higher mean rate from the profile itself (SST-2, 3 seeds)
    for job in knobs(tasks=("sst2",), priority0=5):
        if "_uniform_" in job.name:
            args = [a.replace("method.lr=2e-2", "method.lr=3.3e-2") for a in job.args]
            jobs.append(replace(job, name=job.name.replace("uniform", "uniform_lr3.3e-2"), args=args))
    # issue 4: the CoNLL prompt rates were set, not tuned: two more rates for P-Tuning v2 at 15 epochs (seed 1)
    jobs += [
        conll_long(j, lr=lr, priority=0)
        for lr in ("1e-2", "5e-2")
        for j in issue4(seeds=(1,), priority0=0)
        if j.name == "conll03_ptuning_v2_s1"
    ]
    # ... and the official script's prompt (run_conll03_roberta.sh: 11 tokens, lr 3e-2; 30 epochs there, 15 here)
    jobs += [
        conll_long(j, lr="3e-2", length=11, priority=0)
        for j in issue4(seeds=(1,), priority0=0)
        if j.name == "conll03_ptuning_v2_s1"
    ]
    jobs += method_comparison(priority0=3)  # the finished grids and seeds are skipped through --prior
    jobs += method_comparison(methods=tuple(EXTRA_GRIDS_2), priority0=4, grids=EXTRA_GRIDS_2)
    jobs += [replace(j, priority=j.priority + 100) for j in next_session()]
    unique: dict[tuple[str, str], Job] = {}
    for (
        job
    ) in jobs:  # the same run from two lists (e.g. an extra's grid point) runs once, at its first priority
        unique.setdefault((job.group, job.name), job)
    return list(unique.values())


PLANS["next2"] = next_session2


def conll_variant(job: Job, tag: str, extra: list[str]) -> Job:
    """A conll_long() job with extra overrides, named ``..._e<epochs>_<tag>_s<seed>``; a ``method.lr=`` in
    ``extra`` replaces the job's own."""
    own_lr_replaced = any(e.startswith("method.lr=") for e in extra)
    args = [a for a in job.args if not (own_lr_replaced and a.startswith("method.lr="))]
    epochs = next(part for part in job.name.split("_") if part[1:].isdigit() and part[0] == "e")
    return replace(job, name=job.name.replace(f"_{epochs}_", f"_{epochs}_{tag}_", 1), args=[*args, *extra])


def next_session3() -> list[Job]:
    """What the 2026-11-23 night session left for issue 4 (CoNLL-2003 at 15 epochs, P-Tuning v2 4.5 test-F1 points
    below fine-tuning, 1.0 below peft prefix), widened on 2026-12-03:

    - fine-tuning seeds 2-3 at 15 epochs (its 15-epoch reference had one seed);
    - 30 epochs for both prefix methods and fine-tuning (seed 1): P-Tuning v2's dev F1 was still rising at epoch
      15, and the official script trains CoNLL-2003 prompts for 30 epochs;
    - P-Tuning v2 variants that could explain the gap to peft prefix or to fine-tuning (seed 1, 15 epochs, and
      dropout 0 at 30 too): no prompt dropout (peft's prefix has none), the MLP reparameterization (the paper:
      helps some tasks) at two rates, and a longer prompt (256 tokens).

    The old calls ran 14 jobs side by side at ~17 steps/s each (the GPU shared); with 10 jobs the 30-epoch runs
    need ~30 steps/s, so they carry max_time (they stop with a normal summary instead of being killed). Run with
    STEPS_PER_S=35 so that the queue's duration estimate lets them start."""
    jobs = [
        conll_long(j, priority=1)
        for j in issue4(seeds=(2, 3), priority0=0)
        if j.name.startswith("conll03_finetune")
    ]
    base = {j.name: j for j in issue4(seeds=(1,), priority0=0)}
    ptv2, prefix, finetune = (base[f"conll03_{m}_s1"] for m in ("ptuning_v2", "prefix", "finetune"))
    long = {"epochs": 30, "max_time": "00:00:07:50", "priority": 0}
    jobs += [conll_long(ptv2, **long), conll_long(prefix, **long), conll_long(finetune, **long)]
    variants = {
        "dropout0": ["method.prompt.dropout=0.0"],
        "mlp_lr5e-3": ["method.prompt.reparam=mlp", "method.lr=5e-3"],
        "mlp_lr2e-2": ["method.prompt.reparam=mlp"],
        "psl256": ["method.prompt.length=256"],
    }
    for tag, extra in variants.items():
        for job in [conll_long(ptv2, priority=1)] + ([conll_long(ptv2, **long)] if tag == "dropout0" else []):
            jobs.append(conll_variant(job, tag, extra))
    return jobs


PLANS["next3"] = next_session3


def next_session4() -> list[Job]:
    """What the 2026-12-03 session left for issue 4 (CoNLL-2003 converged at 30 epochs; the best P-Tuning v2 run,
    30 epochs without prompt dropout, is 3.0 test-F1 points below fine-tuning at 30 epochs, one seed each):

    - seeds 2-3 of that run and of fine-tuning at 30 epochs (the comparison had one seed per side);
    - the MLP reparameterization at the rates where the reparameterized peft prefix trained on the classification
      tasks (1e-4, 3e-4, 1e-3; at 5e-3 and 2e-2 it collapsed to all-O on CoNLL), 30 epochs without dropout, seed 1.

    Seven jobs, all in the opening wave; run with STEPS_PER_S=35 (call 12: ten jobs, 30 epochs in 435-500 s)."""
    base = {j.name: j for j in issue4(seeds=(1, 2, 3), priority0=0)}
    long = {"epochs": 30, "max_time": "00:00:07:50", "priority": 0}
    jobs = []
    for seed in (2, 3):
        ptv2 = conll_long(base[f"conll03_ptuning_v2_s{seed}"], **long)
        jobs.append(conll_variant(ptv2, "dropout0", ["method.prompt.dropout=0.0"]))
        jobs.append(conll_long(base[f"conll03_finetune_s{seed}"], **long))
    for lr in ("1e-4", "3e-4", "1e-3"):
        job = conll_long(base["conll03_ptuning_v2_s1"], lr=lr, **long)
        extra = ["method.prompt.dropout=0.0", "method.prompt.reparam=mlp"]
        jobs.append(conll_variant(job, "dropout0_mlp", extra))
    return jobs


PLANS["next4"] = next_session4
