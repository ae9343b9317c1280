"""Named entity recognition from CoNLL-format column files (or the hub), normalised to IOB2.

Files: one token per line, whitespace-separated columns (token first, tag in column ``tag_column``, default
the last); a blank line ends a sentence; ``-DOCSTART-`` lines are skipped. Tags in IOB1 (CoNLL-2003), IOB2
or BIOES/IOBES are converted to IOB2. Labels go on the first sub-token of each word; the other sub-tokens
and the special tokens get -100. Words cut off by ``max_seq_length`` are scored as predicted ``O``: every
example keeps all its gold word labels (``word_labels``), so the entity F1 is over whole sentences.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from deepprompt.data.base import IGNORE_INDEX, FeatureDataset, TaskDataModule
from deepprompt.data.readers import excerpt, read_lines
from deepprompt.data.sources import hub_source, local_source_key
from deepprompt.data.sources import read_split as read_source
from deepprompt.errors import ConfigError, DataFormatError

SCHEMES = ("iob1", "iob2", "bioes", "iobes")
_COLUMN_SPACE = " \t\r\n"
_COLUMNS = re.compile(r"[ \t]+")
# (line number of the sentence's first token, tokens, raw tags)
Sentence = tuple[int, list[str], list[str]]


def read_conll(
    path: str | os.PathLike[str], tag_column: int | None = -1, token_column: int = 0
) -> Iterator[Sentence]:
    """Yield ``(first_line, tokens, tags)`` per sentence of a CoNLL column file (``.gz`` or plain).

    Columns are separated by spaces or tabs (other Unicode spaces belong to the token). Every token line needs
    its token and its tag in two distinct columns: a line with one column (a lone ``O``) is malformed, not a
    token ``O``, and fails with ``file:line``. Tokens of a sentence are on consecutive lines, so the tag of
    token ``i`` is on line ``first_line + i``. ``tag_column=None`` reads tokens only (text to tag, e.g. for
    ``deepprompt-predict``): ``tags`` is then empty.
    """
    path = Path(path)
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    for lineno, raw in read_lines(path):
        line = raw.strip(_COLUMN_SPACE)
        if not line or line.startswith("-DOCSTART-"):
            if tokens:
                yield start, tokens, tags
                tokens, tags = [], []
            continue
        columns = _COLUMNS.split(line)
        n = len(columns)
        if tag_column is None:
            if not -n <= token_column < n:
                raise DataFormatError(
                    f"{path}:{lineno}: expected a token in column {token_column}, got {n} column(s)"
                )
        elif not (-n <= token_column < n and -n <= tag_column < n) or token_column % n == tag_column % n:
            raise DataFormatError(
                f"{path}:{lineno}: expected a token (column {token_column}) and a tag (column {tag_column}) "
                f"separated by spaces or tabs, got {n} column(s)"
            )
        if not tokens:
            start = lineno
        tokens.append(columns[token_column])
        if tag_column is not None:
            tags.append(columns[tag_column])
    if tokens:
        yield start, tokens, tags


def _parse(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or not kind or prefix not in ("B", "I", "E", "S"):
        raise ValueError(f"tag {excerpt(tag)} is not 'O' or <B|I|E|S>-<TYPE>")
    return prefix, kind


def to_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """IOB1 / IOB2 / BIOES(IOBES) tags -> IOB2. Raises ValueError('token i: ...') on a malformed tag.

    An ``I-X`` that does not continue an ``X`` entity begins one (IOB1's rule, and seqeval's reading of an
    invalid IOB2 ``I-``); ``S-X``/``E-X`` map to ``B-X``/``I-X``.
    """
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown tag scheme {scheme!r}; choose one of {list(SCHEMES)}")
    out: list[str] = []
    prev_kind = ""
    prev_prefix = "O"
    for i, tag in enumerate(tags):
        try:
            prefix, kind = _parse(tag)
        except ValueError as e:
            raise ValueError(f"token {i}: {e}") from None
        if prefix in ("E", "S") and scheme in ("iob1", "iob2"):
            raise ValueError(f"token {i}: tag {tag!r} is not valid in {scheme.upper()} (use scheme=bioes)")
        if prefix == "O":
            out.append("O")
        elif prefix in ("B", "S"):
            out.append(f"B-{kind}")
        else:  # I or E: continues an open entity of the same type, else begins one
            continues = prev_prefix in ("B", "I") and prev_kind == kind
            out.append(f"I-{kind}" if continues else f"B-{kind}")
        # after E-/S- an entity is closed
        prev_prefix = "O" if prefix in ("E", "S", "O") else prefix
        prev_kind = kind
    return out


def label_names_for(entity_types: Sequence[str]) -> list[str]:
    """``O`` then ``B-T``, ``I-T`` per type, in the given order."""
    names = ["O"]
    for kind in entity_types:
        names += [f"B-{kind}", f"I-{kind}"]
    return names


class NERDataModule(TaskDataModule):
    """CoNLL-format NER; evaluates on ``validation`` (dataloader 0) and ``test`` (dataloader 1) when present."""

    def __init__(
        self,
        task: str,
        tokenizer: str,
        data_dir: str | None = None,
        folder: str | None = None,
        files: dict[str, str | None] | None = None,
        tag_column: int = -1,
        token_column: int = 0,
        scheme: str = "iob2",
        entity_types: list[str] | None = None,
        hub_path: str | None = None,
        hub_name: str | None = None,
        hub_splits: dict[str, str | None] | None = None,
        hub_tokens_field: str = "tokens",
        hub_tags_field: str = "ner_tags",
        hub_scheme: str = "iob2",
        **kwargs: Any,
    ) -> None:
        if scheme.lower() not in SCHEMES or hub_scheme.lower() not in SCHEMES:
            raise ConfigError(f"unknown tag scheme {scheme!r}/{hub_scheme!r}; choose one of {list(SCHEMES)}")
        super().__init__(tokenizer, **kwargs)
        if getattr(self.tokenizer, "add_prefix_space", None) is False:  # byte-level BPE on pre-split words
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer, add_prefix_space=True)
        self.task = task
        self.data_dir = data_dir
        self.folder = folder or task
        self.files = dict(files or {"train": "train.txt", "validation": "dev.txt", "test": "test.txt"})
        self.tag_column, self.token_column = tag_column, token_column
        self.scheme, self.hub_scheme = scheme.lower(), hub_scheme.lower()
        self.hub_path, self.hub_name = hub_path, hub_name
        self.hub_splits = dict(hub_splits or {"train": "train", "validation": "validation", "test": "test"})
        self.hub_tokens_field, self.hub_tags_field = hub_tokens_field, hub_tags_field
        if data_dir is None and hub_path is None:
            raise ConfigError(f"{task}: no data_dir and no hub_path: nowhere to read the data from")
        available = self.files if data_dir is not None else self.hub_splits
        if not available.get("train") or not available.get("validation"):
            raise ConfigError(f"{task}: the train and validation splits need a file (or hub split)")
        self.eval_splits = ("validation", "test") if available.get("test") else ("validation",)
        self._entity_types = list(entity_types) if entity_types else None
        self._label_names: list[str] | None = None

    # -- labels ----------------------------------------------------------------------------------------
    @property
    def label_names(self) -> list[str]:
        """From ``entity_types`` if given, else the types seen in the training split (sorted)."""
        if self._label_names is None:
            types = self._entity_types
            if types is None:
                _, sentences = self.read_split("train", limit=None)
                types = sorted({t[2:] for _, _, tags in sentences for t in tags if t != "O"})
            self._label_names = label_names_for(types)
        return self._label_names

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def module_kwargs(self) -> dict[str, Any]:
        return {"label_names": self.label_names}

    # -- reading -----------------------------------------------------------------------------------------
    def read_split(self, split: str, limit: int | None) -> tuple[str, list[Sentence]]:
        """``(source, sentences)`` with IOB2 tags; a malformed line or tag fails with ``file:line``."""

        def hub_sentences(hub):
            names = hub.features[self.hub_tags_field].feature.names
            return (
                (i, list(row[self.hub_tokens_field]), [names[t] for t in row[self.hub_tags_field]])
                for i, row in islice(enumerate(hub), limit)
            )

        source, raw = read_source(
            self.data_dir,
            (self.folder, str(self.files.get(split))),
            lambda path: islice(read_conll(path, self.tag_column, self.token_column), limit),
            hub_source(self.hub_path, self.hub_name, self.hub_splits.get(split)),
            hub_sentences,
        )
        scheme = self.scheme if self.data_dir is not None else self.hub_scheme
        sentences: list[Sentence] = []
        for line, tokens, tags in raw:
            try:
                sentences.append((line, tokens, to_iob2(tags, scheme)))
            except ValueError as e:
                token = int(str(e).split(":")[0].removeprefix("token "))
                at = line + token if self.data_dir is not None else line
                raise DataFormatError(f"{source}:{at}: {str(e).split(': ', 1)[1]}") from None
        if not sentences:
            raise DataFormatError(f"{source}: the {split} split of {self.task} has no sentences")
        return source, sentences

    def cache_key(self, split: str) -> dict[str, Any] | None:
        """The local file, its columns and tag scheme, and the label names (the tokenized-data cache)."""
        files = local_source_key(self.data_dir, (self.folder, str(self.files.get(split))))
        if files is None:
            return None
        return {
            "task": self.task,
            "files": [files],
            "columns": [self.token_column, self.tag_column],
            "scheme": self.scheme,
            "label_names": list(self.label_names),
        }

    def build_split(self, split: str) -> FeatureDataset:
        source, sentences = self.read_split(split, self.limit(split))
        label_ids = {name: i for i, name in enumerate(self.label_names)}
        encoded = self.tokenizer(
            [tokens for _, tokens, _ in sentences],
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_seq_length,
        )
        features = []
        for i, (line, _, tags) in enumerate(sentences):
            unknown = [i for i, t in enumerate(tags) if t not in label_ids]
            if unknown:
                at = line + unknown[0] if self.data_dir is not None else line  # the tag's own line
                raise DataFormatError(
                    f"{source}:{at}: tag {excerpt(tags[unknown[0]])} is not one of the labels {self.label_names}"
                )
            word_labels = [label_ids[t] for t in tags]
            labels, words, previous = [], [], None
            for word in encoded.word_ids(i):
                first = word is not None and word != previous
                labels.append(word_labels[word] if first else IGNORE_INDEX)
                words.append(word if first else IGNORE_INDEX)
                previous = word
            feature = {
                k: encoded[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded
            }
            feature["labels"] = labels
            feature["word_index"] = words  # the word each first sub-token starts, else -100
            feature["word_labels"] = word_labels
            features.append(feature)
        return FeatureDataset(features)
