"""Prompt-only exports of P-Tuning v2 runs: ``prompts/best`` at each new best epoch, ``prompts/last`` at the end."""

from __future__ import annotations

from pathlib import Path

import lightning as L


class PromptExport(L.Callback):
    def __init__(self, dirpath: str, monitor: str = "val/acc", mode: str = "max"):
        self.dirpath = Path(dirpath)
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best: float | None = None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not hasattr(module, "export_prompts"):
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value) * self.sign
        if self.best is None or value > self.best:
            self.best = value
            module.export_prompts(self.dirpath / "best")

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero and hasattr(module, "export_prompts"):
            module.export_prompts(self.dirpath / "last")

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = state_dict.get("best")
