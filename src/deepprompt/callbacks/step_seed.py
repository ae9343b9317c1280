"""Dropout randomness that depends only on (seed, epoch, batch): exact after a resume, whatever ran before."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


def step_seed(seed: int, rank: int, epoch: int, batch_idx: int) -> int:
    # hash() of a tuple of ints is stable across processes (no hash randomisation for ints)
    return hash((seed, rank, epoch, batch_idx)) & 0x7FFF_FFFF_FFFF_FFFF


def reseed(seed: int, device: torch.device) -> None:
    """``torch.manual_seed(seed)`` for the generators a model on ``device`` draws from, at a fraction of its cost.

    ``torch.manual_seed`` also queues a seed for every accelerator that is not initialised (CUDA on a CPU run,
    XPU and MTIA on a CUDA run), and each queued call records the caller's formatted stack: about half a
    millisecond per call on every training step. Here the CPU generator and, where CUDA is initialised, every
    CUDA generator are seeded directly; a model on another device type takes ``torch.manual_seed``.
    """
    if device.type not in ("cpu", "cuda"):
        torch.manual_seed(seed)
        return
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)  # runs at once: CUDA is initialised


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
        seed = step_seed(self.seed, trainer.global_rank, trainer.current_epoch, batch_idx)
        reseed(seed, pl_module.device)
