"""Stop a run at the first non-finite training loss, before the update, naming the step."""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from deepprompt.errors import NonFiniteLossError


class NanGuard(Callback):
    """Raise :class:`NonFiniteLossError` when the loss is NaN/inf, before ``backward`` (parameters untouched).

    Checkpoints saved so far stay as they were (the step checkpoint runs after the guard and never saves a
    diverged state), so ``checkpoints/last.ckpt`` holds the last good state. ``check_every_n_steps`` trades
    the one host-device sync per check for detection latency on GPU.
    """

    def __init__(self, check_every_n_steps: int = 1) -> None:
        self.check_every_n_steps = max(1, int(check_every_n_steps))

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        if trainer.global_step % self.check_every_n_steps:
            return
        if bool(torch.isfinite(loss.detach()).all()):
            return
        value = loss.detach().float().mean().item()
        kind = "NaN" if math.isnan(value) else "infinite"
        saved = [getattr(cb, "last_model_path", "") for cb in trainer.checkpoint_callbacks]
        saved = sorted({p for p in saved if p})
        keep = f"the last good checkpoint is {saved[0]}" if saved else "no checkpoint was saved before it"
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        raise NonFiniteLossError(
            f"training loss is {kind} at step {trainer.global_step + 1} (epoch {trainer.current_epoch}, "
            f"batch {trainer.fit_loop.epoch_loop.batch_idx}, lr {lr:.3g}); stopped before the update, "
            f"{keep}. Lower method.lr or set optim.max_grad_norm"
        )
