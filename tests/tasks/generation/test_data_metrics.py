"""E2E/WebNLG readers (file:line errors), linearisation, data module features, BLEU/ROUGE-L."""

from __future__ import annotations

import gzip

import pytest
import torch

from deepprompt.errors import DataFormatError
from deepprompt.tasks.generation import (
    E2EDataModule,
    WebNLGDataModule,
    bleu,
    generation_scores,
    linearize_e2e,
    read_e2e,
    read_webnlg,
    ter,
)
from tests.tasks.generation.helpers import word_tokenizer

E2E_WORDS = [
    "name",
    ":",
    "The",
    "Vaults",
    "|",
    "eatType",
    "pub",
    "food",
    "English",
    "||",
    "The",
    "Vaults",
    "is",
    "a",
    "pub",
    ".",
    "English",
    "serves",
    "food",
]


def write_e2e(root, n_train=12, short_every=None):
    """E2E files of two MRs; ``short_every``: every k-th training pair a shorter one (batches that need padding)."""
    rows = [
        '"name[The Vaults], eatType[pub]",The Vaults is a pub .',
        '"name[The Vaults], food[English]",The Vaults serves English food .',
    ]
    short = '"name[The Vaults]",The Vaults .'
    pairs = [short if short_every and i % short_every == 0 else rows[i % 2] for i in range(n_train)]
    train = "mr,ref\n" + "\n".join(pairs) + "\n"
    dev = "mr,ref\n" + rows[0] + "\n" + rows[1] + "\n" + '"name[The Vaults], eatType[pub]",The Vaults pub .\n'
    (root / "e2e").mkdir(parents=True, exist_ok=True)
    for name, text in (("trainset.csv.gz", train), ("devset.csv.gz", dev), ("testset_w_refs.csv.gz", dev)):
        with gzip.open(root / "e2e" / name, "wt", encoding="utf-8") as f:
            f.write(text)
    return root


def save_tokenizer(path):
    tok = word_tokenizer(E2E_WORDS)
    tok.save_pretrained(path)
    return str(path)


def test_linearize_and_read_e2e_errors(tmp_path):
    assert linearize_e2e("name[The Vaults], eatType[pub]") == "name : The Vaults | eatType : pub"
    path = tmp_path / "bad.csv"
    path.write_text('mr,ref\n"name[A], food[B]",ok\n"name[A], food B",broken mr\n')
    with pytest.raises(DataFormatError, match=r"bad.csv:3: malformed meaning representation"):
        read_e2e(path)
    path.write_text('mr,ref\n"name[A]",ok\n"name[A]",x,extra\n')
    with pytest.raises(DataFormatError, match=r"bad.csv:3: expected 2 fields"):
        read_e2e(path)
    path.write_text('mr,ref\n"name[A]","multi\nline ref"\n"name[A], food B",broken\n')
    with pytest.raises(DataFormatError, match=r"bad.csv:4:"):  # multi-line quoted fields keep counting
        read_e2e(path)


def test_e2e_and_webnlg_readers_name_the_file_for_bad_bytes_and_broken_gzip(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b'mr,ref\n"name[A]",ok\n"name[Caf\xe9]",broken byte\n')
    with pytest.raises(DataFormatError, match=r"latin1.csv:3: not UTF-8 text: byte 0xe9"):
        read_e2e(path)
    full = gzip.compress(b"mr,ref\n" + b'"name[A]",a fine reference\n' * 2000)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataFormatError, match=r"cut.csv.gz:\d+: the gzip data ends early"):
        read_e2e(cut)
    fake = tmp_path / "plain.xml.gz"
    fake.write_text(WEBNLG)
    with pytest.raises(DataFormatError, match=r"plain.xml.gz: not a gzip file"):
        read_webnlg([fake], good_only=True)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b'\xef\xbb\xbfmr,ref\r\n"name[A]",ok\r\n')
    assert read_e2e(bom) == [(2, "name : A", "ok")]


WEBNLG = """<benchmark>
  <entries>
    <entry category="Airport" eid="Id1" size="1">
      <modifiedtripleset>
        <mtriple>Aarhus_Airport | cityServed | Aarhus</mtriple>
      </modifiedtripleset>
      <lex comment="good" lid="Id1">Aarhus airport serves Aarhus.</lex>
      <lex comment="bad" lid="Id2">Aarhus bad.</lex>
    </entry>
    <entry category="Airport" eid="Id2" size="1">
      <modifiedtripleset>
        <mtriple>Aarhus_Airport cityServed</mtriple>
      </modifiedtripleset>
      <lex comment="good" lid="Id1">x</lex>
    </entry>
  </entries>
</benchmark>
"""


