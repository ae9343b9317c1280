"""Joint multi-task training data: several classification tasks, one train loader that samples them.

``MultiTaskDataModule(tasks=[rte, cb, boolq], ...)`` builds one `ClassificationDataModule` per task (one
tokenizer, loaded once and handed to each; shared lengths and batch sizes, which ``per_task`` overrides for one
task, e.g. BoolQ's ``max_seq_length``) and adds ``task_ids`` (the task's index in ``tasks``) to every batch.

**Sampling** (:func:`task_probabilities`): task i is drawn with probability ``p_i``:

- ``proportional``: ``p_i = n_i / sum_j n_j`` (every training example equally likely; small tasks rarely seen);
- ``temperature``: ``p_i ∝ n_i ** (1 / T)`` (T = 1 is proportional, T -> inf uniform; T = 2 is sqrt-sizes);
- ``uniform``: ``p_i = 1 / K``.

Each task keeps its own shuffled stream of examples (reshuffled whenever it runs out), so an over-sampled
small task cycles through its examples in a new order, and an under-sampled large one sees a fresh part.

**Batches** (``batch_mode``):

- ``mixed`` (default): every *row* draws its task, so one batch holds rows of several tasks and the model runs
  them in one forward pass, each row with its own task's prompts (the same per-row path as mixed-task
  inference, `MultiTaskDeepPromptModel`); every step updates (almost) every task, with about ``p_i * B`` rows
  of task i.
- ``homogeneous``: every *batch* draws its task: B rows of one task, the single-task forward (prompts
  broadcast, no per-row gather or prefix mask), padding only to that task's lengths; each step updates one
  task, exactly as a single-task step does.

With a frozen backbone and per-task prompts and heads, the tasks share no trainable parameter: the two modes
differ in how often and with how many rows each task's parameters are updated, not in what is shared.

An **epoch** is ``steps_per_epoch`` batches, by default ``ceil(sum_i n_i / batch_size)`` (as many examples as
one pass over all training sets). The order depends only on ``(seed, epoch)`` (`MultiTaskSampler`), so
mid-epoch resume is exact; under DDP rank r takes every W-th batch.

Validation: one loader per task, in ``tasks`` order (``dataloader_idx`` = task index).
"""

from __future__ import annotations

import inspect
import math
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from deepprompt.data.base import TaskDataModule
from deepprompt.errors import ConfigError
from deepprompt.tasks.classification.data import ClassificationDataModule
from deepprompt.tasks.classification.tasks import get_task

SAMPLING = ("proportional", "temperature", "uniform")
BATCH_MODES = ("mixed", "homogeneous")
# what ``data.per_task.<task>`` may set: the options of one task's ClassificationDataModule, but ``task`` and
# ``tokenizer`` (one backbone, one vocabulary: every task reads with ``data.tokenizer``, loaded once)
PER_TASK_KEYS = tuple(
    sorted(
        name
        for name in inspect.signature(ClassificationDataModule).parameters
        if name not in ("task", "tokenizer")
    )
)


def task_probabilities(
    sizes: Sequence[int], sampling: str = "proportional", temperature: float = 1.0
) -> list[float]:
    """``p_i`` for tasks of ``sizes`` examples: proportional, temperature (``p_i ∝ n_i^(1/T)``) or uniform."""
    if sampling not in SAMPLING:
        raise ConfigError(f"data.sampling must be one of {SAMPLING}, got {sampling!r}")
    if not sizes or any(n < 1 for n in sizes):
        raise ConfigError(f"every task needs at least one training example, got sizes {list(sizes)}")
    if sampling == "temperature" and not temperature > 0:
        raise ConfigError(f"data.temperature must be > 0, got {temperature}")
    if sampling == "uniform":
        weights = [1.0] * len(sizes)
    else:
        power = 1.0 if sampling == "proportional" else 1.0 / temperature
        # in log space: n ** (1 / T) of large n with small T would overflow
        logs = [power * math.log(n) for n in sizes]
        top = max(logs)
        weights = [math.exp(v - top) for v in logs]
    total = sum(weights)
    return [w / total for w in weights]


class MultiTaskDataset(Dataset):
    """The tasks' datasets end to end; item ``offsets[t] + i`` is task t's example i, with ``task_ids: t``."""

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        self.sizes = [len(d) for d in self.datasets]
        self.offsets = [0]
        for n in self.sizes:
            self.offsets.append(self.offsets[-1] + n)

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        task = bisect_right(self.offsets, index) - 1
        return {**self.datasets[task][index - self.offsets[task]], "task_ids": task}

    def task_of(self, index: int) -> int:
        return bisect_right(self.offsets, index) - 1


