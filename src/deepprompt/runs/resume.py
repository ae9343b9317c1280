"""Exact resume: which checkpoint to resume from, and a train loader that picks up mid-epoch where it stopped.

Lightning 2.6 restores the loops' progress (epoch, batch, global step), the optimizer and the LR scheduler,
but a plain ``DataLoader`` restarts its epoch from the first batch, and a ``RandomSampler``'s generator starts
again from its seed: the resumed run would see other batches than an uninterrupted one. Lightning saves and
restores the state of a loader that has ``state_dict``/``load_state_dict`` (``fit_loop["combined_loader"]``);
:func:`make_resumable` gives the train loader that interface:

- the state is ``{epoch, batches}`` (batches handed to the training loop in that epoch) and, for a sampler with a
  ``torch.Generator`` (the seeded ``RandomSampler``), the generator state at the start of that epoch and now;
- on load, if the resumed epoch is the saved one (a mid-epoch checkpoint), the generator is rewound to the
  epoch's start and the first ``batches`` index batches are skipped without loading them; otherwise (an
  end-of-epoch checkpoint) the generator continues from where it stood, so the next epoch's order is the one the
  uninterrupted run drew. Samplers keyed on ``(seed, epoch)`` (``DistributedSampler``, ``LengthGroupedSampler``)
  only need the skip.

The skip holds for any ``num_workers`` and ``persistent_workers``: it is dropped only once the epoch's iterator
is built (a multi-process iterator asks for the index iterator twice and prefetches from the second).

Dropout randomness is made resumable separately (:class:`deepprompt.callbacks.StepSeed`).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, RandomSampler

from deepprompt.errors import ConfigError

log = logging.getLogger("deepprompt.resume")

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def resolve_ckpt_path(ckpt_path: Any, resume: Any, run_dir: Path) -> Path | None:
    """The checkpoint to resume from, or None to start fresh.

    ``ckpt_path``: null, ``last`` (``<run_dir>/checkpoints/last.ckpt``) or a path; it must exist.
    ``resume``: ``auto`` (default) resumes from ``<run_dir>/checkpoints/last.ckpt`` when it exists (a run
    re-launched into its run directory, e.g. ``hydra.run.dir=<dir>`` or the same ``hydra.sweep.dir``);
    ``never``/false always starts fresh unless ``ckpt_path`` is given.
    """
    if resume not in ("auto", "never", True, False, None):
        raise ConfigError(f"resume must be 'auto' or 'never', got {resume!r}")
    if ckpt_path not in (None, ""):
        path = run_dir / LAST_CHECKPOINT if str(ckpt_path) == "last" else Path(str(ckpt_path)).expanduser()
        if not path.is_file():
            raise ConfigError(f"ckpt_path={ckpt_path}: no checkpoint file at {path}")
        return path
    auto = run_dir / LAST_CHECKPOINT
    if resume in ("auto", True) and auto.is_file():
        log.info("Resuming from %s (resume=auto; set resume=never to start over)", auto)
        return auto
    if auto.is_file():
        log.warning("%s exists but resume=never: starting over (it will be overwritten)", auto)
    return None


class EpochRandomSampler(RandomSampler):
    """A ``RandomSampler`` that knows its epoch (Lightning calls ``set_epoch``); the order is unchanged."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class _SkippingBatches:
    """The loader's index sampler, skipping the batches a resumed epoch already trained on.

    It holds the loader weakly: a persistent-workers iterator keeps this sampler and the loader keeps that
    iterator, and a strong reference would close the loop, so a dropped loader would wait for the cyclic garbage
    collector, whose arbitrary finalizing order can close the workers' queues before they are told to stop
    (then every worker is joined for 5 s and killed).
    """

    def __init__(self, loader: ResumableDataLoader, base) -> None:
        self.loader, self.base = weakref.ref(loader), base

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self) -> Iterator:
        # the skip stays until the epoch's iterator is built (see _ResumingIterator): a multi-process
        # iterator asks for the index iterator twice (in __init__ and _reset) and uses only the second
        loader = self.loader()
        return islice(iter(self.base), loader._skip if loader is not None else 0, None)


