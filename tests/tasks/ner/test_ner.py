"""CoNLL reading, tag-scheme normalisation, first-sub-token alignment and the seqeval-equivalent entity F1."""

from __future__ import annotations

import os
import random

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score

from deepprompt.errors import DataFormatError
from deepprompt.tasks.ner import EntityF1, NERDataModule, entity_prf, get_entities, read_conll, to_iob2
from tests.tasks.conftest import write_text

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

Paris NNP B-NP I-LOC
London NNP B-NP B-LOC
"""


def test_read_conll_skips_docstart_and_splits_on_blank_lines(tmp_path):
    path = write_text(tmp_path / "train.txt.gz", CONLL)
    sentences = list(read_conll(path))
    assert [tokens for _, tokens, _ in sentences] == [
        ["EU", "rejects", "German", "call"],
        ["Peter", "Blackburn"],
        ["Paris", "London"],
    ]
    assert sentences[0][0] == 3 and sentences[2][0] == 13  # first line of each sentence
    assert sentences[2][2] == ["I-LOC", "B-LOC"]
    assert [tags for _, _, tags in read_conll(path, tag_column=2)][1] == ["B-NP", "I-NP"]


def test_malformed_line_fails_with_file_and_line(tmp_path):
    path = write_text(tmp_path / "bad.txt", "EU NNP B-NP I-ORG\nrejects\n")
    with pytest.raises(DataFormatError, match=r"bad.txt:2: expected a token .* got 1 column"):
        list(read_conll(path, tag_column=3))


def test_bad_tag_fails_with_file_and_line(tmp_path, tokenizer_path):
    write_text(tmp_path / "x" / "train.txt", "EU B-ORG\nsays O\nhi X-PER\n")
    write_text(tmp_path / "x" / "dev.txt", "EU B-ORG\n")
    dm = NERDataModule(
        "x",
        tokenizer_path,
        data_dir=str(tmp_path),
        files={"train": "train.txt", "validation": "dev.txt"},
        entity_types=["ORG", "PER"],
    )
    with pytest.raises(DataFormatError, match=r"train.txt:3: tag 'X-PER'"):
        dm.setup("fit")


@pytest.mark.parametrize(
    ("scheme", "tags", "iob2"),
    [
        (
            "iob1",
            ["I-ORG", "O", "I-MISC", "I-PER", "I-PER", "B-PER"],
            ["B-ORG", "O", "B-MISC", "B-PER", "I-PER", "B-PER"],
        ),
        ("iob1", ["I-LOC", "I-PER"], ["B-LOC", "B-PER"]),
        ("iob2", ["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC"]),
        (
            "bioes",
            ["S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "O"],
            ["B-PER", "B-LOC", "I-LOC", "I-LOC", "B-LOC", "O"],
        ),
        ("iobes", ["B-ORG", "E-ORG", "B-ORG", "E-ORG"], ["B-ORG", "I-ORG", "B-ORG", "I-ORG"]),
    ],
)
def test_schemes_normalise_to_iob2(scheme, tags, iob2):
    assert to_iob2(tags, scheme) == iob2


def test_bioes_tag_in_iob_file_is_an_error():
    with pytest.raises(ValueError, match="token 1: tag 'S-PER' is not valid in IOB1"):
        to_iob2(["O", "S-PER"], "iob1")


def _random_tags(rng: random.Random, n: int, prefixes: str) -> list[str]:
    return [
        "O" if rng.random() < 0.4 else f"{rng.choice(prefixes)}-{rng.choice(['PER', 'LOC', 'ORG'])}"
        for _ in range(n)
    ]


@pytest.mark.parametrize("prefixes", ["BI", "I", "BIES"])
def test_entity_f1_matches_seqeval(prefixes):
    rng = random.Random(len(prefixes))
    true = [_random_tags(rng, rng.randint(1, 12), prefixes) for _ in range(200)]
    pred = [
        [t if rng.random() < 0.7 else rng.choice(["O", "B-PER", "I-LOC", "I-ORG"]) for t in s] for s in true
    ]
    ours = entity_prf(true, pred)
    assert ours["precision"] == pytest.approx(precision_score(true, pred))
    assert ours["recall"] == pytest.approx(recall_score(true, pred))
    assert ours["f1"] == pytest.approx(f1_score(true, pred))
    metric = EntityF1()
    metric.update(true[:100], pred[:100])
    metric.update(true[100:], pred[100:])
    assert metric.compute()["f1"].item() == pytest.approx(f1_score(true, pred))


def test_iob1_input_scores_as_seqeval_after_normalisation():
    """seqeval reads raw IOB1 leniently; our IOB2 normalisation must give the same entities and F1."""
    true = [["I-ORG", "O", "I-MISC", "O"], ["I-PER", "I-PER"], ["I-LOC", "B-LOC", "O", "I-LOC"]]
    pred = [["I-ORG", "O", "O", "O"], ["I-PER", "B-PER"], ["I-LOC", "I-LOC", "O", "I-LOC"]]
    for seq in true + pred:
        assert get_entities(to_iob2(seq, "iob1")) == get_entities(seq)
    ours = entity_prf([to_iob2(s, "iob1") for s in true], [to_iob2(s, "iob1") for s in pred])
    assert ours["f1"] == pytest.approx(f1_score(true, pred))
    assert ours["precision"] == pytest.approx(precision_score(true, pred)) == pytest.approx(2 / 5)


def test_first_subtoken_labelling(tmp_path, tokenizer_path):
    text = "Unbelievably B-PER\nsmart O\nJohannesburg B-LOC\n\n"
    for name in ("train.txt", "dev.txt", "test.txt"):
        write_text(tmp_path / "toy" / name, text)
    dm = NERDataModule("toy", tokenizer_path, data_dir=str(tmp_path), scheme="iob2")
    dm.setup("fit")
    assert dm.label_names == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert dm.eval_splits == ("validation", "test")
    feature = dm.dataset("train")[0]
    tokens = dm.tokenizer.convert_ids_to_tokens(feature["input_ids"])
    labelled = [(tok, lab) for tok, lab in zip(tokens, feature["labels"], strict=True) if lab != -100]
    assert [dm.label_names[lab] for _, lab in labelled] == ["B-PER", "O", "B-LOC"]
    assert [tok for tok, _ in labelled] == [tokens[1], "smart", tokens[tokens.index("smart") + 1]]
    assert len(tokens) > 5  # the long words were split: their later pieces carry -100
    assert feature["labels"][0] == feature["labels"][-1] == -100  # [CLS], [SEP]
    assert feature["word_labels"] == [3, 0, 1]


def test_truncated_words_count_as_missed_entities(tmp_path, tokenizer_path):
    text = " ".join(f"w{i} O" for i in range(3)).replace(" O ", " O\n") + "\nParis B-LOC\n\n"
    for name in ("train.txt", "dev.txt"):
        write_text(tmp_path / "toy" / name, text)
    dm = NERDataModule(
        "toy",
        tokenizer_path,
        data_dir=str(tmp_path),
        files={"train": "train.txt", "validation": "dev.txt"},
        max_seq_length=4,
        batch_size=1,
    )
    dm.setup("fit")
    assert dm.eval_splits == ("validation",)
    batch = next(iter(dm.val_dataloader()))
    assert batch["word_labels"].tolist() == [[0, 0, 0, 1]]  # all gold words, though Paris is cut off
    assert (batch["word_index"] >= 0).sum() == 1  # "w0" is two pieces: only one word fits


@pytest.mark.data
@pytest.mark.skipif(not os.environ.get("DEEPPROMPT_DATA_DIR"), reason="DEEPPROMPT_DATA_DIR is not set")
def test_real_conll2003_counts(tokenizer_path):
    dm = NERDataModule(
        "conll2003",
        tokenizer_path,
        data_dir=os.environ["DEEPPROMPT_DATA_DIR"],
        scheme="iob1",
        entity_types=["PER", "ORG", "LOC", "MISC"],
    )
    counts = {split: len(dm.read_split(split, None)[1]) for split in ("train", "validation", "test")}
    assert counts == {"train": 14041, "validation": 3250, "test": 3453}
    dm.setup("fit")
    assert len(dm.dataset("test")) == 3453


def test_lone_tag_line_is_malformed_not_a_token(tmp_path):
    path = write_text(tmp_path / "lone.txt", "EU B-ORG\nO\nsays O\n")
    with pytest.raises(DataFormatError) as info:
        list(read_conll(path))
    assert str(info.value) == (
        f"{path}:2: expected a token (column 0) and a tag (column -1) separated by spaces or tabs, got 1 column(s)"
    )
    # a token made of a non-ASCII space is a token, not a column separator
    assert list(read_conll(write_text(tmp_path / "nbsp.txt", "\u00a0 O\nEU B-ORG\n"))) == [
        (1, ["\u00a0", "EU"], ["O", "B-ORG"])
    ]


def test_unknown_tag_names_its_own_line(tmp_path, tokenizer_path):
    write_text(tmp_path / "x" / "train.txt", "EU B-ORG\nsays O\nhi B-FOO\n")
    write_text(tmp_path / "x" / "dev.txt", "EU B-ORG\n")
    dm = NERDataModule(
        "x",
        tokenizer_path,
        data_dir=str(tmp_path),
        files={"train": "train.txt", "validation": "dev.txt"},
        entity_types=["ORG"],
    )
    with pytest.raises(DataFormatError) as info:
        dm.setup("fit")
    assert str(info.value) == (
        f"{tmp_path / 'x' / 'train.txt'}:3: tag 'B-FOO' is not one of the labels ['O', 'B-ORG', 'I-ORG']"
    )


def test_bom_before_docstart_is_not_a_token(tmp_path):
    path = write_text(tmp_path / "bom.txt", "\ufeff-DOCSTART- -X- O\n\nEU B-ORG\n")
    assert list(read_conll(path)) == [(3, ["EU"], ["B-ORG"])]
