"""`MultiRCModule`: binary classification per answer option, scored with F1a (options) and EM (questions)."""

from __future__ import annotations

from torchmetrics import MaxMetric

from deepprompt.tasks.classification.module import ClassificationModule
from deepprompt.tasks.superglue.metrics import MultiRCMetric

MULTIRC_METRICS = ("f1a", "em")


class MultiRCModule(ClassificationModule):
    """``ClassificationModule`` (2 labels, ``val/acc``) plus ``val/f1a``, ``val/em`` and their ``_best``.

    Batches carry ``group``: the question each answer option belongs to (EM needs all options of a question).
    """

    def __init__(
        self,
        backbone: dict,
        method: dict,
        head: dict | None = None,
        optim: dict | None = None,
        gradient_checkpointing: bool = False,
        num_labels: int = 2,
        metrics: list[str] | tuple[str, ...] = ("acc", "f1a", "em"),
    ) -> None:
        own = [m for m in metrics if m in MULTIRC_METRICS]
        plain = [m for m in metrics if m not in MULTIRC_METRICS] or ["acc"]
        super().__init__(backbone, method, num_labels, plain, head, optim, gradient_checkpointing)
        self.multirc = MultiRCMetric()
        for name in own or MULTIRC_METRICS:
            self.val_best[name] = MaxMetric()

    def validation_step(self, batch, batch_idx):
        logits = super().validation_step(batch, batch_idx)
        self.multirc.update(batch["group"], logits.argmax(-1), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        values = self.compute_eval()
        values.update({f"val/{k}": v.item() for k, v in self.multirc.compute().items()})
        self.multirc.reset()
        self.record(values)
