"""The evaluation loss is the mean over examples (tokens for NER), whatever the batches: `RunningMean`."""

from __future__ import annotations

import math

import torch

from deepprompt.tasks.classification.module import ClassificationModule
from deepprompt.tasks.module import RunningMean
from tests.methods.test_methods import TINY


def test_running_mean_weights_each_value():
    mean = RunningMean()
    mean(torch.tensor(1.0), weight=3)  # a batch of 3 with mean loss 1
    mean(torch.tensor(4.0), weight=1)  # a last batch of 1
    assert mean.compute().item() == 1.75  # (3 * 1 + 4) / 4; the mean of the batch means would be 2.5
    mean.reset()
    mean(torch.tensor([1.0, 2.0]))  # elements of a tensor, weight 1 each
    mean(torch.tensor(float("nan")), weight=torch.tensor(0))  # a batch without labelled tokens adds nothing
    assert mean.compute().item() == 1.5
    mean(
        torch.tensor(float("nan")), weight=2
    )  # a NaN loss with weight shows up (the nan_guard stops the run)
    assert math.isnan(mean.compute().item())


def test_validation_loss_is_the_example_mean_whatever_the_batches():
    torch.manual_seed(0)
    module = ClassificationModule(
        backbone=TINY,
        method={"name": "ptuning_v2", "prompt": {"length": 2}},
        num_labels=2,
        head={"dropout": 0.0},
    ).eval()
    g = torch.Generator().manual_seed(1)
    batch = {
        "input_ids": torch.randint(1000, 2000, (4, 6), generator=g),
        "attention_mask": torch.ones(4, 6, dtype=torch.long),
        "labels": torch.tensor([0, 1, 1, 0]),
    }
    with torch.no_grad():
        per_example = torch.nn.functional.cross_entropy(
            module(batch).float(), batch["labels"], reduction="none"
        )
        module.validation_step({k: v[:3] for k, v in batch.items()}, 0)  # uneven batches: 3 + 1
        module.validation_step({k: v[3:] for k, v in batch.items()}, 1)
    got = module.compute_eval()["val/loss"]
    assert abs(got - per_example.mean().item()) < 1e-6
    assert (
        abs(got - (per_example[:3].mean() + per_example[3]).item() / 2) > 1e-4
    )  # not the mean of batch means


def test_one_value_of_weight_one_adds_as_the_general_form():
    # a training step's loss takes a shortcut (two adds); a tensor weight takes the general form
    values = [torch.tensor(0.25), torch.tensor(3.0, dtype=torch.bfloat16), torch.tensor(float("inf"))]
    short, general = RunningMean(), RunningMean()
    for value in values:
        short.update(value)
        general.update(value, weight=torch.tensor(1.0))
        assert torch.equal(short.total, general.total) and torch.equal(short.weight, general.weight)
    assert short.total.dtype == torch.float32 and short.weight.item() == 3.0
    short.update(torch.tensor(float("nan")))
    assert math.isnan(short.compute().item())