class MultiTaskCollator:
    """The task collator (padding), plus ``task_ids`` as a (B,) long tensor."""

    def __init__(self, collator) -> None:
        self.collator = collator

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collator(features)
        batch["task_ids"] = torch.tensor([f["task_ids"] for f in features], dtype=torch.long)
        return batch


class MultiTaskSampler(DistributedSampler):
    """Indices into a `MultiTaskDataset`, ``batch_size`` at a time: each batch (``homogeneous``) or each row
    (``mixed``) draws its task with ``probabilities``, then takes the next example of that task's stream.

    ``num_batches`` global batches per epoch; the order depends only on ``(seed, epoch)`` (``set_epoch``). With
    ``num_replicas`` W > 1, rank r yields batches r, r + W, ... (``num_batches // W`` of them), so a batch stays
    whole on one rank. Subclassing ``DistributedSampler`` keeps Lightning from wrapping it in another one.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        batch_size: int,
        probabilities: Sequence[float],
        num_batches: int,
        batch_mode: str = "mixed",
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if batch_mode not in BATCH_MODES:
            raise ConfigError(f"data.batch_mode must be one of {BATCH_MODES}, got {batch_mode!r}")
        if len(sizes) != len(probabilities):
            raise ValueError("one probability per task")
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        super().__init__(range(sum(sizes)), num_replicas=num_replicas, rank=rank, shuffle=False, seed=seed)
        self.sizes = list(sizes)
        self.offsets = [sum(self.sizes[:t]) for t in range(len(self.sizes))]
        self.batch_size = batch_size
        self.probabilities = torch.tensor(list(probabilities), dtype=torch.double)
        self.num_batches = num_batches
        self.batch_mode = batch_mode
        self.batches_per_rank = num_batches // num_replicas
        if self.batches_per_rank < 1:
            raise ConfigError(f"{num_batches} batches per epoch cannot be shared by {num_replicas} processes")

    def __len__(self) -> int:
        return self.batches_per_rank * self.batch_size

    def task_draws(self, generator: torch.Generator) -> torch.Tensor:
        """(num_batches, batch_size) task index of every row of the epoch."""
        n, b = self.num_batches, self.batch_size
        if self.batch_mode == "homogeneous":
            per_batch = torch.multinomial(self.probabilities, n, replacement=True, generator=generator)
            return per_batch[:, None].expand(n, b)
        rows = torch.multinomial(self.probabilities, n * b, replacement=True, generator=generator)
        return rows.view(n, b)

    def batches(self) -> list[list[int]]:
        """Every global batch of the current epoch (all ranks), as dataset indices."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        draws = self.task_draws(generator)
        streams: list[list[int]] = [[] for _ in self.sizes]

        def take(task: int) -> int:
            if not streams[task]:
                order = torch.randperm(self.sizes[task], generator=generator).tolist()
                streams[task] = [self.offsets[task] + i for i in reversed(order)]
            return streams[task].pop()

        return [[take(t) for t in row] for row in draws.tolist()]

    def __iter__(self) -> Iterator[int]:
        mine = self.batches()[self.rank :: self.num_replicas][: self.batches_per_rank]
        return iter([i for batch in mine for i in batch])


