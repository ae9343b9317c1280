"""Plain-text progress of a run: a plan line, a few progress lines per epoch, one line per epoch, with the ETA
of the whole run.

The lines go to the ``deepprompt.progress`` logger, hence to ``train.log`` and to the console (stdout), so a
run started with ``> log``, nohup or SLURM says what it does. Progress lines within an epoch are written when
stdout is not a terminal (in a terminal the progress bar shows the same). Example::

    plan: 2 epochs x 250 steps = 500 training steps, validation (7 batches) after each epoch
    epoch 1/2  step 63/500  train/loss 0.6712  elapsed 1m02s  ETA 7m40s
    epoch 1/2  step 250/500  train/loss 0.4471  val/acc 0.8326  val/loss 0.3871  elapsed 4m05s  ETA 4m01s  (best)

Losses are summed on the device and read once per line (a read is a host-device sync; see ProgressBar).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

from lightning.pytorch.callbacks import Callback

from deepprompt.utils.durations import format_duration

log = logging.getLogger("deepprompt.progress")


def format_metrics(values: dict[str, Any]) -> str:
    return "  ".join(
        f"{k} {v:.4f}" for k, v in values.items() if k not in ("epoch", "step") and isinstance(v, int | float)
    )


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


class ConsoleReport(Callback):
    """Plan, per-epoch and (off a terminal) within-epoch lines with elapsed time and the ETA of the whole run.

    Also sets ``trainer.log_every_n_steps`` to suit the epoch: at most the configured value, and at least
    ``lines_per_epoch`` logged losses per epoch (an 8-step epoch logs every 2 steps, not every 50).
    """

    def __init__(
        self,
        started: float | None = None,
        lines_per_epoch: int = 4,
        progress_lines: bool | None = None,
        monitor: str | None = None,
        mode: str = "max",
    ) -> None:
        self.started = time.time() if started is None else started
        self.lines_per_epoch = max(1, lines_per_epoch)
        self.progress_lines = (not sys.stdout.isatty()) if progress_lines is None else progress_lines
        self.monitor, self.mode = monitor, mode
        self._best: float | None = None
        self.sanity_per_batch: float | None = None  # the sanity check runs before on_train_start
        self._reset_run_clock()

    def _reset_run_clock(self) -> None:
        self._train_started = time.time()  # this process's fit (a resumed run counts from its restart)
        self.val_seconds: list[float] = []
        self._loss_sum: Any = 0.0
        self._loss_n = 0
        self._epoch_sum: Any = 0.0
        self._epoch_n = 0
        self._epoch_open = True

    # -- plan ---------------------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        self._reset_run_clock()
        history = getattr(pl_module, "history", None) or []  # a resumed run: its earlier epochs
        values = [h[self.monitor] for h in history if self.monitor and self.monitor in h]
        if values:
            self._best = max(values) if self.mode == "max" else min(values)
        self.batches = int(trainer.num_training_batches) if math.isfinite(trainer.num_training_batches) else 0
        self.max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
        self.start_epoch = trainer.current_epoch
        stepping = trainer.estimated_stepping_batches  # optimizer steps: max_steps, accumulation counted
        self.total_steps = int(stepping) if math.isfinite(stepping) else self.max_epochs * self.batches
        self.start_step = trainer.global_step
        self.interval = max(1, self.batches // self.lines_per_epoch)
        if trainer.log_every_n_steps > self.interval:
            trainer.log_every_n_steps = self.interval
        val_batches = (
            sum(int(n) for n in trainer.num_val_batches if math.isfinite(n)) if trainer.num_val_batches else 0
        )
        self.val_batches = val_batches
        validation = (
            f", validation ({_n(val_batches, 'batch', 'batches')}) after each epoch"
            if val_batches
            else ", no validation"
        )
        resumed = f", resuming at epoch {self.start_epoch + 1}" if self.start_epoch else ""
        every = trainer.log_every_n_steps
        log.info(
            "plan: %s x %s = %s%s%s; the loss is logged every %s",
            _n(self.max_epochs, "epoch", "epochs"),
            _n(self.batches, "step", "steps"),
            _n(self.total_steps, "training step", "training steps"),
            validation,
            resumed,
            "step" if every == 1 else f"{every} steps",
        )

    # -- timing -------------------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            loss = loss.detach()
            self._loss_sum = self._loss_sum + loss
            self._epoch_sum = self._epoch_sum + loss
            self._loss_n += 1
            self._epoch_n += 1
        last_of_epoch = batch_idx + 1 >= self.batches
        if self.progress_lines and (batch_idx + 1) % self.interval == 0 and not last_of_epoch:
            parts = [self._where(trainer)]
            if self._loss_n:
                parts.append(f"train/loss {float(self._loss_sum) / self._loss_n:.4f}")
            parts.append(self._times(trainer))
            log.info("  ".join(parts))
        if (batch_idx + 1) % self.interval == 0:
            self._loss_sum, self._loss_n = 0.0, 0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_started = time.time()

    def on_validation_end(self, trainer, pl_module) -> None:
        seconds = time.time() - self._val_started
        if trainer.sanity_checking:  # before on_train_start: not part of the training clock
            batches = sum(int(n) for n in trainer.num_sanity_val_batches) or 1
            self.sanity_per_batch = seconds / batches
        else:
            self.val_seconds.append(seconds)

    # -- lines --------------------------------------------------------------------------------------------
    def _where(self, trainer) -> str:
        return f"epoch {trainer.current_epoch + 1}/{self.max_epochs}  step {trainer.global_step}/{self.total_steps}"

    def eta_seconds(self, trainer) -> float:
        """Training steps left x seconds per step so far, plus validations left x seconds per validation (the
        sanity check's pace before the first). Seconds per step: this fit's time outside validation (data
        loading and checkpoints included) over its steps."""
        steps_left = max(0, self.total_steps - trainer.global_step)
        steps_done = trainer.global_step - self.start_step
        training = time.time() - self._train_started - sum(self.val_seconds)
        per_step = training / steps_done if steps_done > 0 else math.nan
        epochs_left = max(0, self.max_epochs - trainer.current_epoch - (0 if self._epoch_open else 1))
        if self.val_seconds:
            per_val = sum(self.val_seconds) / len(self.val_seconds)
        elif self.sanity_per_batch is not None:
            per_val = self.sanity_per_batch * self.val_batches
        else:
            per_val = 0.0
        return steps_left * per_step + (epochs_left * per_val if self.val_batches else 0.0)

    def _times(self, trainer) -> str:
        elapsed = time.time() - self.started
        return f"elapsed {format_duration(elapsed)}  ETA {format_duration(self.eta_seconds(trainer))}"

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_open = True
        self._epoch_sum, self._epoch_n = 0.0, 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._epoch_open = False
        parts = [self._where(trainer)]
        if self._epoch_n:
            parts.append(f"train/loss {float(self._epoch_sum) / self._epoch_n:.4f}")
        history = getattr(pl_module, "history", None) or []
        entry = history[-1] if history and history[-1].get("epoch") == trainer.current_epoch else None
        best = False
        if entry is not None:
            parts.append(format_metrics(entry))
            value = entry.get(self.monitor) if self.monitor else None
            if isinstance(value, int | float):
                better = self._best is None or (
                    value > self._best if self.mode == "max" else value < self._best
                )
                if better:
                    self._best, best = value, True
        parts.append(self._times(trainer))
        if best and self.max_epochs > 1:
            parts.append("(best)")
        log.info("  ".join(p for p in parts if p))
