"""MultiTaskDataModule's construction: the per-task options it accepts and the errors that list them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from deepprompt.errors import ConfigError
from deepprompt.tasks.classification import ClassificationDataModule
from deepprompt.tasks.multitask.data import MultiTaskDataModule

# a ClassificationDataModule option each; a new option of that class belongs here once it works per task
PER_TASK = [
    "batch_size",
    "cache_dir",
    "data_dir",
    "eval_batch_size",
    "group_by_length",
    "label_map",
    "limit_eval_examples",
    "limit_train_examples",
    "max_seq_length",
    "num_workers",
    "pad_to_multiple_of",
    "seed",
]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def test_unknown_per_task_key_lists_the_keys_per_task_accepts(benchmark_dir, tokenizer_path):
    with pytest.raises(ConfigError) as info:
        MultiTaskDataModule(
            tasks=["rte", "cb"],
            tokenizer=tokenizer_path,
            data_dir=str(benchmark_dir),
            per_task={"cb": {"max_len": 64, "label_map": {0: "entailment"}}},
        )
    assert str(info.value) == f"data.per_task.cb: unknown keys ['max_len']; valid: {PER_TASK}"
    # one backbone, one vocabulary: no task reads with a tokenizer of its own
    with pytest.raises(ConfigError, match=r"data.per_task.cb: unknown keys \['tokenizer'\]"):
        MultiTaskDataModule(
            tasks=["rte", "cb"],
            tokenizer=tokenizer_path,
            data_dir=str(benchmark_dir),
            per_task={"cb": {"tokenizer": tokenizer_path}},
        )


def test_per_task_label_map_says_what_one_tasks_numbered_labels_mean(tmp_path, tokenizer_path):
    """A CB file numbered in MNLI's order next to an RTE file with named labels: only CB needs the map."""
    rte = [{"premise": "p", "hypothesis": "h", "label": "entailment", "idx": 0}]
    cb = [{"premise": "p", "hypothesis": f"h{i}", "label": i, "idx": i} for i in (0, 1, 2)]
    for split in ("train", "val"):
        _jsonl(tmp_path / "rte" / f"{split}.jsonl.gz", rte)
        _jsonl(tmp_path / "cb" / f"{split}.jsonl.gz", cb)
    mnli_order = {0: "entailment", 1: "neutral", 2: "contradiction"}
    dm = MultiTaskDataModule(
        tasks=["rte", "cb"],
        tokenizer=tokenizer_path,
        data_dir=str(tmp_path),
        per_task={"cb": {"label_map": mnli_order}},
    )
    dm.setup("fit")
    # CB's label ids: entailment 0, contradiction 1, neutral 2
    assert dm.task_modules["cb"].dataset("train").labels == [0, 2, 1]
    assert dm.task_modules["rte"].label_map == {}


def test_the_tokenizer_is_loaded_once_for_all_tasks_and_features_are_each_tasks_own(
    benchmark_dir, tokenizer_path, monkeypatch
):
    loads = []
    real = AutoTokenizer.from_pretrained

    def counted(*args, **kwargs):
        loads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", counted)
    tasks = ["rte", "cb", "sst2"]
    dm = MultiTaskDataModule(
        tasks=tasks,
        tokenizer=tokenizer_path,
        data_dir=str(benchmark_dir),
        max_seq_length=64,
        per_task={"cb": {"max_seq_length": 12}},  # truncates CB's pairs (up to ~20 tokens)
    )
    assert loads == [tokenizer_path]
    assert all(m.tokenizer is dm.tokenizer for m in dm.task_modules.values())
    dm.setup("fit")
    assert len(loads) == 1

    truncated = False
    for task in tasks:
        length = 12 if task == "cb" else 64
        alone = ClassificationDataModule(
            task=task, tokenizer=tokenizer_path, data_dir=str(benchmark_dir), max_seq_length=length
        )
        alone.setup("fit")
        for split in ("train", "validation"):
            features = dm.task_modules[task].dataset(split).features
            assert features == alone.dataset(split).features, (task, split)
            truncated |= any(len(f["input_ids"]) == 12 for f in features) and task == "cb"
        assert dm.collators[task].collator.pad_token_id == alone.collator.pad_token_id
    assert truncated
    assert len(loads) == 1 + len(tasks)  # the single-task modules: one each


def test_a_per_task_length_beyond_the_tokenizers_limit_fails_on_the_one_load(benchmark_dir, tokenizer_path):
    with pytest.raises(
        ConfigError, match=r"max_seq_length=1024 exceeds the tokenizer's model_max_length=512"
    ):
        MultiTaskDataModule(
            tasks=["rte", "boolq"],
            tokenizer=tokenizer_path,
            data_dir=str(benchmark_dir),
            per_task={"boolq": {"max_seq_length": 1024}},
        )


def test_a_per_task_label_map_that_is_no_mapping_fails_as_data_label_map_does(benchmark_dir, tokenizer_path):
    """The data module reads a label map through the same function as the config schema: the same message."""
    from deepprompt.config import DataConfig, typed_keys

    with pytest.raises(ConfigError) as schema:
        typed_keys(DataConfig, {"label_map": ["entailment", "neutral"]}, "data")
    with pytest.raises(ConfigError) as module:
        MultiTaskDataModule(
            tasks=["rte", "cb"],
            tokenizer=tokenizer_path,
            data_dir=str(benchmark_dir),
            per_task={"cb": {"label_map": ["entailment", "neutral"]}},
        )
    assert (
        str(module.value)
        == str(schema.value)
        == (
            "data.label_map must map raw labels to label names, e.g. {0: entailment, 1: neutral}, "
            "got ['entailment', 'neutral']"
        )
    )
