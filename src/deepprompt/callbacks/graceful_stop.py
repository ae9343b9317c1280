"""Stop training at a batch boundary after SIGTERM/SIGINT, with a checkpoint to resume from."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from deepprompt.runs import interrupt


class GracefulStop(Callback):
    """Turn a stop signal noted by :mod:`deepprompt.runs.interrupt` into a clean stop.

    While training runs, the signal handlers only note the signal (Lightning's own SIGTERM handler is replaced:
    it would stop with exit status 0). After the current batch, ``<dirpath>/<filename>.ckpt`` is saved at the
    point where :class:`StepCheckpoint` saves (a mid-epoch checkpoint that resumes exactly) and, once Lightning
    has logged that batch, :class:`deepprompt.runs.interrupt.RunInterrupted` unwinds the run. After an epoch's last batch the epoch's
    validation and end-of-epoch checkpoint come first and the run stops as the next epoch starts. A plain callback,
    not a ``Checkpoint``: Lightning would then drop its default checkpointing (``callbacks=none``).
    """

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self._saved = False

    def _listen(self, trainer: L.Trainer) -> None:
        interrupt.install_handlers(interrupt.slurm_requeue_signal(trainer))
        interrupt.STATE.deferred = True

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module) -> None:
        self._listen(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        self._listen(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        interrupt.STATE.deferred = False

    def _stop(self, checkpoint: str | None) -> None:
        state = interrupt.STATE
        state.deferred = False
        raise interrupt.RunInterrupted(state.signum, checkpoint=checkpoint, requeue=state.requeue)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if interrupt.STATE.signum is None or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        trainer.save_checkpoint(self.path)
        self._saved = True  # the run stops before the next batch, once Lightning has logged this one

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        if self._saved:
            self._saved = False
            self._stop(str(self.path))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        if interrupt.STATE.signum is not None:  # noted during the last batch or validation of the epoch
            self._stop(str(self.path) if self.path.is_file() else None)
