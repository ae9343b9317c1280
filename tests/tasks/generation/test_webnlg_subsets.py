"""WebNLG seen/unseen/all: categories read from the XML, seen = the training files' categories, BLEU and
ROUGE-L per subset in the module's scores, metrics.json and the predictions."""

from __future__ import annotations

import gzip
import json

import pytest

from deepprompt.tasks.generation import WebNLGDataModule, bleu, rouge_l, subset_scores
from tests.conftest import run_dirs
from tests.tasks.generation.helpers import word_tokenizer

# (category, triple, references): the real format, one file per split as the 2017 release lays them out
TRAIN = [
    ("Airport", "Aarhus_Airport | cityServed | Aarhus", ["Aarhus airport serves Aarhus ."]),
    ("Food", "Bacon_Explosion | country | United_States", ["Bacon Explosion comes from United States ."]),
]
TEST = [
    (
        "Airport",
        "Aarhus_Airport | cityServed | Aarhus",
        ["Aarhus airport serves Aarhus .", "Aarhus airport ."],
    ),
    ("Food", "Bacon_Explosion | country | United_States", ["Bacon Explosion comes from United States ."]),
    ("Artist", "Aaron_Turner | genre | Black_metal", ["Aaron Turner plays Black metal ."]),
    ("Politician", "Abdul_Taib | party | Barisan", ["Abdul Taib is in Barisan party ."]),
]
WORDS = sorted({w for _, t, refs in TRAIN + TEST for w in " ".join([t.replace("_", " "), *refs]).split()})


def webnlg_xml(entries) -> str:
    body = []
    for i, (category, triple, refs) in enumerate(entries, 1):
        lexes = "\n".join(
            f'      <lex comment="good" lid="Id{j}">{ref}</lex>' for j, ref in enumerate(refs, 1)
        )
        body.append(
            f'    <entry category="{category}" eid="Id{i}" size="1">\n'
            f"      <originaltripleset>\n        <otriple>{triple}</otriple>\n      </originaltripleset>\n"
            f"      <modifiedtripleset>\n        <mtriple>{triple}</mtriple>\n      </modifiedtripleset>\n"
            f"{lexes}\n    </entry>"
        )
    return "<benchmark>\n  <entries>\n" + "\n".join(body) + "\n  </entries>\n</benchmark>\n"


def write_webnlg(root, train=TRAIN, test=TEST):
    base = root / "webnlg" / "webnlg_challenge_2017"
    files = {f"train/1triples/1triples_{c}_train_challenge.xml.gz": [e] for e in train for c in [e[0]]}
    files["dev/1triples/1triples_Airport_dev_challenge.xml.gz"] = train[:1]
    files["test/testdata_with_lex.xml.gz"] = test
    for name, entries in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(base / name, "wt", encoding="utf-8") as f:
            f.write(webnlg_xml(entries))
    return root


def datamodule(tmp_path, **kwargs):
    tok = word_tokenizer([*WORDS, ":", "|", "||"])
    tok.save_pretrained(tmp_path / "tok")
    return WebNLGDataModule(tokenizer=str(tmp_path / "tok"), data_dir=str(tmp_path / "data"), **kwargs)


def test_seen_categories_are_the_training_files_and_test_entries_keep_theirs(tmp_path):
    write_webnlg(tmp_path / "data")
    dm = datamodule(tmp_path, eval_split="test")
    dm.setup("fit")
    assert dm.seen_categories() == {"Airport", "Food"}
    assert [(s.category, s.subset) for s in dm.evaluation.data] == [
        ("Airport", "seen"),
        ("Food", "seen"),
        ("Artist", "unseen"),
        ("Politician", "unseen"),
    ]
    assert dm.evaluation.subsets() == {"seen": [0, 1], "unseen": [2, 3]}
    # every second entry: a subset spread over the file (seen entries come first in the 2017 test file)
    spread = datamodule(tmp_path, eval_split="test", eval_every=2)
    spread.setup("fit")
    assert [s.category for s in spread.evaluation.data] == ["Airport", "Artist"]
    assert spread.evaluation.subsets() == {"seen": [0], "unseen": [1]}


def test_seen_follows_the_training_data_not_a_fixed_list(tmp_path):
    write_webnlg(tmp_path / "data", train=[*TRAIN, TEST[2]])  # Artist in training: seen
    dm = datamodule(tmp_path, eval_split="test")
    dm.setup("fit")
    assert dm.seen_categories() == {"Airport", "Food", "Artist"}
    assert dm.evaluation.subsets() == {"seen": [0, 1, 2], "unseen": [3]}
    dev = datamodule(tmp_path)  # the dev set has training categories only
    dev.setup("fit")
    assert dev.evaluation.subsets() == {"seen": [0]}


def test_subset_scores_are_corpus_scores_of_each_subset():
    refs = [refs for _, _, refs in TEST]
    hyps = [refs[0][0], refs[1][0], "nothing in common here at all", "Abdul Taib is in party ."]
    scores = subset_scores(hyps, refs, {"seen": [0, 1], "unseen": [2, 3], "empty": []})
    assert scores["bleu_seen"] == pytest.approx(100.0) and scores["rouge_l_seen"] == pytest.approx(100.0)
    assert scores["bleu_unseen"] == pytest.approx(bleu(hyps[2:], refs[2:]))
    assert scores["rouge_l_unseen"] == pytest.approx(rouge_l(hyps[2:], refs[2:]))
    assert scores["bleu_unseen"] < scores["bleu"] < scores["bleu_seen"]
    assert scores["rouge_l"] == pytest.approx((2 * 100.0 + 2 * scores["rouge_l_unseen"]) / 4)
    assert not any(k.endswith("_empty") for k in scores)
    assert set(subset_scores(hyps, refs)) == {"bleu", "rouge_l"}  # no subsets (E2E): all only


def test_train_webnlg_test_split_writes_seen_unseen_metrics(run_cli, tmp_path):
    data = write_webnlg(tmp_path / "data")
    tok = word_tokenizer([*WORDS, ":", "|", "||"])
    tok.save_pretrained(tmp_path / "tok")
    run_cli(
        "deepprompt.train",
        "data=webnlg",
        "backbone=tiny_llama",
        "debug=limit",
        "method=ptuning_v2",
        f"backbone.name_or_path={tmp_path / 'tok'}",
        "data.eval_split=test",
        "data.generation.num_beams=2",
        "data.generation.max_new_tokens=8",
        "extras.print_config=false",
        "trainer.max_epochs=1",
        env={"DEEPPROMPT_DATA_DIR": str(data)},
    )
    (run,) = run_dirs(tmp_path / "outputs")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["task"] == "webnlg"
    rows = [json.loads(line) for line in (run / "predictions" / "test_epoch0.jsonl").read_text().splitlines()]
    assert [r["subset"] for r in rows] == ["seen", "seen", "unseen", "unseen"]
    hyps, refs = [r["hypothesis"] for r in rows], [r["references"] for r in rows]
    expected = subset_scores(hyps, refs, {"seen": [0, 1], "unseen": [2, 3]})
    for key in ("bleu", "rouge_l", "bleu_seen", "rouge_l_seen", "bleu_unseen", "rouge_l_unseen"):
        assert metrics["last"][f"val/{key}"] == pytest.approx(expected[key], abs=1e-4)
