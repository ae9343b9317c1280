"""The start-up line of a run: how long from the process start to the first training step, by phase."""

from __future__ import annotations

import logging

from lightning.pytorch.callbacks import Callback

from deepprompt.runs.startup import StartupClock, release_collection

log = logging.getLogger("deepprompt.progress")


class StartupReport(Callback):
    """Marks ``data`` (the data module set up), the ``sanity`` span (Lightning's sanity check, when one runs) and
    ``loop`` (the first training batch about to run) on ``clock`` and logs its one line then, e.g. ``start-up:
    9.8 s from the process start to the first training step (python 0.9 s, config 0.4 s, imports 5.6 s, ...)``."""

    def __init__(self, clock: StartupClock) -> None:
        self.clock = clock
        self._reported = False

    def setup(self, trainer, pl_module, stage: str) -> None:  # after the data module's own setup
        self.clock.mark("data")

    def on_sanity_check_start(self, trainer, pl_module) -> None:
        self.clock.begin("sanity")

    def on_sanity_check_end(self, trainer, pl_module) -> None:
        self.clock.end("sanity")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._reported:
            return
        self._reported = True
        self.clock.mark("loop")
        release_collection()  # the collector, paused for the start-up, runs again
        if trainer.is_global_zero:
            log.info(self.clock.line())
