"""A CSV logger whose ``metrics.csv`` survives a resume: the resumed run appends to the run's history.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it starts in a folder that has one, so a resumed run
kept only what it logged itself. :class:`ResumableCSVLogger` keeps the file and its columns and appends.
Rows that the interrupted process logged after the checkpoint it resumes from (their ``step`` is at or past the
checkpoint's) are dropped at the resume by :class:`CSVHistoryOnResume`: the resumed run logs those steps again.

How epoch means behave across a resume: validation metrics, the best/last epochs and everything in
``metrics.json`` are those of the uninterrupted run, and so are per-step training rows. An epoch-level training
mean (``train/loss_epoch``) of the epoch a run resumed in averages only the batches trained after the resume
(the batches before it were accumulated by the process that was stopped); the other epochs' means are exact.
"""

from __future__ import annotations

import csv

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:  # Lightning's deletes metrics.csv here
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(next(csv.reader(file), []))

    def drop_from_step(self, step: int) -> int:
        """Remove saved rows whose ``step`` is ``>= step``; returns how many were removed."""
        if not self._fs.isfile(self.metrics_file_path):
            return 0
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            rows = list(csv.DictReader(file))
        kept = [row for row in rows if not row.get("step") or int(float(row["step"])) < step]
        if len(kept) < len(rows):
            with self._fs.open(self.metrics_file_path, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
        return len(rows) - len(kept)


class ResumableCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger`` (same arguments) appending to an existing ``metrics.csv`` instead of deleting it."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class CSVHistoryOnResume(Callback):
    """At a resume, drop the CSV rows logged after the checkpoint (the resumed run logs those steps again)."""

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        if not trainer.ckpt_path:
            return
        # the row of optimizer step g has step g - 1: rows at or past the restored global step come again
        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger) and isinstance(logger.experiment, _AppendingWriter):
                logger.experiment.drop_from_step(trainer.global_step)