def test_read_webnlg_good_only_and_line_errors(tmp_path):
    ok = tmp_path / "ok.xml"
    ok.write_text(WEBNLG.split('    <entry category="Airport" eid="Id2"')[0] + "  </entries>\n</benchmark>\n")
    (train,) = read_webnlg([ok], good_only=True)
    assert train.text == "Aarhus Airport : cityServed : Aarhus" and train.references == [
        "Aarhus airport serves Aarhus."
    ]
    assert read_webnlg([ok], good_only=False)[0].references == [
        "Aarhus airport serves Aarhus.",
        "Aarhus bad.",
    ]
    bad = tmp_path / "bad.xml"
    bad.write_text(WEBNLG)
    with pytest.raises(DataFormatError, match=r"bad.xml:10: malformed triple"):
        read_webnlg([bad], good_only=True)
    broken = tmp_path / "broken.xml"
    broken.write_text("<benchmark>\n<entries>\n<entry>\n</benchmark>\n")
    with pytest.raises(DataFormatError, match=r"broken.xml:4: invalid XML"):
        read_webnlg([broken], good_only=True)


def test_e2e_datamodule_features_mask_the_source_and_group_references(tmp_path):
    dm = E2EDataModule(
        tokenizer=save_tokenizer(tmp_path / "tok"),
        data_dir=str(write_e2e(tmp_path, short_every=3)),
        batch_size=4,
        limit_train_examples=6,
        generation={"num_beams": 2},
    )
    dm.setup("fit")
    assert len(dm._datasets["train"]) == 6
    batch = next(iter(dm.train_dataloader()))
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == mask.shape
    # training batches are right padded: every row starts with a real token, so no query of a causal model
    # attends to padding only; evaluation batches are left padded (generation continues the prompt)
    masks = [b["attention_mask"] for b in dm.train_dataloader()]
    assert all(torch.all(m[:, 0] == 1) for m in masks) and not all(torch.all(m[:, -1] == 1) for m in masks)
    batch = next(b for b in dm.train_dataloader() if not torch.all(b["attention_mask"][:, -1] == 1))
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    row = int(mask.sum(1).argmin())  # a padded row
    prompt_len = int(((labels[row] == -100) & (mask[row] == 1)).sum())
    decoded_prompt = dm.tokenizer.decode(ids[row][mask[row] == 1][:prompt_len])
    assert decoded_prompt.endswith("||") and decoded_prompt.startswith("name : The Vaults")
    last = int(mask[row].sum()) - 1
    assert labels[row, last] == dm.tokenizer.eos_token_id and torch.all(labels[row, last + 1 :] == -100)
    evaluation = dm.val_dataloader().collate_fn([{"input_ids": [5, 6, 7]}, {"input_ids": [5]}])
    assert evaluation["input_ids"][1].tolist() == [dm.tokenizer.pad_token_id] * 2 + [5]
    assert dm.references() == [
        ["The Vaults is a pub .", "The Vaults pub ."],
        ["The Vaults serves English food ."],
    ]
    assert dm.module_kwargs()["generation"] == {"num_beams": 2}


def test_webnlg_datamodule_on_real_layout(tmp_path):
    for split in ("train", "dev"):
        folder = tmp_path / "webnlg" / "webnlg_challenge_2017" / split / "1triples"
        folder.mkdir(parents=True)
        with gzip.open(folder / "a.xml.gz", "wt") as f:
            f.write(
                WEBNLG.split('    <entry category="Airport" eid="Id2"')[0] + "  </entries>\n</benchmark>\n"
            )
    tok = word_tokenizer(
        ["Aarhus", "Airport", ":", "cityServed", "|", "||", "airport", "serves", "Aarhus.", "bad."]
    )
    tok.save_pretrained(tmp_path / "tok")
    dm = WebNLGDataModule(tokenizer=str(tmp_path / "tok"), data_dir=str(tmp_path))
    dm.setup("fit")
    assert len(dm._datasets["train"]) == 1  # the 'bad' lexicalisation is not trained on
    assert dm.references() == [["Aarhus airport serves Aarhus.", "Aarhus bad."]]


def test_bleu_uses_every_reference_and_rouge_l():
    hyps = ["the cat sat on the mat", "a dog runs in the park today"]
    refs = [["a cat was on a mat", "the cat sat on the mat"], ["a dog runs in the park today"]]
    assert bleu(hyps, refs) == pytest.approx(100.0)
    assert bleu(hyps, [r[:1] for r in refs]) < 100.0
    scores = generation_scores(hyps, refs)
    assert scores["rouge_l"] == pytest.approx(100.0)
    assert "ter" not in scores  # slow: only when asked for
    assert generation_scores(hyps, refs, with_ter=True)["ter"] == pytest.approx(0.0)
    assert generation_scores(["x y"], [["a b"]], with_ter=True) == {"bleu": 0.0, "rouge_l": 0.0, "ter": 100.0}


def test_ter_counts_edits_to_the_closest_reference_over_the_corpus():
    # "the cat sat" vs "the cat sat down": one insertion; the second input matches its second reference exactly;
    # corpus TER = edits / the inputs' mean reference lengths = (1 + 0) / (4 + (2 + 3) / 2) x 100
    hyps = ["the cat sat", "a dog ran"]
    refs = [["the cat sat down"], ["dogs run", "a dog ran"]]
    assert ter(hyps, refs) == pytest.approx(100 / 6.5)
    assert ter(["the cat sat down", "a dog ran"], refs) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference lists"):
        ter(hyps, refs[:1])
