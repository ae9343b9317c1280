"""`MultiRCModule`: binary classification per answer option, scored with F1a (options) and EM (questions)."""

from __future__ import annotations

from torchmetrics import MaxMetric

from deepprompt.metrics.multirc import MultiRCMetric
from deepprompt.modules.classification import ClassificationModule

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
        logits = self(batch).float()
        self.val_loss(self.loss_fn(logits, batch["labels"]))
        preds = logits.argmax(-1)
        self.val_metrics.update(preds, batch["labels"])
        self.multirc.update(batch["group"], preds, batch["labels"])

    def on_validation_epoch_end(self) -> None:
        values = {k: v.item() for k, v in self.val_metrics.compute().items()}
        values["val/loss"] = self.val_loss.compute().item()
        values.update({f"val/{k}": v.item() for k, v in self.multirc.compute().items()})
        self.val_metrics.reset()
        self.val_loss.reset()
        self.multirc.reset()
        if self.trainer.sanity_checking:
            return
        self.log_dict(values, prog_bar=True, sync_dist=False)
        for name, best in self.val_best.items():
            best(values[f"val/{name}"])
            self.log(f"val/{name}_best", best.compute(), prog_bar=False)
        self.history.append({"epoch": self.current_epoch, "step": self.global_step, **values})
