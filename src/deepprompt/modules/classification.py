"""`ClassificationModule`: a backbone adapted by a method (P-Tuning v2 by default) and a linear head on [CLS]."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from deepprompt.backbones import BackboneConfig, load_backbone
from deepprompt.config import HeadConfig, OptimConfig, structured
from deepprompt.methods import build_method, method_schema
from deepprompt.modules.metrics import classification_metrics
from deepprompt.modules.optim import build_optimizer
from deepprompt.prompts import DeepPromptModel, save_prompts

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ClassificationModule(L.LightningModule):
    """Sequence classification; logs ``train/loss``, ``val/<metric>`` and ``val/<metric>_best``.

    Only plain config dicts enter the hyperparameters: the backbone is named there and built here, never pickled.
    Checkpoints hold the trainable parameters only (prompts + head for P-Tuning v2).
    """

    strict_loading = False  # frozen backbone weights are not in our checkpoints; they come from `backbone`

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
        super().__init__()
        self.save_hyperparameters()
        self.backbone_cfg = structured(BackboneConfig, backbone, "backbone")
        self.method_cfg = structured(method_schema(method["name"]), method, "method")
        self.head_cfg = structured(HeadConfig, head, "head")
        self.optim_cfg = structured(OptimConfig, optim, "optim")

        self.encoder = build_method(load_backbone(self.backbone_cfg), self.method_cfg)
        if gradient_checkpointing:
            self.encoder.gradient_checkpointing_enable()
        hidden = self._backbone().config.hidden_size
        self.dropout = nn.Dropout(self.head_cfg.dropout)
        self.classifier = nn.Linear(hidden, num_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

        self.loss_fn = nn.CrossEntropyLoss()
        self.train_loss = MeanMetric()
        self.val_metrics = classification_metrics(list(metrics), num_labels).clone(prefix="val/")
        self.val_best = nn.ModuleDict({name: MaxMetric() for name in metrics})
        self.val_loss = MeanMetric()
        self.history: list[
            dict[str, float]
        ] = []  # one entry per validation epoch: {"epoch": e, "val/acc": ...}
        # from_pretrained returns eval mode and Lightning keeps sub-module modes: train mode as the official code
        # (the frozen backbone's dropout stays active while the prompts train).
        self.train()

    # -- model -----------------------------------------------------------------------------------------
    def _backbone(self):
        if isinstance(self.encoder, DeepPromptModel):
            return self.encoder.model
        if hasattr(self.encoder, "backbone_parameters"):  # peft methods (`PeftEncoder`): the wrapped backbone
            return self.encoder.backbone
        return self.encoder.base_model

    def _backbone_parameters(self):
        """The backbone's own weights (without adapter weights that a method put inside it, e.g. LoRA's)."""
        own = getattr(self.encoder, "backbone_parameters", None)
        return own() if own is not None else self._backbone().parameters()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
        out = self.encoder(**inputs)
        if self.head_cfg.pooling == "pooler" and getattr(out, "pooler_output", None) is not None:
            pooled = out.pooler_output  # (B, hidden)
        else:
            # (B, hidden): the [CLS] / <s> position; after input prompts (prompt_tuning, ptuning_v1) that is
            # index m, past the virtual tokens (their `pooler_output` is the pooler on that token too)
            pooled = out.last_hidden_state[:, getattr(self.encoder, "cls_index", 0)]
        return self.classifier(self.dropout(pooled))  # (B, num_labels)

    def parameter_counts(self) -> dict[str, float]:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        backbone = sum(p.numel() for p in self._backbone_parameters())
        return {
            "trainable": trainable,
            "backbone": backbone,
            "total": sum(p.numel() for p in self.parameters()),
            "trainable_share": trainable / backbone,
        }

    # -- steps -----------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        loss = self.loss_fn(self(batch).float(), batch["labels"])
        self.train_loss(loss.detach())
        self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.train_loss.compute())
        self.train_loss.reset()

    def validation_step(self, batch, batch_idx):
        logits = self(batch).float()
        # weighted by the batch size: the example mean, whatever the batches (uneven DDP shards, last batch)
        self.val_loss(self.loss_fn(logits, batch["labels"]), weight=logits.shape[0])
        self.val_metrics.update(logits.argmax(-1), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        values = {k: v.item() for k, v in self.val_metrics.compute().items()}
        values["val/loss"] = self.val_loss.compute().item()
        self.val_metrics.reset()
        self.val_loss.reset()
        if self.trainer.sanity_checking:
            return  # the sanity check's two batches are no epoch: keep them out of best/last
        self.log_dict(values, prog_bar=True, sync_dist=False)  # already synchronised by torchmetrics
        for name, best in self.val_best.items():
            best(values[f"val/{name}"])
            self.log(f"val/{name}_best", best.compute(), prog_bar=False)
        self.history.append({"epoch": self.current_epoch, "step": self.global_step, **values})

    def test_step(self, batch, batch_idx):
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        values = {k.replace("val/", "test/"): v.item() for k, v in self.val_metrics.compute().items()}
        values["test/loss"] = self.val_loss.compute().item()
        self.val_metrics.reset()
        self.val_loss.reset()
        self.log_dict(values)

    def configure_optimizers(self):
        return build_optimizer(
            self, self.method_cfg.lr, self.optim_cfg, self.trainer.estimated_stepping_batches
        )

    # -- checkpoints: trainable parameters only ------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        keep |= {name for name, _ in self.named_buffers() if not name.startswith("encoder.")}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["deepprompt_history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("deepprompt_history", []))
        for name, best in self.val_best.items():  # metric states are not checkpointed: rebuild the maxima
            for entry in self.history:
                best.update(entry[f"val/{name}"])

    def export_prompts(self, directory) -> None:
        """Prompt-only export (safetensors + JSON) with the classifier head, for P-Tuning v2 runs."""
        if isinstance(self.encoder, DeepPromptModel):
            head = {f"classifier.{k}": v for k, v in self.classifier.state_dict().items()}
            save_prompts(self.encoder, directory, extra=head)
