"""MultiTaskDataModule's construction: the per-task options it accepts and the errors that list them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from deepprompt.errors import ConfigError
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
    "tokenizer",
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
