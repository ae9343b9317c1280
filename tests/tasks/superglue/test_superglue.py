"""WiC / WSC / MultiRC framing and loaders, MultiRC F1a/EM, and COPA's multiple-choice shapes."""

from __future__ import annotations

import random

import pytest
import torch

from deepprompt.errors import ConfigError, DataFormatError
from deepprompt.tasks.registry import module_class
from deepprompt.tasks.superglue import (
    MultipleChoiceDataModule,
    MultiRCMetric,
    MultiRCModule,
    SuperGLUEDataModule,
    multirc_scores,
)
from deepprompt.tasks.superglue.copa import frame_copa
from deepprompt.tasks.superglue.data import frame_wic, frame_wsc
from tests.tasks.conftest import jsonl, multirc_rows, write_text

WIC = {
    "word": "bank",
    "sentence1": "He sat on the bank.",
    "sentence2": "The bank closed.",
    "label": True,
    "start1": 14,
    "end1": 18,
    "start2": 4,
    "end2": 8,
    "idx": 0,
}
WSC = {
    "text": "Mark told Pete many lies about himself .",
    "label": False,
    "idx": 0,
    "target": {"span1_index": 2, "span1_text": "Pete", "span2_index": 6, "span2_text": "himself"},
}


def test_wic_templates():
    assert frame_wic("f", 1, WIC, "word_prefix") == [
        ("bank: He sat on the bank.", "bank: The bank closed.", 1, 1)
    ]
    assert frame_wic("f", 1, WIC, "mark")[0][:2] == ("He sat on the *bank*.", "The *bank* closed.")
    assert frame_wic("f", 1, WIC, "question")[0][0].endswith(
        "Does bank have the same meaning in both sentences?"
    )
    hub = {**WIC, "label": 0}
    assert frame_wic("hub", 3, hub, "word_prefix")[0][2] == 0


def test_wsc_templates_local_and_hub_rows():
    assert frame_wsc("f", 1, WSC, "prefix") == [
        ("himself: Mark told Pete many lies about himself .", "Pete", 0, 1)
    ]
    assert frame_wsc("f", 1, WSC, "asterisk")[0][0] == "Mark told Pete many lies about *himself* ."
    flat = {"text": WSC["text"], "label": 1, **WSC["target"]}  # wsc.fixed on the hub: spans at top level
    assert frame_wsc("hub", 0, flat, "prefix")[0][1:3] == ("Pete", 1)
    bad = {**WSC, "target": {**WSC["target"], "span2_index": 40}}
    with pytest.raises(DataFormatError, match="f:7: span2_index 40 is outside"):
        frame_wsc("f", 7, bad, "asterisk")


@pytest.mark.parametrize("task", ["wic", "wsc", "multirc"])
def test_loaders_read_fixture_folders(task, task_data_dir, tokenizer_path):
    dm = SuperGLUEDataModule(task, tokenizer_path, data_dir=str(task_data_dir), batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 4 and set(batch["labels"].tolist()) <= {0, 1}
    if task == "multirc":  # 8 passages x 2 questions x 3 answers
        assert len(dm.dataset("train")) == 48 and "group" in batch
        assert module_class(dm) is MultiRCModule
        groups = [f["group"] for f in dm.dataset("train").features]
        assert groups[:6] == [0, 0, 0, 1, 1, 1] and max(groups) == 15
    else:
        assert dm.module_kwargs() == {"num_labels": 2, "metrics": ["acc"]}


@pytest.mark.parametrize(
    ("task", "row", "message"),
    [
        (
            "wic",
            '{"word": "x", "sentence1": "a", "label": true}',
            r"val.jsonl:2: field 'sentence2' is missing",
        ),
        (
            "wsc",
            '{"text": "a b", "label": "maybe", "target": {"span1_text": "a", "span2_text": "b", "span2_index": 1}}',
            r"val.jsonl:2: label 'maybe' is not a binary label",
        ),
        (
            "multirc",
            '{"idx": 1, "passage": {"text": "p", "questions": [{"question": "q"}]}}',
            r"val.jsonl:2: question 0 has no 'answers' list",
        ),
        ("wic", "{not json", r"val.jsonl:2: invalid JSON"),
    ],
)
def test_malformed_line_fails_with_file_and_line(tmp_path, tokenizer_path, task, row, message):
    good = {
        "wic": jsonl([{**WIC}]),
        "wsc": jsonl([WSC]),
        "multirc": jsonl(multirc_rows(1, random.Random(0))),
    }[task]
    write_text(tmp_path / task / "train.jsonl", good)
    write_text(tmp_path / task / "val.jsonl", good + row + "\n")
    dm = SuperGLUEDataModule(task, tokenizer_path, data_dir=str(tmp_path))
    with pytest.raises(DataFormatError, match=message):
        dm.setup("fit")


def test_unknown_template_is_a_config_error(tokenizer_path):
    with pytest.raises(ConfigError, match="choose one of"):
        SuperGLUEDataModule("wsc", tokenizer_path, data_dir=".", template="word_prefix")


def test_multirc_f1a_and_em_on_a_toy():
    groups = [0, 0, 0, 1, 1, 2]
    labels = [1, 0, 1, 0, 0, 1]
    preds = [1, 0, 0, 0, 0, 1]  # q0 misses one option; q1 and q2 fully right
    scores = multirc_scores(groups, preds, labels)
    assert scores["em"] == pytest.approx(2 / 3)
    assert scores["f1a"] == pytest.approx(2 * 1.0 * (2 / 3) / (1.0 + 2 / 3))  # p = 2/2, r = 2/3
    metric = MultiRCMetric()
    metric.update(torch.tensor(groups[:4]), torch.tensor(preds[:4]), torch.tensor(labels[:4]))
    metric.update(torch.tensor(groups[4:]), torch.tensor(preds[4:]), torch.tensor(labels[4:]))
    assert {k: v.item() for k, v in metric.compute().items()} == pytest.approx(scores)


def test_copa_framing_and_choice_shapes(task_data_dir, tokenizer_path):
    row = {
        "premise": "My body cast a shadow over the grass.",
        "choice1": "The sun was rising.",
        "choice2": "The grass was cut.",
        "question": "cause",
        "label": 0,
        "idx": 0,
    }
    assert frame_copa("f", 1, row) == (
        "My body cast a shadow over the grass because",
        [row["choice1"], row["choice2"]],
        0,
    )
    assert frame_copa("f", 1, {**row, "question": "effect"})[0].endswith("grass so")
    with pytest.raises(DataFormatError, match="f:4: label 2 is not 0 or 1"):
        frame_copa("f", 4, {**row, "label": 2})

    dm = MultipleChoiceDataModule("copa", tokenizer_path, data_dir=str(task_data_dir), batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    b, c, t = batch["input_ids"].shape
    assert (b, c) == (4, 2) and batch["attention_mask"].shape == (b, c, t) and batch["labels"].shape == (4,)

    from deepprompt.tasks.superglue import MultipleChoiceModule

    module = MultipleChoiceModule(
        backbone={
            "name": "tiny",
            "name_or_path": tokenizer_path,
            "pretrained": False,
            "config_overrides": {
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 64,
            },
        },
        method={"name": "ptuning_v2", "prompt": {"length": 4}},
        head={"pooling": "cls"},
    )
    scores = module(batch)
    assert scores.shape == (4, 2)
    loss = module.loss(batch)
    loss.backward()
    assert module.classifier.weight.grad is not None and module.classifier.weight.shape == (1, 32)
