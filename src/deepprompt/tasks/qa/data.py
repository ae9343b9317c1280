"""Extractive QA in the SQuAD 1.1 / 2.0 JSON format: sliding windows, offsets, n-best span post-processing.

Long contexts are cut into windows of ``max_seq_length`` tokens that overlap by ``doc_stride`` tokens
(``[CLS] question [SEP] context window [SEP]``). Training windows that do not hold the whole answer (and
SQuAD 2.0's unanswerable questions) point at [CLS]. At evaluation every window of a question proposes its
``n_best`` start and end tokens; the best valid span (inside the context, at most ``max_answer_length``
tokens) over all windows wins, mapped back to the context's characters through the offset mapping. For
SQuAD 2.0 the answer is empty when the [CLS] score beats the best span by more than ``null_score_diff_threshold``.

Only the SQuAD 1.1 *dev* set is in the benchmark folder: ``split_by_article`` (the training share of the
articles) splits one file by title, deterministically (sorted titles shuffled with ``split_seed``), into a
training and an evaluation part. Such results are not comparable with official dev-set numbers.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepprompt.data.base import SEQUENCE_KEYS, FeatureDataset, SplitView, TaskDataModule
from deepprompt.data.readers import read_text
from deepprompt.data.sources import hub_source, read_split
from deepprompt.errors import ConfigError, DataFormatError

Example = dict[str, Any]  # id, title, context, question, answers {text, answer_start}, is_impossible


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise DataFormatError(f"{where}: {message}")


def read_squad(path: str | os.PathLike[str]) -> list[Example]:
    """Flatten an official SQuAD JSON file (``data[].paragraphs[].qas[]``) into one example per question.

    Invalid JSON fails with ``file:line``; a structural error names ``file`` and the JSON path of the entry.
    """
    path = Path(path)
    text = read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    _require(
        isinstance(doc, dict) and isinstance(doc.get("data"), list), str(path), "no top-level 'data' list"
    )
    examples: list[Example] = []
    for a, article in enumerate(doc["data"]):
        where = f"{path}: data[{a}]"
        _require(
            isinstance(article, dict) and isinstance(article.get("paragraphs"), list),
            where,
            "no 'paragraphs'",
        )
        title = article.get("title", f"article-{a}")
        for p, paragraph in enumerate(article["paragraphs"]):
            pwhere = f"{where}.paragraphs[{p}]"
            _require(isinstance(paragraph, dict), pwhere, "not an object")
            context = paragraph.get("context")
            _require(isinstance(context, str), pwhere, "'context' is missing or not text")
            _require(isinstance(paragraph.get("qas"), list), pwhere, "no 'qas' list")
            for q, qa in enumerate(paragraph["qas"]):
                qwhere = f"{pwhere}.qas[{q}]"
                _require(isinstance(qa, dict), qwhere, "not an object")
                _require(isinstance(qa.get("id"), str), qwhere, "'id' is missing or not text")
                _require(isinstance(qa.get("question"), str), qwhere, "'question' is missing or not text")
                answers = qa.get("answers", [])
                _require(isinstance(answers, list), qwhere, "'answers' is not a list")
                texts, starts = [], []
                for n, answer in enumerate(answers):
                    ok = (
                        isinstance(answer, dict)
                        and isinstance(answer.get("text"), str)
                        and isinstance(answer.get("answer_start"), int)
                        and 0 <= answer["answer_start"] <= len(context)
                    )
                    _require(
                        ok, f"{qwhere}.answers[{n}]", "needs 'text' and an 'answer_start' inside the context"
                    )
                    texts.append(answer["text"])
                    starts.append(answer["answer_start"])
                impossible = bool(qa.get("is_impossible", False))
                _require(impossible or bool(texts), qwhere, "no answers and not marked is_impossible")
                examples.append(
                    {
                        "id": qa["id"],
                        "title": title,
                        "context": context,
                        "question": qa["question"],
                        "answers": {
                            "text": [] if impossible else texts,
                            "answer_start": [] if impossible else starts,
                        },
                        "is_impossible": impossible,
                    }
                )
    return examples


def split_by_article(examples: list[Example], train_share: float, seed: int) -> dict[str, list[Example]]:
    """Deterministic article split: sorted titles, shuffled with ``seed``; the first ``train_share`` train."""
    if not 0.0 < train_share < 1.0:
        raise ConfigError(f"split_by_article must be in (0, 1), got {train_share}")
    titles = sorted({e["title"] for e in examples})
    random.Random(seed).shuffle(titles)
    n_train = min(max(1, round(train_share * len(titles))), len(titles) - 1) if len(titles) > 1 else 1
    train_titles = set(titles[:n_train])
    return {
        "train": [e for e in examples if e["title"] in train_titles],
        "validation": [e for e in examples if e["title"] not in train_titles],
    }


class QADataset(FeatureDataset):
    """Windows (features) of a split plus what post-processing needs: examples, offsets, window->example."""

    def __init__(
        self,
        features: list[dict[str, Any]],
        examples: list[Example],
        example_index: list[int],
        offsets: list[list[tuple[int, int] | None]],
        cls_index: list[int],
    ) -> None:
        super().__init__(features)
        self.examples = examples
        self.example_index = example_index
        self.offsets = offsets
        self.cls_index = cls_index


def encode_windows(
    tokenizer, examples: Sequence[Example], max_seq_length: int, doc_stride: int, training: bool
) -> QADataset:
    """Sliding windows over each context; train windows get start/end token labels, eval ones a feature index."""
    pad_right = tokenizer.padding_side == "right"
    if doc_stride >= max_seq_length // 2:
        raise ConfigError(f"doc_stride={doc_stride} must be below half of max_seq_length={max_seq_length}")
    questions = [e["question"].lstrip() for e in examples]  # leading spaces would waste window room
    contexts = [e["context"] for e in examples]
    enc = tokenizer(
        questions if pad_right else contexts,
        contexts if pad_right else questions,
        truncation="only_second" if pad_right else "only_first",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    context_id = 1 if pad_right else 0
    keys = [k for k in SEQUENCE_KEYS if k in enc]
    features, example_index, all_offsets, cls_positions = [], [], [], []
    for i, sample in enumerate(enc["overflow_to_sample_mapping"]):
        example = examples[sample]
        ids = enc["input_ids"][i]
        cls = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
        sequence_ids = enc.sequence_ids(i)
        offsets = [
            tuple(o) if sequence_ids[k] == context_id else None
            for k, o in enumerate(enc["offset_mapping"][i])
        ]
        feature: dict[str, Any] = {k: enc[k][i] for k in keys}
        if training:
            start = end = cls
            answers = example["answers"]
            if answers["text"]:
                char_start = answers["answer_start"][0]
                char_end = char_start + len(answers["text"][0])
                inside = [k for k, o in enumerate(offsets) if o is not None]
                if inside and offsets[inside[0]][0] <= char_start and offsets[inside[-1]][1] >= char_end:
                    start = next(k for k in inside if offsets[k][1] > char_start)
                    end = next(k for k in reversed(inside) if offsets[k][0] < char_end)
            feature["start_positions"], feature["end_positions"] = start, end
        else:
            feature["feature_index"] = len(features)
        features.append(feature)
        example_index.append(sample)
        all_offsets.append(offsets)
        cls_positions.append(cls)
    return QADataset(features, list(examples), example_index, all_offsets, cls_positions)


def postprocess_predictions(
    data: QADataset,
    logits: Mapping[int, tuple[np.ndarray, np.ndarray]],
    n_best: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> dict[str, str]:
    """Answer text per question id, for the questions with at least one window in ``logits``.

    ``logits`` maps a feature (window) index to its start and end logits over that window's tokens.
    """
    by_example: dict[int, list[int]] = defaultdict(list)
    for feature in logits:
        by_example[data.example_index[feature]].append(feature)
    predictions: dict[str, str] = {}
    for ex, features in sorted(by_example.items()):
        example = data.examples[ex]
        best_score, best_span, min_null = -np.inf, None, None
        for feature in features:
            start_logits, end_logits = (np.asarray(x, dtype=np.float64) for x in logits[feature])
            offsets = data.offsets[feature]
            cls = data.cls_index[feature]
            null = start_logits[cls] + end_logits[cls]
            min_null = null if min_null is None or null < min_null else min_null
            n = min(len(offsets), len(start_logits))
            starts = np.argsort(start_logits[:n])[::-1][:n_best]
            ends = np.argsort(end_logits[:n])[::-1][:n_best]
            for s in starts:
                if offsets[s] is None:
                    continue
                for e in ends:
                    if offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = start_logits[s] + end_logits[e]
                    if score > best_score:
                        best_score, best_span = score, (offsets[s][0], offsets[e][1])
        text = example["context"][best_span[0] : best_span[1]] if best_span else ""
        if version_2_with_negative and (
            best_span is None or min_null - best_score > null_score_diff_threshold
        ):
            text = ""
        predictions[example["id"]] = text
    return predictions


def hub_example(row: Mapping[str, Any]) -> Example:
    """A Hub SQuAD row (answers as parallel lists) as an `Example`."""
    return {
        "id": row["id"],
        "title": row["title"],
        "context": row["context"],
        "question": row["question"],
        "answers": {
            "text": list(row["answers"]["text"]),
            "answer_start": list(row["answers"]["answer_start"]),
        },
        "is_impossible": not row["answers"]["text"],
    }


class SquadDataModule(TaskDataModule):
    """SQuAD 1.1 / 2.0 from local JSON (``<data_dir>/<folder>/<file>``) or the hub, with an optional article split."""

    def __init__(
        self,
        task: str,
        tokenizer: str,
        data_dir: str | None = None,
        folder: str | None = None,
        train_file: str = "train-v1.1.json",
        validation_file: str = "dev-v1.1.json",
        split_by_article: float | None = None,
        split_seed: int = 0,
        split_note: str | None = None,
        version_2_with_negative: bool = False,
        doc_stride: int = 128,
        n_best: int = 20,
        max_answer_length: int = 30,
        null_score_diff_threshold: float = 0.0,
        hub_path: str = "rajpurkar/squad",
        hub_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(tokenizer, **kwargs)
        if doc_stride < 1 or n_best < 1 or max_answer_length < 1:
            raise ConfigError("doc_stride, n_best and max_answer_length must be >= 1")
        if split_by_article is not None and not 0.0 < split_by_article < 1.0:
            raise ConfigError(f"split_by_article must be in (0, 1) or null, got {split_by_article}")
        self.task, self.data_dir, self.folder = task, data_dir, folder or task
        self.files = {"train": train_file, "validation": validation_file}
        self.split_by_article, self.split_seed = split_by_article, split_seed
        self.split_note = split_note
        self.version_2_with_negative = version_2_with_negative
        self.doc_stride, self.n_best, self.max_answer_length = doc_stride, n_best, max_answer_length
        self.null_score_diff_threshold = null_score_diff_threshold
        self.hub_path, self.hub_name = hub_path, hub_name
        self._split_cache: dict[str, list[Example]] | None = None
        self.validation: SplitView[QADataset] = SplitView("validation")

    num_labels = 2  # start and end logits per token

    def module_kwargs(self) -> dict[str, Any]:
        return {
            "n_best": self.n_best,
            "max_answer_length": self.max_answer_length,
            "version_2_with_negative": self.version_2_with_negative,
            "null_score_diff_threshold": self.null_score_diff_threshold,
            "split_note": self.split_note,
            "validation": self.validation,
        }

    def _read(self, which: str) -> list[Example]:
        _, examples = read_split(
            self.data_dir,
            (self.folder, self.files[which]),
            read_squad,
            hub_source(self.hub_path, self.hub_name, which),
            lambda hub: [hub_example(row) for row in hub],
        )
        return examples

    def examples(self, split: str) -> list[Example]:
        """The examples of ``train`` / ``validation``, after the article split when configured."""
        if self.split_by_article is None:
            return self._read(split)
        if self._split_cache is None:  # both parts come from the validation file
            self._split_cache = split_by_article(
                self._read("validation"), self.split_by_article, self.split_seed
            )
        return self._split_cache[split]

    def build_split(self, split: str) -> QADataset:
        examples = self.examples(split)[: self.limit(split)]
        if not examples:
            raise DataFormatError(f"{self.task}: the {split} split has no questions")
        data = encode_windows(
            self.tokenizer, examples, self.max_seq_length, self.doc_stride, split == "train"
        )
        if split == "validation":
            self.validation.set(data)
        return data
