"""`MultiTaskModule`: several classification tasks trained jointly on one frozen backbone (P-Tuning v2).

One prompt set per task (`MultiTaskDeepPromptModel`, the ``method.prompt`` config for every task) and one
linear head per task (``heads.<task>``). A batch carries ``task_ids``; a mixed batch runs in one forward pass
with each row's own prompts, and each row goes through its own task's head. The loss is the mean over the
batch's rows of each row's cross-entropy (a homogeneous batch: exactly the single-task loss).

Validation runs one loader per task and logs ``val/<task>/<metric>`` (``acc``, CB's ``f1_macro``, ``loss``),
``val/<task>/<metric>_best``, and the unweighted mean over tasks ``val/<metric>`` for the metrics every task
has (``val/acc``, ``val/loss``), so ``monitor: val/acc`` picks the checkpoint by the task average.

Checkpoints hold the trainable parameters only (every task's prompts and head). Prompt exports are per task,
``<dir>/<task>/``, in the single-task format with the head as ``classifier.*``: each loads alone with
`load_prompts` or ``deepprompt-eval checkpoint=<dir>/<task>`` into a single-task run of that task. Since the
tasks share no trainable parameter, each task's prompts at its own best epoch is a valid model for that task:
`PromptExport` writes ``prompts/best/<task>`` at every new best of ``val/<task>/<metric>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchmetrics import MaxMetric

from deepprompt.errors import ConfigError
from deepprompt.prompts.multitask import MultiTaskDeepPromptModel, save_task_prompts
from deepprompt.tasks.classification.metrics import classification_metrics
from deepprompt.tasks.module import MODEL_INPUTS, RunningMean, TaskModule
from deepprompt.utils.history import best_and_last


class MultiTaskModule(TaskModule):
    def __init__(
        self,
        backbone: dict,
        method: dict,
        tasks: dict[str, dict[str, Any]],
        head: dict | None = None,
        optim: dict | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        if not tasks:
            raise ConfigError("MultiTaskModule needs at least one task")
        self.task_specs = {str(t): dict(spec) for t, spec in tasks.items()}  # read by build_encoder
        super().__init__(backbone, method, head, optim, gradient_checkpointing)
        self.save_hyperparameters()
        self.tasks = list(self.task_specs)
        self.heads = nn.ModuleDict(
            {t: self.linear(self.hidden_size, spec["num_labels"]) for t, spec in self.task_specs.items()}
        )
        self.loss_fn = nn.CrossEntropyLoss(reduction="sum")
        self.val_metrics = nn.ModuleDict(
            {
                t: classification_metrics(list(spec.get("metrics", ("acc",))), spec["num_labels"])
                for t, spec in self.task_specs.items()
            }
        )
        self.val_losses = nn.ModuleDict({t: RunningMean() for t in self.tasks})
        self.average_metrics = [
            m
            for m in self.task_specs[self.tasks[0]].get("metrics", ("acc",))
            if all(m in spec.get("metrics", ("acc",)) for spec in self.task_specs.values())
        ]
        best = list(self.average_metrics) + [
            f"{t}/{m}" for t, spec in self.task_specs.items() for m in spec.get("metrics", ("acc",))
        ]
        # ModuleDict keys cannot hold '/': `record` reads ``best_metrics`` names, the dict maps them
        self.best_metrics = tuple(best)
        self.val_best = _SlashDict({name: MaxMetric() for name in best})
        self.train()  # as ClassificationModule: the frozen backbone's dropout stays active while prompts train

    # -- encoder -----------------------------------------------------------------------------------------
    def build_encoder(self, backbone) -> nn.Module:
        cfg = self.method_cfg
        if cfg.name != "ptuning_v2":
            raise ConfigError(
                f"joint multi-task training (data=multitask) trains P-Tuning v2 prompts per task; "
                f"method={cfg.name} is not supported (use method=ptuning_v2, or single-task runs)"
            )
        if cfg.layer_lr.profile != "none":
            raise ConfigError(
                "method.layer_lr is not supported with data=multitask; set method.layer_lr.profile=none"
            )
        return MultiTaskDeepPromptModel(backbone, {t: cfg.prompt for t in self.task_specs})

    def _backbone(self):
        return self.encoder.model

    def encode(self, batch: dict[str, torch.Tensor]):
        return self.encoder(batch["task_ids"], **{k: batch[k] for k in MODEL_INPUTS if k in batch})

    def parameter_counts(self) -> dict[str, Any]:
        counts = super().parameter_counts()
        per_task = {}
        for task, encoder in self.encoder.encoders.items():
            prompt = sum(p.numel() for p in encoder.parameters())
            head = sum(p.numel() for p in self.heads[task].parameters())
            per_task[task] = {
                "trainable": prompt + head,
                "prompt": prompt,
                "head": head,
                "trainable_share": (prompt + head) / counts["backbone"],
                "prompt_per_layer": {str(k): v for k, v in encoder.per_layer_counts().items()},
            }
        counts["per_task"] = per_task
        return counts

    def on_fit_start(self) -> None:
        # A batch updates only the tasks it holds (homogeneous: one): DDP must be told that parameters may go
        # unused in a step, or it fails at the first step with an error about unfinished reductions.
        strategy = self.trainer.strategy
        if self.trainer.world_size > 1 and not getattr(strategy, "_ddp_kwargs", {}).get(
            "find_unused_parameters", False
        ):
            raise ConfigError(
                "joint multi-task training under DDP needs trainer.strategy.find_unused_parameters=true "
                "(each step updates only the tasks in its batch)"
            )

    # -- forward and loss --------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{task: (rows, logits)}`` for the tasks present in the batch (rows: indices into the batch)."""
        pooled = self.dropout(self.pooled(batch))
        task_ids = batch["task_ids"]
        out = {}
        for t in sorted(set(task_ids.tolist())):
            rows = (task_ids == t).nonzero().squeeze(1)
            task = self.tasks[t]
            out[task] = (rows, self.heads[task](pooled[rows]))
        return out

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for rows, logits in self(batch).values():
            total = total + self.loss_fn(logits.float(), batch["labels"][rows])
        return total / batch["task_ids"].shape[0]

    # -- evaluation --------------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        for task, (rows, logits) in self(batch).items():
            logits = logits.float()
            labels = batch["labels"][rows]
            self.val_losses[task](self.loss_fn(logits, labels) / len(rows), weight=len(rows))
            self.val_metrics[task].update(logits.argmax(-1), labels)

    def compute_eval(self, prefix: str = "val/") -> dict[str, float]:
        values: dict[str, float] = {}
        for task in self.tasks:
            values |= {f"{prefix}{task}/{k}": v.item() for k, v in self.val_metrics[task].compute().items()}
            values[f"{prefix}{task}/loss"] = self.val_losses[task].compute().item()
            self.val_metrics[task].reset()
            self.val_losses[task].reset()
        for metric in [*self.average_metrics, "loss"]:
            values[f"{prefix}{metric}"] = sum(values[f"{prefix}{t}/{metric}"] for t in self.tasks) / len(
                self.tasks
            )
        return values

    def on_validation_epoch_end(self) -> None:
        self.record(self.compute_eval())

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self.validation_step(batch, batch_idx, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.compute_eval("test/"))

    # -- per-task results and exports ----------------------------------------------------------------------
    def task_monitor(self, task: str, monitor: str) -> str:
        """``val/<task>/<m>`` for the run's ``monitor`` ``val/<m>``; a metric the task lacks: its first metric."""
        name = monitor.removeprefix("val/")
        metrics = [*self.task_specs[task].get("metrics", ("acc",)), "loss"]
        return f"val/{task}/{name if name in metrics else metrics[0]}"

    def task_summaries(self, monitor: str, mode: str = "max") -> dict[str, dict[str, Any]]:
        """Per task: best (by the task's own monitor) and last epoch, keys as a single-task run's (``val/acc``)."""
        out = {}
        for task in self.tasks:
            key = self.task_monitor(task, monitor)
            # a fallback metric (the task lacks the monitored one) is a score: higher is better
            mode_t = mode if key == f"val/{task}/{monitor.removeprefix('val/')}" else "max"
            prefix = f"val/{task}/"
            history = [
                {
                    "epoch": e["epoch"],
                    "step": e["step"],
                    **{f"val/{k.removeprefix(prefix)}": v for k, v in e.items() if k.startswith(prefix)},
                }
                for e in self.history
                if key in e
            ]
            best, last = best_and_last(history, "val/" + key.removeprefix(prefix), mode_t)
            out[task] = {"monitor": key, "best": best, "last": last}
        return out

    def export_prompts(self, directory, tasks: list[str] | None = None) -> None:
        """Per task ``<directory>/<task>/``: its prompts and head (``classifier.*``), single-task format."""
        for task in tasks or self.tasks:
            head = {f"classifier.{k}": v for k, v in self.heads[task].state_dict().items()}
            save_task_prompts(self.encoder, task, Path(directory) / task, extra=head)


class _SlashDict(nn.Module):
    """A ModuleDict whose keys may hold '/' (stored with '__'); ``items()`` gives the original keys."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        super().__init__()
        self.inner = nn.ModuleDict({k.replace("/", "__"): m for k, m in modules.items()})

    def items(self):
        return [(k.replace("__", "/"), m) for k, m in self.inner.items()]
