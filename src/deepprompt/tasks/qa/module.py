"""`QuestionAnsweringModule`: extractive QA, a start/end linear head per token, SQuAD EM/F1 after post-processing."""

from __future__ import annotations

import torch
from torch import nn

from deepprompt.data.base import SplitView
from deepprompt.tasks.module import TaskModule
from deepprompt.tasks.qa.data import QADataset, postprocess_predictions
from deepprompt.tasks.qa.metrics import squad_scores


class QuestionAnsweringModule(TaskModule):
    """Logs ``val/exact_match`` and ``val/f1`` (percent, official normalisation) and their ``_best``.

    Window logits are collected during validation and post-processed at the epoch end against the examples and
    offsets of ``validation``, the split the data module reads (single process: under DDP each rank scores the
    windows it saw).
    """

    best_metrics = ("f1", "exact_match")

    def __init__(
        self,
        backbone: dict,
        method: dict,
        head: dict | None = None,
        optim: dict | None = None,
        gradient_checkpointing: bool = False,
        n_best: int = 20,
        max_answer_length: int = 30,
        version_2_with_negative: bool = False,
        null_score_diff_threshold: float = 0.0,
        split_note: str | None = None,
        validation: SplitView[QADataset] | None = None,
    ) -> None:
        super().__init__(backbone, method, head, optim, gradient_checkpointing)
        self.save_hyperparameters(ignore=["validation"])
        self.validation = validation
        self.classifier = self.linear(self.hidden_size, 2)  # start and end logits
        self.loss_fn = nn.CrossEntropyLoss()
        self._logits: dict[int, tuple] = {}
        self.train()

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classifier(self.dropout(self.token_states(batch))).float()  # (B, T, 2)
        mask = batch["attention_mask"] == 0 if "attention_mask" in batch else None
        start, end = logits.unbind(-1)
        if mask is not None:
            start, end = start.masked_fill(mask, -1e4), end.masked_fill(mask, -1e4)
        return start, end

    def loss(self, batch):
        start, end = self(batch)
        width = start.shape[1]
        s = batch["start_positions"].clamp(0, width - 1)
        e = batch["end_positions"].clamp(0, width - 1)
        return (self.loss_fn(start, s) + self.loss_fn(end, e)) / 2

    def validation_step(self, batch, batch_idx):
        start, end = self(batch)
        for row, feature in enumerate(batch["feature_index"].tolist()):
            self._logits[feature] = (start[row].cpu().numpy(), end[row].cpu().numpy())

    def on_validation_epoch_end(self) -> None:
        logits, self._logits = self._logits, {}
        if self.validation is None:
            raise RuntimeError(
                "QuestionAnsweringModule has no validation split to score: build it with the data module's "
                "module_kwargs() (deepprompt.runs.build does)"
            )
        data = self.validation.data
        hp = self.hparams
        predictions = postprocess_predictions(
            data,
            logits,
            hp.n_best,
            hp.max_answer_length,
            hp.version_2_with_negative,
            hp.null_score_diff_threshold,
        )
        references = {e["id"]: e["answers"]["text"] for e in data.examples}
        scores = squad_scores(predictions, references)
        self.record({f"val/{k}": v for k, v in scores.items()} | {"val/questions": float(len(predictions))})
