"""`ClassificationModule`: a backbone adapted by a method (P-Tuning v2 by default) and a linear head on [CLS]."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MaxMetric

from deepprompt.tasks.classification.metrics import classification_metrics
from deepprompt.tasks.module import MODEL_INPUTS, RunningMean, TaskModule

__all__ = ["MODEL_INPUTS", "ClassificationModule"]


class ClassificationModule(TaskModule):
    """Sequence(-pair) classification; logs ``train/loss``, ``val/<metric>`` and ``val/<metric>_best``.

    Only plain config dicts enter the hyperparameters: the backbone is named there and built by `TaskModule`,
    never pickled. Checkpoints hold the trainable parameters only (prompts + head for P-Tuning v2).
    """

    def __init__(
        self,
        backbone: dict,
        method: dict,
        num_labels: int,
        metrics: list[str] | tuple[str, ...] = ("acc",),
        head: dict | None = None,
        optim: dict | None = None,
        gradient_checkpointing: bool = False,
    ):
        super().__init__(backbone, method, head, optim, gradient_checkpointing)
        self.save_hyperparameters()
        self.classifier = self.linear(self.hidden_size, num_labels)
        self.loss_fn = nn.CrossEntropyLoss()
        self.val_metrics = classification_metrics(list(metrics), num_labels).clone(prefix="val/")
        self.val_best = nn.ModuleDict({name: MaxMetric() for name in metrics})
        self.val_loss = RunningMean()
        # from_pretrained returns eval mode and Lightning keeps sub-module modes: train mode as the official code
        # (the frozen backbone's dropout stays active while the prompts train).
        self.train()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.pooled(batch)))  # (B, num_labels)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss_fn(self(batch).float(), batch["labels"])

    def validation_step(self, batch, batch_idx):
        logits = self(batch).float()
        # weighted by the batch size: the example mean, whatever the batches (uneven DDP shards, last batch)
        self.val_loss(self.loss_fn(logits, batch["labels"]), weight=logits.shape[0])
        self.val_metrics.update(logits.argmax(-1), batch["labels"])
        return logits

    def compute_eval(self, prefix: str = "val/") -> dict[str, float]:
        """This epoch's metrics (synchronised across processes by torchmetrics), then reset for the next."""
        values = {k.replace("val/", prefix): v.item() for k, v in self.val_metrics.compute().items()}
        values[f"{prefix}loss"] = self.val_loss.compute().item()
        self.val_metrics.reset()
        self.val_loss.reset()
        return values

    def on_validation_epoch_end(self) -> None:
        self.record(self.compute_eval())

    def test_step(self, batch, batch_idx):
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.compute_eval("test/"))
