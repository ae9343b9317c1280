"""Mid-epoch ``last.ckpt`` every N optimizer steps, so a killed run loses at most N steps."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint


class StepCheckpoint(Checkpoint):
    """Save ``<dirpath>/<filename>.ckpt`` every ``every_n_train_steps`` optimizer steps (None or 0: never).

    The last batch of an epoch is left to the end-of-epoch checkpoint (``ModelCheckpoint(save_last=True)``
    after validation): a checkpoint taken between the last batch and validation would resume past that
    epoch's validation. Subclassing ``Checkpoint`` makes Lightning run it after the other callbacks (e.g.
    :class:`NanGuard`). The checkpoint holds what every Lightning checkpoint holds (trainable parameters,
    optimizer, LR scheduler, loop progress, callback states) plus the train loader's position
    (:class:`deepprompt.runs.resume.ResumableDataLoader`).
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None, filename: str = "last") -> None:
        if every_n_train_steps is not None and every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0 or null, got {every_n_train_steps}")
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = every_n_train_steps
        self.filename = filename
        self.last_model_path = ""
        self._last_step = -1

    @property
    def path(self) -> Path:
        return self.dirpath / f"{self.filename}.ckpt"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        n = self.every_n_train_steps
        step = trainer.global_step
        if not n or step == 0 or step % n or step == self._last_step or trainer.sanity_checking:
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        self._last_step = step
        trainer.save_checkpoint(self.path)
        self.last_model_path = str(self.path)
