"""COPA as multiple choice: each (premise + connector, choice) pair is encoded; the module scores every choice.

Framing (as the official P-Tuning v2 COPA code): the premise, its final period dropped, is followed by the
connector ``because`` (question ``cause``) or ``so`` (question ``effect``), and paired with each choice:
``"<premise> because" [SEP] "<choice1>"`` and ``"<premise> because" [SEP] "<choice2>"``; label 0/1 = the
index of the right choice. Local: ``<data_dir>/copa/{train,val}.jsonl[.gz]``; else ``aps/super_glue`` copa.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from deepprompt.data.base import SEQUENCE_KEYS, FeatureDataset, TaskDataModule
from deepprompt.data.readers import excerpt, read_jsonl
from deepprompt.data.sources import hub_source, local_source_key, read_split
from deepprompt.errors import DataFormatError

CONNECTORS = {"cause": "because", "effect": "so"}


def frame_copa(source: str, line: int, row: dict[str, Any]) -> tuple[str, list[str], int]:
    """``(premise with connector, [choice1, choice2], label)``; DataFormatError naming ``source:line``."""
    fields = {}
    for field in ("premise", "choice1", "choice2", "question"):
        value = row.get(field)
        if not isinstance(value, str):
            raise DataFormatError(
                f"{source}:{line}: field {field!r} is missing or not text: {excerpt(value)}"
            )
        fields[field] = value
    if fields["question"] not in CONNECTORS:
        raise DataFormatError(f"{source}:{line}: question {fields['question']!r} is not 'cause' or 'effect'")
    label = row.get("label")
    if isinstance(label, bool) or label not in (0, 1):
        raise DataFormatError(f"{source}:{line}: label {excerpt(label)} is not 0 or 1")
    premise = fields["premise"].rstrip()
    premise = premise[:-1] if premise.endswith(".") else premise
    return f"{premise} {CONNECTORS[fields['question']]}", [fields["choice1"], fields["choice2"]], int(label)


class MultipleChoiceDataModule(TaskDataModule):
    """Examples hold ``input_ids`` etc. as one list per choice; batches are ``(batch, choices, length)``."""

    def __init__(
        self,
        task: str,
        tokenizer: str,
        data_dir: str | None = None,
        hub_path: str = "aps/super_glue",
        **kwargs,
    ) -> None:
        if task != "copa":
            raise DataFormatError(f"unknown multiple-choice task {task!r}; this module reads 'copa'")
        super().__init__(tokenizer, **kwargs)
        self.task, self.data_dir, self.hub_path = task, data_dir, hub_path

    num_labels = 2  # choices

    def module_kwargs(self) -> dict[str, Any]:
        return {"num_choices": 2}

    @staticmethod
    def local_file(split: str) -> tuple[str, str]:
        return ("copa", "train.jsonl" if split == "train" else "val.jsonl")

    def cache_key(self, split: str) -> dict[str, Any] | None:
        """The local file (the tokenized-data cache, `deepprompt.data.cache`)."""
        files = local_source_key(self.data_dir, self.local_file(split))
        return None if files is None else {"task": self.task, "files": [files]}

    def build_split(self, split: str) -> FeatureDataset:
        limit = self.limit(split)
        source, rows = read_split(
            self.data_dir,
            self.local_file(split),
            lambda path: list(islice(read_jsonl(path), limit)),
            hub_source(self.hub_path, "copa", split),
            lambda hub: list(islice(enumerate(hub), limit)),
        )
        framed = [frame_copa(source, line, row) for line, row in rows]
        if not framed:
            raise DataFormatError(f"{source}: the {split} split of copa has no examples")
        firsts = [context for context, choices, _ in framed for _ in choices]
        seconds = [choice for _, choices, _ in framed for choice in choices]
        encoded = self.tokenizer(firsts, seconds, truncation=True, max_length=self.max_seq_length)
        keys = [k for k in SEQUENCE_KEYS if k in encoded]
        features, at = [], 0
        for _, choices, label in framed:
            n = len(choices)
            feature: dict[str, Any] = {k: encoded[k][at : at + n] for k in keys}
            feature["labels"] = label
            features.append(feature)
            at += n
        return FeatureDataset(features)
