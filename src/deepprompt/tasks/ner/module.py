"""`TokenClassificationModule`: NER with a linear head per token; entity-level P/R/F1 on dev and test."""

from __future__ import annotations

import torch
from torch import nn

from deepprompt.data.base import IGNORE_INDEX
from deepprompt.tasks.module import RunningMean, TaskModule
from deepprompt.tasks.ner.metrics import EntityF1

SPLIT_PREFIX = ("val", "test")  # dataloader_idx 0: dev, 1: test (run as a second validation loader)


class TokenClassificationModule(TaskModule):
    """Logs ``val/{f1,precision,recall,loss}``, ``val/f1_best`` and, with a test loader, ``test/*``.

    Predictions are read at each word's first sub-token; words cut off by truncation count as ``O``
    against the full gold sentence (``word_labels``), so scores are over whole sentences as seqeval's.
    """

    best_metrics = ("f1",)

    def __init__(
        self,
        backbone: dict,
        method: dict,
        label_names: list[str],
        head: dict | None = None,
        optim: dict | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__(backbone, method, head, optim, gradient_checkpointing)
        self.save_hyperparameters()
        self.label_names = list(label_names)
        self.classifier = self.linear(self.hidden_size, len(self.label_names))
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
        self.entity = nn.ModuleList([EntityF1() for _ in SPLIT_PREFIX])
        self.eval_loss = nn.ModuleList([RunningMean() for _ in SPLIT_PREFIX])
        self.train()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.token_states(batch)))  # (B, T, num_labels)

    def loss(self, batch):
        logits = self(batch).float()
        return self.loss_fn(logits.flatten(0, 1), batch["labels"].flatten())

    def word_predictions(self, logits: torch.Tensor, batch) -> tuple[list[list[str]], list[list[str]]]:
        """Gold and predicted IOB2 tags per sentence (all its words)."""
        pred_ids = logits.argmax(-1).cpu()
        word_index = batch["word_index"].cpu()
        word_labels = batch["word_labels"].cpu()
        true, pred = [], []
        for row in range(pred_ids.shape[0]):
            gold = [self.label_names[i] for i in word_labels[row].tolist() if i >= 0]
            guess = ["O"] * len(gold)
            for position in (word_index[row] >= 0).nonzero().flatten().tolist():
                guess[word_index[row, position]] = self.label_names[pred_ids[row, position]]
            true.append(gold)
            pred.append(guess)
        return true, pred

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        logits = self(batch).float()
        labels = batch["labels"].flatten()
        # weighted by the labelled tokens (the loss is their mean): the token mean over the split, whatever the batches
        self.eval_loss[dataloader_idx](
            self.loss_fn(logits.flatten(0, 1), labels), weight=(labels != IGNORE_INDEX).sum()
        )
        self.entity[dataloader_idx].update(*self.word_predictions(logits, batch))

    def on_validation_epoch_end(self) -> None:
        values: dict[str, float] = {}
        for prefix, entity, loss in zip(SPLIT_PREFIX, self.entity, self.eval_loss, strict=True):
            if entity.update_count == 0:  # no test loader
                continue
            values.update({f"{prefix}/{k}": v.item() for k, v in entity.compute().items()})
            values[f"{prefix}/loss"] = loss.compute().item()
            entity.reset()
            loss.reset()
        self.record(values)

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self.validation_step(batch, batch_idx, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        values: dict[str, float] = {}
        for idx, (entity, loss) in enumerate(zip(self.entity, self.eval_loss, strict=True)):
            if entity.update_count == 0:
                continue
            values.update({f"test/{SPLIT_PREFIX[idx]}_{k}": v.item() for k, v in entity.compute().items()})
            values[f"test/{SPLIT_PREFIX[idx]}_loss"] = loss.compute().item()
            entity.reset()
            loss.reset()
        self.log_dict(values)
