"""A rich progress bar that reads the logged metrics every N training steps, not every step."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """``RichProgressBar`` whose metric columns (``train/loss`` ...) are refreshed every ``metrics_every_n_steps``
    training batches and at every epoch end.

    Reading the metrics turns the logged GPU tensors into Python floats: a host-device sync that, done after
    every step, keeps the host from queueing the next step while the GPU works (small backbones are
    host-bound, so that overlap is most of the speed). The bar itself still advances every batch.
    """

    def __init__(self, metrics_every_n_steps: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics_every_n_steps = max(1, int(metrics_every_n_steps))
        self._skip_metrics = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._skip_metrics = (batch_idx + 1) % self.metrics_every_n_steps != 0
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._skip_metrics = False

    def _update_metrics(self, trainer, pl_module) -> None:  # Lightning's hook for the metric columns
        if not self._skip_metrics:
            super()._update_metrics(trainer, pl_module)
