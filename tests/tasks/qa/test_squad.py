"""SQuAD reading, sliding windows, n-best post-processing, official EM/F1, no-answer threshold, article split."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from deepprompt.errors import DataFormatError
from deepprompt.tasks.qa import (
    SquadDataModule,
    exact_match_score,
    f1_score,
    normalize_answer,
    read_squad,
    squad_scores,
)
from deepprompt.tasks.qa.data import encode_windows, postprocess_predictions, split_by_article
from tests.tasks.conftest import write_text


def _doc(context: str, answer: str, impossible: bool = False) -> dict:
    qa = {"id": "q1", "question": "Where is the treasure ?"}
    qa["answers"] = [] if impossible else [{"text": answer, "answer_start": context.index(answer)}]
    if impossible:
        qa["is_impossible"] = True
    return {"version": "x", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": [qa]}]}]}


def test_normalisation_em_and_f1_on_known_strings():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear and THE plum.") == "apple pear and plum"
    assert exact_match_score("the Eiffel Tower.", "Eiffel tower") == 1.0
    assert exact_match_score("Eiffel", "Eiffel Tower") == 0.0
    assert f1_score("Eiffel", "the Eiffel Tower") == pytest.approx(2 / 3)  # p=1, r=1/2
    assert f1_score("in Paris France", "Paris") == pytest.approx(0.5)  # p=1/3, r=1
    assert f1_score("", "") == 1.0 and f1_score("x", "") == 0.0
    scores = squad_scores(
        {"a": "Paris", "b": "in London"}, {"a": ["paris", "Paris, France"], "b": ["London", "UK"]}
    )
    assert scores == {"exact_match": 50.0, "f1": pytest.approx(100 * (1 + 2 / 3) / 2)}


def test_read_squad_and_errors(tmp_path):
    path = write_text(tmp_path / "d.json.gz", json.dumps(_doc("The treasure is in Rome .", "Rome")))
    [example] = read_squad(path)
    assert example["answers"] == {"text": ["Rome"], "answer_start": [19]} and example["title"] == "T"
    bad = write_text(tmp_path / "bad.json", '{"data": [\n{"title": "x",\n "paragraphs": [}\n]}')
    with pytest.raises(DataFormatError, match=r"bad.json:3: invalid JSON"):
        read_squad(bad)
    doc = _doc("ctx Rome", "Rome")
    del doc["data"][0]["paragraphs"][0]["qas"][0]["question"]
    missing = write_text(tmp_path / "missing.json", json.dumps(doc))
    with pytest.raises(
        DataFormatError, match=r"missing.json: data\[0\].paragraphs\[0\].qas\[0\]: 'question'"
    ):
        read_squad(missing)


def test_answer_in_second_window_is_labelled_and_found(tmp_path, tokenizer_path):
    filler = " ".join(["stone river cloud paper"] * 20)
    context = f"{filler} The treasure is buried in Rome near the old bridge ."
    path = write_text(tmp_path / "s" / "dev.json", json.dumps(_doc(context, "Rome")))
    examples = read_squad(path)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    train = encode_windows(tok, examples, max_seq_length=48, doc_stride=16, training=True)
    assert len(train) >= 3  # several windows for one question
    labelled = [f for f in train.features if f["start_positions"] != 0]
    assert labelled and train.features[0]["start_positions"] == 0  # first window: answer not inside -> [CLS]
    f = labelled[0]
    assert tok.decode(f["input_ids"][f["start_positions"] : f["end_positions"] + 1]) == "rome"

    evals = encode_windows(tok, examples, max_seq_length=48, doc_stride=16, training=False)
    # logits that point at "Rome" only in the window holding it; other windows prefer [CLS] or nothing valid
    logits = {}
    for i, offsets in enumerate(evals.offsets):
        n = len(offsets)
        start, end = np.full(n, -5.0), np.full(n, -5.0)
        hit = [k for k, o in enumerate(offsets) if o is not None and context[o[0] : o[1]] == "Rome"]
        if hit:
            start[hit[0]] = end[hit[0]] = 5.0
        logits[i] = (start, end)
    assert sum(1 for i in logits if logits[i][0].max() > 0) >= 1
    assert postprocess_predictions(evals, logits) == {"q1": "Rome"}
    # max_answer_length: a long span scored best is rejected
    i = next(k for k in logits if logits[k][0].max() > 0)
    start, end = logits[i]
    first = next(k for k, o in enumerate(evals.offsets[i]) if o is not None)
    start[first], end[first] = 9.0, -9.0
    end[len(end) - 2] = 9.0
    assert postprocess_predictions(evals, {i: (start, end)})["q1"].startswith("Rome ")  # a longer span wins
    assert postprocess_predictions(evals, {i: (start, end)}, max_answer_length=1) == {"q1": "Rome"}


def test_no_answer_threshold(tmp_path, tokenizer_path):
    from transformers import AutoTokenizer

    context = "The treasure is in Rome ."
    path = write_text(tmp_path / "s" / "dev.json", json.dumps(_doc(context, "Rome")))
    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    data = encode_windows(tok, read_squad(path), max_seq_length=64, doc_stride=16, training=False)
    offsets = data.offsets[0]
    rome = next(k for k, o in enumerate(offsets) if o is not None and context[o[0] : o[1]] == "Rome")
    start, end = np.zeros(len(offsets)), np.zeros(len(offsets))
    start[0] = end[0] = 2.0  # null score 4
    start[rome] = end[rome] = 1.5  # best span 3
    logits = {0: (start, end)}
    assert postprocess_predictions(data, logits) == {"q1": "Rome"}  # SQuAD 1.1: always a span
    assert postprocess_predictions(data, logits, version_2_with_negative=True) == {"q1": ""}  # 4 - 3 > 0
    assert postprocess_predictions(
        data, logits, version_2_with_negative=True, null_score_diff_threshold=1.5
    ) == {"q1": "Rome"}
    assert squad_scores({"q1": ""}, {"q1": []}) == {"exact_match": 100.0, "f1": 100.0}


def test_article_split_is_deterministic_and_disjoint(task_data_dir, tokenizer_path):
    examples = read_squad(task_data_dir / "squad_v1" / "dev-v1.1.json.gz")
    a = split_by_article(examples, 0.8, seed=0)
    b = split_by_article(list(reversed(examples)), 0.8, seed=0)
    assert {e["title"] for e in a["train"]} == {e["title"] for e in b["train"]}
    assert len({e["title"] for e in a["train"]}) == 8
    assert not {e["title"] for e in a["train"]} & {e["title"] for e in a["validation"]}
    assert len(a["train"]) + len(a["validation"]) == len(examples)
    dm = SquadDataModule(
        "squad",
        tokenizer_path,
        data_dir=str(task_data_dir),
        folder="squad_v1",
        split_by_article=0.8,
        max_seq_length=64,
        doc_stride=16,
    )
    dm.setup("fit")
    assert len(dm.dataset("validation").examples) == len(a["validation"])


@pytest.mark.data
@pytest.mark.skipif(not os.environ.get("DEEPPROMPT_DATA_DIR"), reason="DEEPPROMPT_DATA_DIR is not set")
def test_real_squad_article_split_counts(tokenizer_path):
    dm = SquadDataModule(
        "squad",
        tokenizer_path,
        data_dir=os.environ["DEEPPROMPT_DATA_DIR"],
        folder="squad_v1",
        split_by_article=0.8,
        split_seed=0,
    )
    train, held_out = dm.examples("train"), dm.examples("validation")
    assert len(train) + len(held_out) == 10570
    assert len({e["title"] for e in train}) + len({e["title"] for e in held_out}) == 48
    assert not {e["title"] for e in train} & {e["title"] for e in held_out}
