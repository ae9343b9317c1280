"""WiC, WSC and MultiRC as sequence (pair) classification, framed as the official P-Tuning v2 code does.

Framing (``template``):

* WiC ``word_prefix`` (default; the official BERT template): ``"<word>: <sentence1>" [SEP] "<word>: <sentence2>"``.
  ``question`` (the official RoBERTa template): ``"<s1> <s2> Does <word> have the same meaning in both
  sentences?"``. ``mark``: the target word is wrapped in asterisks at its character spans (start/end) in
  both sentences, ``"<s1*>" [SEP] "<s2*>"``.
* WSC ``prefix`` (default; official template 0): ``"<span2 (pronoun)>: <text>" [SEP] "<span1 (noun phrase)>"``.
  ``asterisk`` (official template 1): the pronoun at word ``span2_index`` of the text is wrapped in asterisks,
  ``"<text with *pronoun*>" [SEP] "<span1>"``. Label: does the pronoun refer to span1?
* MultiRC: one example per answer option, ``"<paragraph>" [SEP] "<question> <answer>"`` -> is this answer
  correct; F1a over options and EM over questions (grouped by question).

Local files: ``<data_dir>/<task>/{train,val}.jsonl[.gz]`` in the SuperGLUE formats (WSC's spans under
``target``; MultiRC nests passage -> questions -> answers). Without ``data_dir``: ``aps/super_glue``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from deepprompt.data.base import SEQUENCE_KEYS, FeatureDataset, TaskDataModule
from deepprompt.data.readers import excerpt, read_jsonl
from deepprompt.data.sources import hub_source, local_source_key, read_split
from deepprompt.errors import ConfigError, DataFormatError

TEMPLATES = {
    "wic": ("word_prefix", "question", "mark"),
    "wsc": ("prefix", "asterisk"),
    "multirc": ("default",),
}
HUB_NAMES = {"wic": "wic", "wsc": "wsc.fixed", "multirc": "multirc"}
LOCAL_FILES = {"train": "train.jsonl", "validation": "val.jsonl"}

# (text_a, text_b or None, label, question group)
Framed = tuple[str, str | None, int, int]


def _text(source: str, line: int, row: dict[str, Any], field: str) -> str:
    value = row.get(field)
    if not isinstance(value, str):
        raise DataFormatError(f"{source}:{line}: field {field!r} is missing or not text: {excerpt(value)}")
    return value


def _int(source: str, line: int, row: dict[str, Any], field: str) -> int:
    value = row.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataFormatError(
            f"{source}:{line}: field {field!r} is missing or not an integer: {excerpt(value)}"
        )
    return value


def binary_label(source: str, line: int, row: dict[str, Any]) -> int:
    """SuperGLUE binary labels: JSON true/false (local files) or 0/1 (hub, MultiRC answers)."""
    if "label" not in row:
        raise DataFormatError(f"{source}:{line}: no 'label' field")
    raw = row["label"]
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return int(raw.lower() == "true")
    if isinstance(raw, int) and raw in (0, 1):
        return raw
    raise DataFormatError(f"{source}:{line}: label {excerpt(raw)} is not a binary label (true/false or 0/1)")


def _mark(sentence: str, start: int, end: int, source: str, line: int) -> str:
    if not 0 <= start < end <= len(sentence):
        raise DataFormatError(f"{source}:{line}: span [{start}, {end}) is outside the sentence")
    return f"{sentence[:start]}*{sentence[start:end]}*{sentence[end:]}"


def frame_wic(source: str, line: int, row: dict[str, Any], template: str) -> list[Framed]:
    word, s1, s2 = (_text(source, line, row, f) for f in ("word", "sentence1", "sentence2"))
    label = binary_label(source, line, row)
    if template == "word_prefix":
        return [(f"{word}: {s1}", f"{word}: {s2}", label, line)]
    if template == "question":
        return [(f"{s1} {s2} Does {word} have the same meaning in both sentences?", None, label, line)]
    spans = [_int(source, line, row, f) for f in ("start1", "end1", "start2", "end2")]
    return [(_mark(s1, *spans[:2], source, line), _mark(s2, *spans[2:], source, line), label, line)]


def frame_wsc(source: str, line: int, row: dict[str, Any], template: str) -> list[Framed]:
    target = row.get("target", row)  # local files nest the spans under "target"; the hub has them flat
    if not isinstance(target, dict):
        raise DataFormatError(f"{source}:{line}: field 'target' is not an object: {excerpt(target)}")
    text = _text(source, line, row, "text")
    span1 = _text(source, line, target, "span1_text")
    span2 = _text(source, line, target, "span2_text")
    index = _int(source, line, target, "span2_index")
    label = binary_label(source, line, row)
    if template == "prefix":
        return [(f"{span2}: {text}", span1, label, line)]
    words = text.split()
    if not 0 <= index < len(words):
        raise DataFormatError(
            f"{source}:{line}: span2_index {index} is outside the text ({len(words)} words)"
        )
    words[index] = f"*{words[index]}*"
    return [(" ".join(words), span1, label, line)]


class _Groups:
    """Sequential ids for MultiRC questions, keyed by (passage, question)."""

    def __init__(self) -> None:
        self.ids: dict[Any, int] = {}

    def __call__(self, key: Any) -> int:
        return self.ids.setdefault(key, len(self.ids))


def frame_multirc(source: str, line: int, row: dict[str, Any], groups: _Groups) -> list[Framed]:
    if "passage" in row:  # local: passage -> questions -> answers
        passage = row["passage"]
        if not isinstance(passage, dict):
            raise DataFormatError(f"{source}:{line}: field 'passage' is not an object")
        paragraph = _text(source, line, passage, "text")
        questions = passage.get("questions")
        if not isinstance(questions, list):
            raise DataFormatError(f"{source}:{line}: passage has no 'questions' list")
        out: list[Framed] = []
        for qi, q in enumerate(questions):
            if not isinstance(q, dict) or not isinstance(q.get("answers"), list):
                raise DataFormatError(f"{source}:{line}: question {qi} has no 'answers' list")
            question = _text(source, line, q, "question")
            group = groups((row.get("idx"), q.get("idx", qi)))
            for a in q["answers"]:
                if not isinstance(a, dict):
                    raise DataFormatError(f"{source}:{line}: an answer of question {qi} is not an object")
                answer = _text(source, line, a, "text")
                out.append((paragraph, f"{question} {answer}", binary_label(source, line, a), group))
        return out
    # hub: one row per answer, idx = {paragraph, question, answer}
    paragraph, question, answer = (_text(source, line, row, f) for f in ("paragraph", "question", "answer"))
    idx = row.get("idx") or {}
    group = groups((idx.get("paragraph"), idx.get("question")))
    return [(paragraph, f"{question} {answer}", binary_label(source, line, row), group)]


class SuperGLUEDataModule(TaskDataModule):
    """WiC / WSC / MultiRC. WiC and WSC train with ``ClassificationModule``; MultiRC with ``MultiRCModule``."""

    def __init__(
        self,
        task: str,
        tokenizer: str,
        data_dir: str | None = None,
        template: str | None = None,
        hub_path: str = "aps/super_glue",
        **kwargs: Any,
    ) -> None:
        if task not in TEMPLATES:
            raise ConfigError(f"unknown SuperGLUE task {task!r}; this module reads {sorted(TEMPLATES)}")
        template = template or TEMPLATES[task][0]
        if template not in TEMPLATES[task]:
            raise ConfigError(f"{task}: unknown template {template!r}; choose one of {list(TEMPLATES[task])}")
        super().__init__(tokenizer, **kwargs)
        self.task, self.data_dir, self.template, self.hub_path = task, data_dir, template, hub_path

    num_labels = 2

    def module_kwargs(self) -> dict[str, Any]:
        if self.task == "multirc":  # f1a (monitored) and em come on top of the classification metrics
            return {"metrics": ["acc", "f1a", "em"]}
        return {"num_labels": 2, "metrics": ["acc"]}

    def read_rows(self, split: str) -> tuple[str, Iterator[tuple[int, dict[str, Any]]]]:
        return read_split(
            self.data_dir,
            (self.task, LOCAL_FILES[split]),
            read_jsonl,
            hub_source(self.hub_path, HUB_NAMES[self.task], split),
            lambda hub: iter(enumerate(hub)),
        )

    def frame(self, split: str) -> tuple[str, list[Framed]]:
        source, rows = self.read_rows(split)
        limit = self.limit(split)
        groups = _Groups()
        framed: list[Framed] = []
        if self.task == "multirc":
            for line, row in rows:
                framed.extend(frame_multirc(source, line, row, groups))
                if limit is not None and len(framed) >= limit:
                    break
            framed = framed[:limit] if limit is not None else framed
        else:
            frame = frame_wic if self.task == "wic" else frame_wsc
            for line, row in islice(rows, limit):
                framed.extend(frame(source, line, row, self.template))
        if not framed:
            raise DataFormatError(f"{source}: the {split} split of {self.task} has no examples")
        return source, framed

    def cache_key(self, split: str) -> dict[str, Any] | None:
        """The local file and the template (the tokenized-data cache, `deepprompt.data.cache`)."""
        files = local_source_key(self.data_dir, (self.task, LOCAL_FILES[split]))
        return None if files is None else {"task": self.task, "files": [files], "template": self.template}

    def build_split(self, split: str) -> FeatureDataset:
        _, framed = self.frame(split)
        first = [f[0] for f in framed]
        second = [f[1] for f in framed]
        pair = second[0] is not None
        encoded = self.tokenizer(
            first, second if pair else None, truncation=True, max_length=self.max_seq_length
        )
        keys = [k for k in SEQUENCE_KEYS if k in encoded]
        features = []
        for i, (_, _, label, group) in enumerate(framed):
            feature: dict[str, Any] = {k: encoded[k][i] for k in keys}
            feature["labels"] = label
            if self.task == "multirc":
                feature["group"] = group
            features.append(feature)
        return FeatureDataset(features)
