"""E2E and WebNLG 2017 for decoder-only generation: readers (file:line errors), linearisation, data modules.

A training example is ``prompt + target + eos`` with the loss on the target only (prompt tokens labelled
-100): ``prompt = prompt_template.format(source=<linearised input>)`` and ``target = " " + reference``.
An evaluation example is one distinct input (E2E: one MR; WebNLG: one entry) with *all* its references,
so corpus BLEU is multi-reference. Evaluation batches are left-padded (generation continues the prompt);
training batches are right-padded: with left padding the pad positions of a causal model attend to nothing (every
key up to them is padding), a fully masked attention row whose gradient not every fused GPU kernel keeps finite;
right-padded, every query sees at least its row's first token. The module passes position ids from the attention
mask, so the side of the padding shifts nothing: loss and gradients are the same either way (tested).
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepprompt.data.base import IGNORE_INDEX, FeatureCollator, FeatureDataset, SplitView, TaskDataModule
from deepprompt.data.readers import read_text, resolve_split_file
from deepprompt.data.sources import read_split
from deepprompt.errors import ConfigError, DataFormatError

_SLOT = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")


@dataclass
class Source:
    """One distinct input and every reference for it (``line``: where it first appears; ``category``: the
    WebNLG entry's category; ``subset``: the evaluation subset it is also scored in, e.g. ``seen``)."""

    text: str
    references: list[str] = field(default_factory=list)
    line: str = ""
    category: str = ""
    subset: str = ""


def _open(path: Path) -> io.StringIO:
    """The file's text (``.gz`` or plain) with `read_text`'s checks: bad UTF-8, a truncated or fake ``.gz``
    fail naming the file (and line), as for every other reader; line ends kept for the CSV reader."""
    return io.StringIO(read_text(path), newline="")


# -- E2E -----------------------------------------------------------------------------------------------------
def linearize_e2e(mr: str) -> str:
    """``name[The Vaults], eatType[pub]`` -> ``name : The Vaults | eatType : pub`` (as Prefix-Tuning)."""
    slots, pos = [], 0
    for match in _SLOT.finditer(mr):
        if match.start() != pos:
            break
        slots.append(f"{match.group(1).strip()} : {match.group(2).strip()}")
        pos = match.end()
    if not slots or pos != len(mr):
        raise ValueError(
            f"malformed meaning representation {mr!r} (expected 'slot[value], slot[value], ...')"
        )
    return " | ".join(slots)


def read_e2e(path: str | Path) -> list[tuple[int, str, str]]:
    """``(line, linearised MR, reference)`` per data row of an E2E CSV (columns ``mr``, ``ref``)."""
    path = Path(path)
    rows = []
    with _open(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or "mr" not in header or "ref" not in header:
            raise DataFormatError(f"{path}:1: expected a header with columns mr and ref, got {header}")
        i_mr, i_ref = header.index("mr"), header.index("ref")
        start = reader.line_num + 1
        for record in reader:
            line = start
            start = reader.line_num + 1
            if not record or all(not x.strip() for x in record):
                continue
            if len(record) != len(header):
                raise DataFormatError(
                    f"{path}:{line}: expected {len(header)} fields {header}, got {len(record)}"
                )
            mr, ref = record[i_mr].strip(), record[i_ref].strip()
            if not ref:
                raise DataFormatError(f"{path}:{line}: empty reference")
            try:
                rows.append((line, linearize_e2e(mr), ref))
            except ValueError as err:
                raise DataFormatError(f"{path}:{line}: {err}") from None
    return rows


# -- WebNLG --------------------------------------------------------------------------------------------------
def linearize_webnlg(triples: list[str]) -> str:
    """``['Aarhus_Airport | cityServed | Aarhus']`` -> ``Aarhus Airport : cityServed : Aarhus``, joined by `` | ``."""
    out = []
    for triple in triples:
        parts = [p.strip().replace("_", " ") for p in triple.split("|")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"malformed triple {triple!r} (expected 'subject | predicate | object')")
        out.append(" : ".join(parts))
    return " | ".join(out)


def _parse_with_lines(path: Path):
    """The XML as an ElementTree (element text only, no tails) and each element's start line."""
    from xml.parsers import expat

    lines: dict[int, int] = {}
    stack: list[ET.Element] = []
    roots: list[ET.Element] = []
    parser = expat.ParserCreate()

    def start(tag, attrs):
        element = ET.Element(tag, attrs)
        lines[id(element)] = parser.CurrentLineNumber
        (stack[-1].append(element) if stack else roots.append(element))
        stack.append(element)

    def end(tag):
        stack.pop()

    def text(data):
        if stack:
            stack[-1].text = (stack[-1].text or "") + data

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
    try:
        with _open(path) as f:
            parser.Parse(f.read(), True)
    except expat.ExpatError as err:
        raise DataFormatError(
            f"{path}:{err.lineno}: invalid XML: {expat.errors.messages[err.code]}"
        ) from None
    return roots[0], lines


def read_webnlg(paths: list[Path], good_only: bool) -> list[Source]:
    """One `Source` per ``entry`` (linearised ``modifiedtripleset``, its ``category`` attribute); references from
    its ``lex`` elements (``comment="good"`` ones only when ``good_only``); entries left without references are
    dropped."""
    sources = []
    for path in paths:
        root, lines = _parse_with_lines(path)
        for entry in root.iter("entry"):
            where = f"{path}:{lines.get(id(entry), '?')}"
            triples = [(t.text or "").strip() for t in entry.iter("mtriple")]
            if not triples:
                raise DataFormatError(f"{where}: entry {entry.get('eid')} has no modifiedtripleset/mtriple")
            try:
                text = linearize_webnlg(triples)
            except ValueError as err:
                raise DataFormatError(f"{where}: {err}") from None
            lexes = entry.findall("lex")
            if not lexes:
                raise DataFormatError(f"{where}: entry {entry.get('eid')} has no lex (reference) element")
            refs = [
                " ".join((lex.text or "").split())
                for lex in lexes
                if (not good_only or lex.get("comment", "good") == "good") and (lex.text or "").strip()
            ]
            if refs:
                sources.append(Source(text, refs, where, category=entry.get("category", "")))
    return sources


# -- data modules --------------------------------------------------------------------------------------------
class GenerationEval(SplitView[list[Source]]):
    """The evaluation split as `GenerationModule` scores it: its sources (with every reference), and the
    tokenizer's decoding of generated ids."""

    def __init__(self, split: str, tokenizer) -> None:
        super().__init__(split)
        self.tokenizer = tokenizer

    def references(self) -> list[list[str]]:
        return [s.references for s in self.data]

    def subsets(self) -> dict[str, list[int]]:
        """Indices of the sources in each named subset (WebNLG: ``seen``, ``unseen``), in order of first
        appearance; empty when the data defines none (E2E)."""
        out: dict[str, list[int]] = {}
        for i, s in enumerate(self.data):
            if s.subset:
                out.setdefault(s.subset, []).append(i)
        return out

    def decode(self, ids: torch.Tensor) -> list[str]:
        return [" ".join(t.split()) for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]


class GenerationDataModule(TaskDataModule):
    """Prompt/target features for training; distinct inputs with all references for evaluation."""

    def __init__(
        self,
        task: str,
        tokenizer: str,
        data_dir: str | None,
        folder: str,
        eval_split: str = "validation",
        prompt_template: str = "{source} ||",
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        max_source_length: int = 128,
        max_target_length: int = 96,
        limit_train_examples: int | None = None,
        limit_eval_examples: int | None = None,
        eval_every: int = 1,
        num_workers: int = 0,
        seed: int = 42,
        generation: dict[str, Any] | None = None,
    ) -> None:
        if data_dir is None:
            raise ConfigError(
                f"data.data_dir is not set: point DEEPPROMPT_DATA_DIR at the folder holding {folder}/"
            )
        if eval_split not in ("validation", "test"):
            raise ConfigError(f"data.eval_split must be 'validation' or 'test', got {eval_split!r}")
        for name, value in (
            ("batch_size", batch_size),
            ("limit_train_examples", limit_train_examples),
            ("limit_eval_examples", limit_eval_examples),
            ("eval_every", eval_every),
        ):
            if value is not None and value < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {value}")
        if "{source}" not in prompt_template:
            raise ConfigError(f"data.prompt_template must contain {{source}}, got {prompt_template!r}")
        super().__init__(
            tokenizer,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            # a training example: prompt, target and eos
            max_seq_length=max_source_length + max_target_length + 1,
            num_workers=num_workers,
            limit_train_examples=limit_train_examples,
            limit_eval_examples=limit_eval_examples,
            seed=seed,
        )
        if self.tokenizer.eos_token_id is None:
            raise ConfigError(f"tokenizer {tokenizer} has no eos token to end targets with")
        # training batches pad on the right (no fully masked query row; see the module docstring)
        self.train_collator = FeatureCollator(self.collator.pad_token_id, None, "right")
        self.task = task
        self.data_dir = Path(data_dir)
        self.folder = folder
        self.eval_split = eval_split
        self.eval_splits = (eval_split,)
        self.prompt_template = prompt_template
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.eval_every = eval_every
        self.generation = dict(generation or {})
        self.evaluation = GenerationEval(eval_split, self.tokenizer)
        self.sources: dict[str, list[Source]] = {}

    @staticmethod
    def load_tokenizer(name: str, max_seq_length: int):
        """A causal LM's tokenizer (Hub name, folder or GGUF), left padding: generation continues the prompt."""
        from deepprompt.tasks.generation.loading import load_tokenizer

        tokenizer = load_tokenizer(name)
        return tokenizer, tokenizer.pad_token_id

    # what the module needs from the data
    def module_kwargs(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "vocab_size": len(self.tokenizer),
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
            "evaluation": self.evaluation,
        }

    def references(self, split: str | None = None) -> list[list[str]]:
        return [s.references for s in self.sources[split or self.eval_split]]

    def decode(self, ids: torch.Tensor) -> list[str]:
        return self.evaluation.decode(ids)

    # subclasses: training pairs and evaluation sources
    def train_pairs(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def eval_sources(self, split: str) -> list[Source]:
        raise NotImplementedError

    def _prompt(self, source: str) -> list[int]:
        ids = self.tokenizer(self.prompt_template.format(source=source), add_special_tokens=False).input_ids
        return ids[: self.max_source_length]

    def build_split(self, split: str) -> FeatureDataset:
        if split == "train":
            features = []
            for source, target in self.train_pairs()[: self.limit(split)]:
                prompt = self._prompt(source)
                tgt = self.tokenizer(" " + target, add_special_tokens=False).input_ids[
                    : self.max_target_length
                ]
                tgt = tgt + [self.tokenizer.eos_token_id]
                features.append(
                    {
                        "input_ids": prompt + tgt,
                        "attention_mask": [1] * (len(prompt) + len(tgt)),
                        "labels": [IGNORE_INDEX] * len(prompt) + tgt,
                    }
                )
            return FeatureDataset(features)
        # every k-th input, then the limit: a subset spread over the whole split (the WebNLG test file is
        # ordered by triple count, its seen categories before the unseen ones)
        sources = self.eval_sources(split)[:: self.eval_every][: self.limit(split)]
        self.sources[split] = sources
        if split == self.evaluation.split:
            self.evaluation.set(sources)
        features = []
        for i, s in enumerate(sources):
            prompt = self._prompt(s.text)
            features.append({"input_ids": prompt, "attention_mask": [1] * len(prompt), "index": i})
        return FeatureDataset(features)


class E2EDataModule(GenerationDataModule):
    """E2E NLG: ``trainset.csv``, ``devset.csv`` (validation), ``testset_w_refs.csv`` (test); references
    grouped by MR, in order of first appearance."""

    FILES = {"train": "trainset.csv", "validation": "devset.csv", "test": "testset_w_refs.csv"}

    def __init__(self, task: str = "e2e", folder: str = "e2e", **kwargs) -> None:
        super().__init__(task=task, folder=folder, **kwargs)

    def _rows(self, split: str):
        return read_split(self.data_dir, (self.folder, self.FILES[split]), read_e2e)[1]

    def train_pairs(self) -> list[tuple[str, str]]:
        return [(mr, ref) for _, mr, ref in self._rows("train")]

    def eval_sources(self, split: str) -> list[Source]:
        grouped: dict[str, Source] = {}
        for line, mr, ref in self._rows(split):
            grouped.setdefault(mr, Source(mr, [], str(line))).references.append(ref)
        return list(grouped.values())


class WebNLGDataModule(GenerationDataModule):
    """WebNLG 2017: ``webnlg_challenge_2017/{train,dev}/*triples/*.xml[.gz]``, test
    ``test/testdata_with_lex.xml[.gz]``. Training uses ``comment="good"`` lexicalisations only (as
    Prefix-Tuning); evaluation references are every lexicalisation of an entry.

    Each evaluation entry is also scored in its subset, as Prefix-Tuning reports S/U/A: ``seen`` when its
    category occurs in the training files (`seen_categories`, read from the data), ``unseen`` otherwise. On the
    2017 data the 10 seen categories are Airport, Astronaut, Building, City, ComicsCharacter, Food, Monument,
    SportsTeam, University, WrittenWork, and the test set's 5 unseen ones Artist, Athlete, CelestialBody,
    MeanOfTransportation, Politician (971 and 891 of its 1,862 entries); the dev set is all seen.
    """

    def __init__(self, task: str = "webnlg", folder: str = "webnlg/webnlg_challenge_2017", **kwargs) -> None:
        super().__init__(task=task, folder=folder, **kwargs)
        self._train: list[Source] | None = None

    def _train_sources(self) -> list[Source]:
        if self._train is None:
            self._train = read_webnlg(self._files("train"), good_only=True)
        return self._train

    def seen_categories(self) -> set[str]:
        """The categories of the training files' entries."""
        return {s.category for s in self._train_sources()}

    def _files(self, split: str) -> list[Path]:
        base = self.data_dir / self.folder
        if split == "test":
            return [resolve_split_file(self.data_dir, f"{self.folder}/test", "testdata_with_lex.xml")]
        sub = {"train": "train", "validation": "dev"}[split]
        files = sorted((base / sub).glob("*triples/*.xml*"))
        if not files:
            raise FileNotFoundError(
                f"no WebNLG XML files under {base / sub}/*triples/; set DEEPPROMPT_DATA_DIR"
            )
        return files

    def train_pairs(self) -> list[tuple[str, str]]:
        return [(s.text, ref) for s in self._train_sources() for ref in s.references]

    def eval_sources(self, split: str) -> list[Source]:
        sources = read_webnlg(self._files(split), good_only=False)
        seen = self.seen_categories()
        for s in sources:
            s.subset = "seen" if s.category in seen else "unseen"
        return sources
