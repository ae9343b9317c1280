"""The per-batch reseed draws the same numbers as ``torch.manual_seed``, without its per-call stack capture."""

from __future__ import annotations

import traceback
from types import SimpleNamespace

import torch

from deepprompt.callbacks import StepSeed
from deepprompt.callbacks.step_seed import step_seed


def _start_batch(callback: StepSeed, device: str, epoch: int = 1, batch_idx: int = 5) -> None:
    trainer = SimpleNamespace(global_rank=0, current_epoch=epoch)
    callback.on_train_batch_start(trainer, SimpleNamespace(device=torch.device(device)), None, batch_idx)


def test_reseed_draws_as_torch_manual_seed():
    torch.manual_seed(step_seed(42, 0, 1, 5))
    expected = torch.rand(8)
    torch.rand(3)  # the state moves on
    _start_batch(StepSeed(42), "cpu")
    assert torch.equal(torch.rand(8), expected)
    _start_batch(StepSeed(42), "cpu", batch_idx=6)
    assert not torch.equal(torch.rand(8), expected)


def test_reseed_on_cpu_captures_no_stack(monkeypatch):
    # torch.manual_seed queues a seed for each accelerator that is not initialised, formatting the caller's
    # stack each time: milliseconds of every training step
    calls = []
    original = traceback.format_stack
    monkeypatch.setattr(traceback, "format_stack", lambda *a, **k: calls.append(1) or original(*a, **k))
    _start_batch(StepSeed(42), "cpu")
    assert calls == []


def test_other_devices_take_torch_manual_seed(monkeypatch):
    seeds = []
    monkeypatch.setattr(torch, "manual_seed", seeds.append)
    _start_batch(StepSeed(42), "meta")
    assert seeds == [step_seed(42, 0, 1, 5)]
