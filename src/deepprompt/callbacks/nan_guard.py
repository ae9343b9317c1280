"""Stop a run at the first non-finite training loss or gradient, before the update, naming the step."""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from deepprompt.errors import NonFiniteLossError


class NanGuard(Callback):
    """Raise :class:`NonFiniteLossError` when a step's loss or gradients are NaN/inf, before the optimizer step
    (parameters untouched).

    A finite loss can still give non-finite gradients (a batch whose attention rows are all masked, an overflow in
    the backward); applied, they turn the weights into NaN and the *next* step's loss is the first to show it. So
    the guard checks both, after the backward and before the update, with one host-device sync per checked step:
    the loss's finiteness is kept on the device until then, and the gradients' largest magnitude (which carries a
    NaN or inf through, and cannot overflow) joins it. Under fp16 loss scaling, where non-finite gradients are
    routine (the scaler skips those steps), only the loss is checked.

    Checkpoints saved so far stay as they were (the step checkpoint runs after the guard and never saves a
    diverged state), so ``checkpoints/last.ckpt`` holds the last good state. ``check_every_n_steps`` trades
    the one sync per check for detection latency on GPU.
    """

    def __init__(self, check_every_n_steps: int = 1) -> None:
        self.check_every_n_steps = max(1, int(check_every_n_steps))
        # this step's losses (one per micro-batch), detached, on the device
        self._losses: list[torch.Tensor] = []

    def _due(self, trainer: L.Trainer) -> bool:
        return trainer.global_step % self.check_every_n_steps == 0

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        if self._due(trainer):
            self._losses.append(loss.detach())

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        losses, self._losses = self._losses, []
        if not self._due(trainer):
            return
        flags = [torch.isfinite(loss).all() for loss in losses]
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads and getattr(trainer.precision_plugin, "scaler", None) is None:
            largest = torch.nn.utils.get_total_norm(grads, norm_type=math.inf)  # NaN/inf carry through
            flags.append(torch.isfinite(largest))
        if not flags:
            return
        device = flags[0].device
        if bool(torch.stack([f.to(device) for f in flags]).all()):  # the one sync of the step
            return
        bad = next((loss for loss in losses if not bool(torch.isfinite(loss).all())), None)
        self._raise(trainer, bad, losses[-1] if losses else None)

    @staticmethod
    def _raise(trainer: L.Trainer, bad: torch.Tensor | None, last: torch.Tensor | None) -> None:
        saved = [getattr(cb, "last_model_path", "") for cb in trainer.checkpoint_callbacks]
        saved = sorted({p for p in saved if p})
        keep = f"the last good checkpoint is {saved[0]}" if saved else "no checkpoint was saved before it"
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        where = (
            f"at step {trainer.global_step + 1} (epoch {trainer.current_epoch}, "
            f"batch {trainer.fit_loop.epoch_loop.batch_idx}, lr {lr:.3g})"
        )
        if bad is None:
            value = f" ({last.float().mean().item():.4g})" if last is not None else ""
            raise NonFiniteLossError(
                f"gradients are not finite {where} although the training loss is finite{value}; stopped "
                f"before the update, {keep}. Look at that batch (a row with nothing to attend to, an overflow in "
                f"the backward); lower method.lr, or train in bf16/fp32 rather than fp16"
            )
        kind = "NaN" if math.isnan(bad.float().mean().item()) else "infinite"
        raise NonFiniteLossError(
            f"training loss is {kind} {where}; stopped before the update, {keep}. "
            f"Lower method.lr or set optim.max_grad_norm"
        )
