"""`deepprompt-predict`'s answers per task family equal what the trained module computes on the same examples.

Each test trains a tiny run on the fixture files, predicts on its validation file through the inference core
(`read_examples` + `run_predictions`, what the CLI runs) and recomputes the answers with the module's own
forward and the data module's own loader and post-processing (the code deepprompt-eval scores with).
"""

from __future__ import annotations

import json

import pytest
import torch

from deepprompt.inference.families import iob2_spans
from deepprompt.inference.inputs import read_examples
from deepprompt.predict import load_run, run_predictions
from deepprompt.tasks.qa.data import postprocess_predictions

pytestmark = pytest.mark.usefixtures("one_thread")


def _predict(run, path, fmt="auto", checkpoint="last"):
    runner, module = load_run(run, checkpoint)
    examples = read_examples(str(path), runner, fmt)
    return runner, module, run_predictions(runner, module, examples, batch_size=5, show_progress=False)


@torch.no_grad()
def _module_outputs(runner, module):
    dm = runner.datamodule
    dm.setup("validate")
    loader = dm.val_dataloader()
    loader = loader[0] if isinstance(loader, list) else loader
    return [(batch, module(batch)) for batch in loader]


def test_classification_probabilities_equal_the_module(trained, runs_root):
    run = trained("rte", "data=rte")
    runner, module, answers = _predict(run, runs_root / "data" / "rte" / "val.jsonl.gz")
    expected = torch.cat([out.softmax(-1) for _, out in _module_outputs(runner, module)])
    assert len(answers) == expected.shape[0] == 16
    got = torch.tensor([[a["probabilities"][n] for n in ("entailment", "not_entailment")] for a in answers])
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)
    assert [a["label"] for a in answers] == [runner.labels[i] for i in expected.argmax(-1).tolist()]
    assert [a["line"] for a in answers] == list(range(1, 17))


def test_decoder_classifier_reads_the_last_real_token_as_the_module_does(trained, runs_root):
    """A decoder-only classifier (head.pooling=last): predict pools each row's last real token, not the first."""
    run = trained("rte_llama", "data=rte", "backbone=tiny_llama")
    runner, module, answers = _predict(run, runs_root / "data" / "rte" / "val.jsonl.gz")
    assert runner.pooling == "last"
    expected = torch.cat([out.softmax(-1) for _, out in _module_outputs(runner, module)])
    assert len(answers) == expected.shape[0] == 16
    got = torch.tensor([[a["probabilities"][n] for n in ("entailment", "not_entailment")] for a in answers])
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)


def test_ner_entities_equal_the_module_tags_with_character_offsets(trained, runs_root):
    run = trained("ner", "data=conll2003")
    runner, module, answers = _predict(run, runs_root / "data" / "conll2003" / "dev.txt.gz", fmt="conll")
    expected = []
    for batch, logits in _module_outputs(runner, module):
        expected += module.word_predictions(logits, batch)[1]
    assert len(answers) == len(expected) > 0
    for answer, tags in zip(answers, expected, strict=True):
        spans = iob2_spans(tags)
        assert len(answer["entities"]) == len(spans)
        for entity, (first, last, kind) in zip(answer["entities"], spans, strict=True):
            assert entity["type"] == kind
            assert entity["end"] > entity["start"]
            assert entity["text"].count(" ") == last - first  # one word per token between the offsets
    assert any(a["entities"] for a in answers)  # the check above compared something


def test_ner_plain_text_offsets_point_into_the_line(trained, runs_root, tmp_path):
    run = trained("ner", "data=conll2003")
    path = tmp_path / "sentences.txt"
    path.write_text("  John   Smith went to   Paris .\nLondon calling\n")
    _, _, answers = _predict(run, path)
    lines = path.read_text().splitlines()
    for answer, line in zip(answers, lines, strict=True):
        for entity in answer["entities"]:
            assert line[entity["start"] : entity["end"]] == entity["text"]


@pytest.mark.slow
def test_copa_choice_probabilities_equal_the_module(trained, runs_root):
    run = trained("copa", "data=copa")
    runner, module, answers = _predict(run, runs_root / "data" / "copa" / "val.jsonl.gz")
    expected = torch.cat([out.float().softmax(-1) for _, out in _module_outputs(runner, module)])
    got = torch.tensor([[a["probabilities"]["choice1"], a["probabilities"]["choice2"]] for a in answers])
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)
    assert [a["choice"] for a in answers] == expected.argmax(-1).tolist()


@pytest.mark.slow
def test_multirc_option_probabilities_equal_the_module(trained, runs_root):
    run = trained("multirc", "data=multirc")
    runner, module, answers = _predict(run, runs_root / "data" / "multirc" / "val.jsonl.gz")
    expected = torch.cat([out.softmax(-1)[:, 1] for _, out in _module_outputs(runner, module)])
    got = torch.tensor([option["probability"] for a in answers for option in a["answers"]])
    assert got.shape[0] >= expected.shape[0]  # the data module keeps the first limit_eval_examples options
    torch.testing.assert_close(got[: expected.shape[0]], expected, atol=2e-6, rtol=0)


@pytest.mark.slow
def test_qa_answers_equal_the_post_processed_module_spans(trained, runs_root, tmp_path):
    run = trained("squad", "data=squad", "data.max_seq_length=64", "data.doc_stride=16")
    runner, module = load_run(run, "last")
    dm = runner.datamodule
    questions = dm.examples("validation")[: dm.limit_eval_examples]
    path = tmp_path / "questions.jsonl"
    path.write_text(
        "".join(json.dumps({k: q[k] for k in ("id", "question", "context")}) + "\n" for q in questions)
    )
    answers = run_predictions(
        runner, module, read_examples(str(path), runner), batch_size=3, show_progress=False
    )
    dm.setup("validate")
    logits = {}
    for batch, (start, end) in _module_outputs(runner, module):
        for row, feature in enumerate(batch["feature_index"].tolist()):
            logits[feature] = (start[row].numpy(), end[row].numpy())
    expected = postprocess_predictions(dm.dataset("validation"), logits, dm.n_best, dm.max_answer_length)
    assert [a["answer"] for a in answers] == [expected[q["id"]] for q in questions]
    for answer, question in zip(answers, questions, strict=True):
        if answer["answer"]:
            assert question["context"][answer["start"] : answer["end"]] == answer["answer"]
            assert isinstance(answer["score"], float)


@pytest.mark.slow
def test_generation_equals_the_runs_own_validation_outputs(trained, runs_root):
    run = trained("e2e", "data=e2e")
    _, _, answers = _predict(run, runs_root / "data" / "e2e" / "devset.csv.gz")
    [predictions] = sorted((run / "predictions").glob("validation_epoch*.jsonl"))
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    by_source = {r["source"]: r["hypothesis"] for r in rows}
    runner, _ = load_run(run, "last")
    examples = read_examples(str(runs_root / "data" / "e2e" / "devset.csv.gz"), runner)
    assert len(answers) == len(examples) == 3
    for example, answer in zip(examples, answers, strict=True):
        assert answer["generated"] == by_source[example["source"]]
