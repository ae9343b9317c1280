"""The progress bar reads the logged metrics (a host-device sync on GPU) every N training steps, not every step."""

from __future__ import annotations

import lightning as L
import torch

from deepprompt.callbacks import ProgressBar


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch).pow(2).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.randn(12, 4), batch_size=1)


def _metric_reads(every: int, monkeypatch) -> int:
    reads = []
    original = ProgressBar.get_metrics
    monkeypatch.setattr(ProgressBar, "get_metrics", lambda self, *a: reads.append(1) or original(self, *a))
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[ProgressBar(metrics_every_n_steps=every)],
    )
    trainer.fit(_Tiny())
    return len(reads)


def test_metrics_are_read_every_n_training_steps(monkeypatch):
    every_step, every_fifth = _metric_reads(1, monkeypatch), _metric_reads(5, monkeypatch)
    assert every_step - every_fifth == 12 - 2  # 12 batches: read after batches 5 and 10 only


def test_default_config_uses_the_throttled_bar():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "conf" / "callbacks" / "rich_progress_bar.yaml").read_text()
    assert "deepprompt.callbacks.ProgressBar" in text
