"""`TaskModule`: what every task family shares — backbone + method, optimizer, history, prompt-only checkpoints.

A subclass adds its head (named ``classifier``, so prompt exports and ``deepprompt-eval`` load it the same
way for every family), ``loss(batch)`` and its evaluation; it reports an evaluation epoch through
``record(values)``, which logs, tracks ``val/<metric>_best`` and appends to ``history``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MaxMetric, Metric

from deepprompt.backbones import BackboneConfig, load_backbone
from deepprompt.config import HeadConfig, OptimConfig, structured
from deepprompt.methods import build_method, method_schema
from deepprompt.prompts import DeepPromptModel, save_prompts
from deepprompt.tasks.optim import build_optimizer
from deepprompt.tasks.pooling import pool

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class RunningMean(Metric):
    """A weighted mean of per-step values (losses) that never blocks on the GPU; synchronised across processes.

    ``update(value, weight=1)``: ``value`` a scalar or a tensor (each element weighted by ``weight``). No NaN
    check (a NaN shows up as a NaN mean; the nan_guard callback stops such a run). torchmetrics' ``MeanMetric``
    does not fit: by default it asks ``isnan(x).any()`` on every update, a host-device sync per training step
    that serialises the host's launches with the GPU's work (MiniLM steps are host-bound), and with
    ``nan_strategy="disable"`` (torchmetrics 1.9) it drops the weights, so a loss weighted by the batch size
    became the mean of the batch means (the last, smaller batch, or a DDP rank's shorter shard, over-counted).
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor | float, weight: torch.Tensor | float = 1.0) -> None:
        value = torch.as_tensor(value, device=self.total.device).detach().to(self.total.dtype)
        if value.ndim == 0 and isinstance(weight, int | float) and weight == 1:
            # one value of weight 1 (a training step's loss): the general form below reduces to these two adds,
            # without its device copy of the weight and its five other kernels
            self.total += value
            self.weight += 1.0
            return
        weight = torch.as_tensor(weight, device=self.total.device).to(self.total.dtype)
        weight = torch.broadcast_to(weight, value.shape)
        # a weight of 0 adds nothing, even to a NaN value (a batch with no labelled token has a NaN mean loss)
        self.total += torch.where(weight != 0, value * weight, 0.0).sum()
        self.weight += weight.sum()

    def compute(self) -> torch.Tensor:
        return self.total / self.weight


def typed_configs(
    backbone: Any, method: Any, head: Any = None, optim: Any = None
) -> tuple[BackboneConfig, Any, HeadConfig, OptimConfig]:
    """The run's typed sections (the method's schema follows ``method.name``); a bad key fails naming it."""
    return (
        structured(BackboneConfig, backbone, "backbone"),
        structured(method_schema(method["name"]), method, "method"),
        structured(HeadConfig, head, "head"),
        structured(OptimConfig, optim, "optim"),
    )


