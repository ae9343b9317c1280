"""Prompt-only exports of P-Tuning v2 runs: ``prompts/best`` at each new best epoch, ``prompts/last`` at the end.

A joint multi-task run (a module with ``task_monitor``) exports per task: ``prompts/best/<task>`` at each new best
of that task's own metric (``val/<task>/acc`` for ``monitor: val/acc``), ``prompts/last/<task>`` at the end.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L


class PromptExport(L.Callback):
    def __init__(self, dirpath: str, monitor: str = "val/acc", mode: str = "max"):
        self.dirpath = Path(dirpath)
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best: float | None = None
        self.task_best: dict[str, float] = {}

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not hasattr(module, "export_prompts"):
            return
        if hasattr(module, "task_monitor"):
            self._export_tasks(trainer, module)
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value) * self.sign
        if self.best is None or value > self.best:
            self.best = value
            module.export_prompts(self.dirpath / "best")

    def _export_tasks(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        better = []
        for task in module.tasks:
            key = module.task_monitor(task, self.monitor)
            value = trainer.callback_metrics.get(key)
            if value is None:
                continue
            # a task metric other than the monitor (fallback) is a score: higher is better
            sign = self.sign if key == f"val/{task}/{self.monitor.removeprefix('val/')}" else 1.0
            value = float(value) * sign
            if task not in self.task_best or value > self.task_best[task]:
                self.task_best[task] = value
                better.append(task)
        if better:
            module.export_prompts(self.dirpath / "best", tasks=better)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero and hasattr(module, "export_prompts"):
            module.export_prompts(self.dirpath / "last")

    def state_dict(self) -> dict:
        return {"best": self.best, "task_best": dict(self.task_best)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = state_dict.get("best")
        self.task_best = dict(state_dict.get("task_best") or {})
