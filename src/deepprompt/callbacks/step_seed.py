"""Dropout randomness that depends only on (seed, epoch, batch): exact after a resume, whatever ran before."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


def step_seed(seed: int, rank: int, epoch: int, batch_idx: int) -> int:
    # hash() of a tuple of ints is stable across processes (no hash randomisation for ints)
    return hash((seed, rank, epoch, batch_idx)) & 0x7FFF_FFFF_FFFF_FFFF


class StepSeed(Callback):
    """Reseed torch's global RNG (CPU and CUDA) before each training batch from ``(seed, rank, epoch, batch)``.

    Lightning restores the model, optimizer, scheduler and loop progress but not the global RNG, and what draws
    from it between a checkpoint and the next batch differs between an uninterrupted and a resumed run (a
    DataLoader iterator takes a base seed from it, the sanity check runs or not). With a per-batch seed (as
    fairseq does per update) the dropout masks of a resumed batch are those of the uninterrupted run.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        torch.manual_seed(step_seed(self.seed, trainer.global_rank, trainer.current_epoch, batch_idx))