class TaskModule(L.LightningModule):
    strict_loading = False  # frozen backbone weights are not in our checkpoints; they come from `backbone`
    best_metrics: tuple[str, ...] = ()  # validation metrics (without 'val/') that get a `_best`

    def __init__(
        self,
        backbone: dict,
        method: dict,
        head: dict | None = None,
        optim: dict | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.backbone_cfg, self.method_cfg, self.head_cfg, self.optim_cfg = typed_configs(
            backbone, method, head, optim
        )
        self.encoder = self.build_encoder(self.load_model())
        if gradient_checkpointing:
            self.encoder.gradient_checkpointing_enable()
        self.hidden_size = self._backbone().config.hidden_size
        # a decoder-only backbone (causal self-attention): its inputs get position ids that skip the padding
        self.causal = is_causal(self._backbone())
        self.dropout = nn.Dropout(self.head_cfg.dropout)
        self.train_loss = RunningMean()
        self.val_best = nn.ModuleDict({name: MaxMetric() for name in self.best_metrics})
        self.history: list[dict[str, float]] = []

    @staticmethod
    def linear(hidden: int, out: int) -> nn.Linear:
        layer = nn.Linear(hidden, out)
        nn.init.normal_(layer.weight, std=0.02)
        nn.init.zeros_(layer.bias)
        return layer

    # -- encoder -----------------------------------------------------------------------------------------
    def load_model(self) -> nn.Module:
        """The model the method adapts: the backbone (a family may load another kind, e.g. a causal LM)."""
        return load_backbone(self.backbone_cfg)

    def build_encoder(self, backbone) -> nn.Module:
        """The backbone adapted by the method (a subclass may wrap it otherwise, e.g. one prompt set per task)."""
        return build_method(backbone, self.method_cfg)

    def _backbone(self):
        if isinstance(self.encoder, DeepPromptModel):
            return self.encoder.model
        if hasattr(self.encoder, "backbone_parameters"):  # peft methods: the wrapped backbone
            return self.encoder.backbone
        return self.encoder.base_model

    def _backbone_parameters(self):
        """The backbone's own weights (not adapter weights a method put inside it, e.g. LoRA's)."""
        own = getattr(self.encoder, "backbone_parameters", None)
        return own() if own is not None else self._backbone().parameters()

    def encode(self, batch: dict[str, torch.Tensor]):
        inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
        if self.causal and "attention_mask" in inputs:
            inputs["position_ids"] = self.text_positions(inputs["attention_mask"])
        return self.encoder(**inputs)

    def text_positions(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) position ids of a decoder's tokens that count real tokens only: 0 at the first one, whichever side
        the padding is on (a rotary or learned position then means the same with and without padding).

        Input prompts (prompt_tuning, ptuning_v1) prepend m virtual tokens, which take positions 0..m-1 and shift
        the text by m, as without padding; deep prompts and peft prefix keys have no position of their own.
        """
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        virtual = getattr(self.encoder, "cls_index", 0)
        if virtual:
            head = torch.arange(virtual, device=mask.device).expand(mask.shape[0], virtual)
            positions = torch.cat([head, positions + virtual], dim=1)
        return positions

    def token_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, hidden) aligned with ``input_ids``; a method that prepends virtual tokens has them dropped."""
        states = self.encode(batch).last_hidden_state
        length = batch["input_ids"].shape[1]
        return states[:, -length:] if states.shape[1] > length else states

    def pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, hidden): the pooler output (head.pooling=pooler, when the backbone has one) or [CLS]'s state."""
        return pool(self.encode(batch), batch, self.head_cfg.pooling)

    def parameter_counts(self) -> dict[str, Any]:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        backbone = sum(p.numel() for p in self._backbone_parameters())
        counts = {
            "trainable": trainable,
            "backbone": backbone,
            "total": sum(p.numel() for p in self.parameters()),
            "trainable_share": trainable / backbone,
        }
        if isinstance(self.encoder, DeepPromptModel):  # per-layer lengths make per-layer budgets differ
            counts["prompt_per_layer"] = {
                str(k): v for k, v in self.encoder.prompt_encoder.per_layer_counts().items()
            }
        return counts

    # -- training ----------------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.train_loss.update(loss.detach())  # not Metric.forward: it also computes a per-batch value
        # Lightning writes step metrics every `trainer.log_every_n_steps` steps only; a `self.log` call costs host
        # time on every step (and the lr, a float, becomes a new device tensor), for values nobody reads
        if _writes_step_logs(self.trainer):
            self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
            self.log(
                "train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False
            )
        return loss

    # CUDA graphs (method.compile=reduce-overhead) reuse their output buffers: each step must say it is a new one;
    # so do method.cuda_graphs' (a forward whose backward never ran must not block the next step's replays)
    def _new_graph_step(self) -> None:
        if getattr(self.method_cfg, "compile", "none") == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        graphs = getattr(self.encoder, "graphs", None)
        if graphs is not None:
            graphs.new_step()

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self._new_graph_step()

    def on_validation_batch_start(self, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._new_graph_step()

    def on_test_batch_start(self, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._new_graph_step()

    def on_predict_batch_start(self, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._new_graph_step()

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.train_loss.compute())
        self.train_loss.reset()

    def record(self, values: dict[str, float]) -> None:
        """Log one evaluation epoch (not the sanity check), update the bests, append to ``history``."""
        if self.trainer.sanity_checking:
            return
        self.log_dict(values, prog_bar=True, sync_dist=False)  # metrics are synchronised by torchmetrics
        for name, best in self.val_best.items():
            best(values[f"val/{name}"])
            self.log(f"val/{name}_best", best.compute(), prog_bar=False)
        self.history.append({"epoch": self.current_epoch, "step": self.global_step, **values})

    def configure_optimizers(self):
        return build_optimizer(
            self, self.method_cfg.lr, self.optim_cfg, self.trainer.estimated_stepping_batches
        )

    # -- checkpoints: trainable parameters only --------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        keep |= {name for name, _ in self.named_buffers() if not name.startswith("encoder.")}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["deepprompt_history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("deepprompt_history", []))
        for name, best in self.val_best.items():
            for entry in self.history:
                if f"val/{name}" in entry:
                    best.update(entry[f"val/{name}"])

    def export_prompts(self, directory) -> None:
        """Prompt-only export (safetensors + JSON) with the ``classifier`` head, for P-Tuning v2 runs."""
        if isinstance(self.encoder, DeepPromptModel):
            head = {f"classifier.{k}": v for k, v in self.classifier.state_dict().items()}
            save_prompts(self.encoder, directory, extra=head)


def is_causal(model: nn.Module) -> bool:
    """Whether ``model``'s self-attention is causal (Llama, GPT-2, Qwen ...: each token sees the ones before it)."""
    return any(getattr(m, "is_causal", False) is True for m in model.modules())


def _writes_step_logs(trainer) -> bool:
    """Whether Lightning writes this training step's metrics (its own rule: every ``log_every_n_steps``)."""
    connector = getattr(
        trainer, "_logger_connector", None
    )  # private in Lightning 2.x; unknown: log every step
    return True if connector is None else bool(connector.should_update_logs)
