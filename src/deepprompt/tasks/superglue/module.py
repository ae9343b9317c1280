"""`MultipleChoiceModule` (COPA): one score per (context, choice) from a shared linear head, softmax over choices."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from deepprompt.tasks.module import RunningMean, TaskModule


class MultipleChoiceModule(TaskModule):
    """Inputs ``(B, C, T)`` are flattened to ``(B*C, T)``, pooled, scored by ``Linear(hidden, 1)`` -> ``(B, C)``;
    cross-entropy over the choices. Logs ``val/acc``, ``val/loss``, ``val/acc_best``."""

    best_metrics = ("acc",)

    def __init__(
        self,
        backbone: dict,
        method: dict,
        num_choices: int = 2,
        head: dict | None = None,
        optim: dict | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__(backbone, method, head, optim, gradient_checkpointing)
        self.save_hyperparameters()
        self.classifier = self.linear(self.hidden_size, 1)
        self.loss_fn = nn.CrossEntropyLoss()
        self.val_acc = MulticlassAccuracy(num_classes=num_choices, average="micro")
        self.val_loss = RunningMean()
        self.train()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        b, c, t = batch["input_ids"].shape
        flat = {k: v.reshape(b * c, t) for k, v in batch.items() if v.dim() == 3}
        scores = self.classifier(self.dropout(self.pooled(flat)))  # (B*C, 1)
        return scores.view(b, c)

    def loss(self, batch):
        return self.loss_fn(self(batch).float(), batch["labels"])

    def validation_step(self, batch, batch_idx):
        scores = self(batch).float()
        # weighted by the batch size: the example mean, whatever the batches (uneven DDP shards, last batch)
        self.val_loss(self.loss_fn(scores, batch["labels"]), weight=scores.shape[0])
        self.val_acc.update(scores.argmax(-1), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        values = {"val/acc": self.val_acc.compute().item(), "val/loss": self.val_loss.compute().item()}
        self.val_acc.reset()
        self.val_loss.reset()
        self.record(values)