class MultiTaskDataModule(TaskDataModule):
    """Several classification tasks for one `MultiTaskModule`: a sampled train loader, one val loader per task."""

    load_tokenizer = staticmethod(ClassificationDataModule.load_tokenizer)  # a GGUF file's too; once, shared

    def __init__(
        self,
        tasks: Sequence[str],
        tokenizer: str,
        data_dir: str | None = None,
        sampling: str = "proportional",
        temperature: float = 1.0,
        batch_mode: str = "mixed",
        steps_per_epoch: int | None = None,
        per_task: Mapping[str, Mapping[str, Any]] | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        max_seq_length: int = 128,
        num_workers: int = 0,
        pad_to_multiple_of: int | None = None,
        limit_train_examples: int | None = None,
        limit_eval_examples: int | None = None,
        seed: int = 42,
        cache_dir: str | None = None,
    ) -> None:
        tasks = [str(t) for t in tasks]
        if len(tasks) < 1 or len(set(tasks)) != len(tasks):
            raise ConfigError(f"data.tasks must name one or more distinct tasks, got {tasks}")
        for task in tasks:
            get_task(task)  # an unknown name fails here, listing the valid ones
        per_task = {str(k): dict(v) for k, v in (per_task or {}).items()}
        if unknown := sorted(set(per_task) - set(tasks)):
            raise ConfigError(f"data.per_task names tasks not in data.tasks={tasks}: {unknown}")
        for task, extra in per_task.items():
            if bad := sorted(set(extra) - set(PER_TASK_KEYS)):
                raise ConfigError(f"data.per_task.{task}: unknown keys {bad}; valid: {list(PER_TASK_KEYS)}")
        task_probabilities([1] * len(tasks), sampling, temperature)  # checks the names and T
        if batch_mode not in BATCH_MODES:
            raise ConfigError(f"data.batch_mode must be one of {BATCH_MODES}, got {batch_mode!r}")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise ConfigError(f"data.steps_per_epoch must be >= 1 or null, got {steps_per_epoch}")
        # the tokenizer, loaded once (start-up time) for the longest max_seq_length any task asks for
        longest = max(per_task.get(t, {}).get("max_seq_length", max_seq_length) for t in tasks)
        loaded, _ = self.load_tokenizer(tokenizer, longest)
        # what every task's ClassificationDataModule shares (``per_task`` overrides it for one task); the
        # base class takes the same sizes, so that the loaders and the module see one set of numbers
        shared = {
            "tokenizer": loaded,
            "data_dir": data_dir,
            "batch_size": batch_size,
            "eval_batch_size": eval_batch_size,
            "max_seq_length": max_seq_length,
            "num_workers": num_workers,
            "group_by_length": False,
            "pad_to_multiple_of": pad_to_multiple_of,
            "limit_train_examples": limit_train_examples,
            "limit_eval_examples": limit_eval_examples,
            "seed": seed,
            "cache_dir": cache_dir,
        }
        super().__init__(**{k: v for k, v in shared.items() if k != "data_dir"})
        self.tasks = tasks
        self.sampling, self.temperature, self.batch_mode = sampling, temperature, batch_mode
        self.steps_per_epoch = steps_per_epoch
        self.task_modules: dict[str, ClassificationDataModule] = {}
        for task in tasks:
            self.task_modules[task] = ClassificationDataModule(
                task=task, **{**shared, **per_task.get(task, {})}
            )
        self.collators = {t: MultiTaskCollator(m.collator) for t, m in self.task_modules.items()}
        self.collator = self.collators[tasks[0]]
        self.train_data: MultiTaskDataset | None = None

    # -- what the module needs -----------------------------------------------------------------------------
    def module_kwargs(self) -> dict[str, Any]:
        return {
            "tasks": {
                t: {"num_labels": m.num_labels, "metrics": list(m.task.metrics)}
                for t, m in self.task_modules.items()
            }
        }

    # -- data ----------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Nothing to download ahead (see `ClassificationDataModule.prepare_data`)."""

    def setup(self, stage: str | None = None) -> None:
        for module in self.task_modules.values():
            module.setup(stage)
        if stage in (None, "fit") and self.train_data is None:
            self.train_data = MultiTaskDataset([m.dataset("train") for m in self.task_modules.values()])

    @property
    def train_sizes(self) -> list[int]:
        if self.train_data is None:
            raise RuntimeError("the train split is not loaded; call setup('fit') first")
        return list(self.train_data.sizes)

    def probabilities(self) -> list[float]:
        return task_probabilities(self.train_sizes, self.sampling, self.temperature)

    def num_batches(self) -> int:
        return self.steps_per_epoch or math.ceil(sum(self.train_sizes) / self.batch_size)

    def sampling_summary(self) -> dict[str, Any]:
        """For metrics.json: how the tasks were mixed."""
        return {
            "sampling": self.sampling,
            "temperature": self.temperature,
            "batch_mode": self.batch_mode,
            "train_sizes": dict(zip(self.tasks, self.train_sizes, strict=True)),
            "probabilities": dict(zip(self.tasks, self.probabilities(), strict=True)),
            "steps_per_epoch": self.num_batches(),
        }

    def train_dataloader(self) -> DataLoader:
        assert self.train_data is not None, "call setup('fit') first"
        sampler = MultiTaskSampler(
            self.train_sizes,
            self.batch_size,
            self.probabilities(),
            self.num_batches(),
            batch_mode=self.batch_mode,
            seed=self.seed,
        )
        return DataLoader(
            self.train_data,
            batch_size=self.batch_size,
            sampler=sampler,
            # mixed rows share one padding width; the first task's collator pads any task (same tokenizer)
            collate_fn=self.collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> list[DataLoader]:
        """One loader per task (file order), each batch tagged with its ``task_ids``."""
        loaders = []
        for t, (task, module) in enumerate(self.task_modules.items()):
            data = _Tagged(module.dataset("validation"), t)
            size = module.eval_batch_size
            loaders.append(
                DataLoader(
                    data,
                    batch_size=size,
                    collate_fn=self.collators[task],
                    num_workers=self.num_workers,
                    persistent_workers=self.num_workers > 0,
                )
            )
        return loaders

    def test_dataloader(self) -> list[DataLoader]:
        return self.val_dataloader()


class _Tagged(Dataset):
    def __init__(self, data: Dataset, task: int) -> None:
        self.data, self.task = data, task

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.data[index], "task_ids": self.task}