class _ResumingIterator:
    """Creates the real iterator at the first ``next`` (after Lightning's ``set_epoch``) and counts batches."""

    def __init__(self, loader: ResumableDataLoader) -> None:
        self.loader = loader
        self.inner: Iterator | None = None

    def __iter__(self) -> _ResumingIterator:
        return self

    def __next__(self) -> Any:
        loader = self.loader
        if self.inner is None:
            loader._begin_epoch()
            try:
                self.inner = DataLoader.__iter__(loader)  # workers: indices are drawn (prefetched) here
            finally:
                loader._skip = 0  # later epochs (and persistent workers' _reset) start at batch 0
        batch = next(self.inner)
        loader._batches += 1
        return batch


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` with ``state_dict``/``load_state_dict``: mid-epoch checkpoints resume exactly.

    Made from an existing loader by :func:`make_resumable` (no ``__init__`` of its own, so Lightning can
    re-instantiate it, e.g. with a ``DistributedSampler`` under DDP).
    """

    _epoch = 0
    _batches = 0
    _skip = 0
    _gen_start: torch.Tensor | None = None
    _pending: dict[str, Any] | None = None

    @property
    def _generator(self) -> torch.Generator | None:
        return getattr(self.sampler, "generator", None)

    def _current_epoch(self) -> int:
        sampler = self.sampler
        batch_sampler = getattr(self, "batch_sampler", None)
        if not hasattr(sampler, "set_epoch") and batch_sampler is not None:
            sampler = getattr(batch_sampler, "sampler", sampler)
        return int(getattr(sampler, "epoch", 0))

    def _begin_epoch(self) -> None:
        epoch, pending, self._pending = self._current_epoch(), self._pending, None
        gen = self._generator
        self._skip = 0
        if pending is not None and pending["epoch"] == epoch:  # a mid-epoch checkpoint: replay, then skip
            self._skip = pending["batches"]
            if gen is not None and pending.get("generator_start") is not None:
                gen.set_state(pending["generator_start"])
        elif pending is not None and gen is not None and pending.get("generator_now") is not None:
            gen.set_state(pending["generator_now"])  # an end-of-epoch checkpoint: the next epoch's draw
        if self._skip:
            log.info("Resuming epoch %d after its first %d batches", epoch, self._skip)
        self._epoch, self._batches = epoch, self._skip
        self._gen_start = gen.get_state() if gen is not None else None

    @property
    def _index_sampler(self):
        return _SkippingBatches(self, super()._index_sampler)

    def __iter__(self) -> _ResumingIterator:  # type: ignore[override]
        return _ResumingIterator(self)

    def state_dict(self) -> dict[str, Any]:
        gen = self._generator
        return {
            "epoch": self._epoch,
            "batches": self._batches,
            "generator_start": self._gen_start,
            "generator_now": gen.get_state() if gen is not None else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict)


def make_resumable(loader: Any) -> Any:
    """Turn a train ``DataLoader`` into a :class:`ResumableDataLoader` in place (other iterables: unchanged).

    Its sampler must be ordered by ``(seed, epoch)`` (has ``set_epoch``) or be a ``RandomSampler`` with an
    explicit generator; anything else is left alone (Lightning then warns that mid-epoch resume is inexact).
    """
    if type(loader) is not DataLoader or loader.batch_sampler is None:
        return loader
    sampler = loader.sampler
    if type(sampler) is RandomSampler and sampler.generator is not None:
        sampler.__class__ = EpochRandomSampler
    elif not hasattr(sampler, "set_epoch"):
        return loader
    loader.__class__ = ResumableDataLoader
    return loader


class RestoreTrainLoaderState(Callback):
    """Hand the checkpoint's train-loader state to the loader at ``on_train_start`` if Lightning did not.

    Lightning loads loader states in ``FitLoop.setup_data`` only when it builds the loader after the checkpoint
    was restored; ``trainer.estimated_stepping_batches`` (our LR schedule's length, asked in
    ``configure_optimizers`` before the restore) builds it earlier, and the state would be dropped silently.
    ``on_train_start`` runs after the restore and before the first batch is drawn (our iterator is lazy).
    """

    def on_train_start(self, trainer, pl_module) -> None:
        fit_loop = trainer.fit_loop
        states = getattr(fit_loop, "_combined_loader_states_to_load", None)
        combined = fit_loop._combined_loader
        if not states or combined is None:
            return
        stateful = [loader for loader in combined.flattened if isinstance(loader, ResumableDataLoader)]
        for loader, state in zip(stateful, states, strict=False):
            loader.load_state_dict(state)
        fit_loop._combined_loader_states_to_load = []


def install_resumable_train_loader(datamodule: Any) -> None:
    """Wrap ``datamodule.train_dataloader`` so that every train loader it returns is resumable."""
    original = datamodule.train_dataloader

    def train_dataloader():
        return make_resumable(original())

    train_dataloader.__doc__ = original.__doc__
    datamodule.train_dataloader = train_dataloader
