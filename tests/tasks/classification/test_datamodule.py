"""ClassificationDataModule over small fixture folders (and, with DEEPPROMPT_DATA_DIR, the real data)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest
import torch

from deepprompt.data import LengthGroupedSampler
from deepprompt.errors import ConfigError, DataFormatError
from deepprompt.tasks.classification import ClassificationDataModule, UnknownTaskError

MakeDM = Callable[..., ClassificationDataModule]


def loaded(make_dm: MakeDM, task: str = "rte", **kwargs: object) -> ClassificationDataModule:
    dm = make_dm(task, **kwargs)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize(
    ("task", "train_labels", "val_labels", "label_names"),
    [
        ("sst2", [1, 0, 1], [0, 1], ("negative", "positive")),
        ("rte", [0, 1], [1, 0], ("entailment", "not_entailment")),
        ("boolq", [1, 0], [1, 0], ("false", "true")),
        ("cb", [1, 0, 2], [1, 0], ("entailment", "contradiction", "neutral")),
    ],
)
def test_labels_map_to_ids_for_each_task(
    make_dm: MakeDM, task: str, train_labels: list[int], val_labels: list[int], label_names: tuple[str, ...]
) -> None:
    dm = loaded(make_dm, task)
    assert dm.dataset("train").labels == train_labels
    assert dm.dataset("validation").labels == val_labels
    assert dm.label_names == label_names and dm.num_labels == len(label_names)
    assert dm.task.name == task and dm.hparams.task == task


def test_pairs_are_encoded_as_two_segments(make_dm: MakeDM) -> None:
    dm = loaded(make_dm, "rte")
    item = dm.dataset("train")[0]
    types = item["token_type_ids"]
    assert 0 in types and 1 in types and types == sorted(types)  # first segment, then second
    second = [t for t, s in zip(item["input_ids"], types, strict=True) if s == 1]
    assert dm.tokenizer.decode(second, skip_special_tokens=True) == "a cat sat."
    single = loaded(make_dm, "sst2").dataset("train")[0]
    assert set(single["token_type_ids"]) == {0}


def test_batches_are_padded_to_their_longest_example(make_dm: MakeDM) -> None:
    dm = loaded(make_dm, "sst2", max_seq_length=64)
    lengths = dm.dataset("validation").lengths
    assert lengths[0] != lengths[1]
    batch = next(iter(dm.val_dataloader()))
    assert batch["input_ids"].shape == (2, max(lengths))
    assert all(t.dtype == torch.long for t in batch.values())
    assert batch["attention_mask"].sum(1).tolist() == lengths
    short = batch["input_ids"][lengths.index(min(lengths))]
    assert (short[min(lengths) :] == dm.tokenizer.pad_token_id).all()


def test_pad_to_multiple_of_rounds_the_width_up(make_dm: MakeDM) -> None:
    dm = loaded(make_dm, "sst2", pad_to_multiple_of=8)
    width = next(iter(dm.val_dataloader()))["input_ids"].shape[1]
    assert width % 8 == 0 and width - 8 < max(dm.dataset("validation").lengths) <= width


def test_long_inputs_are_truncated_to_max_seq_length(
    make_dm: MakeDM, data_dir: Path, writers: SimpleNamespace
) -> None:
    long_passage = "the passage goes on and on " * 40
    rows = [{"question": "is it long", "passage": long_passage, "label": True, "idx": 0}]
    writers.jsonl(data_dir / "boolq" / "train.jsonl", rows)
    dm = loaded(make_dm, "boolq", max_seq_length=16)
    item = dm.dataset("train")[0]
    assert len(item["input_ids"]) == 16
    assert item["input_ids"][-1] == dm.tokenizer.sep_token_id
    assert item["token_type_ids"].count(0) >= 5  # the question survives, the passage is cut


def test_limits_take_the_first_rows(make_dm: MakeDM) -> None:
    dm = loaded(make_dm, "cb", limit_train_examples=2, limit_eval_examples=1)
    assert dm.dataset("train").labels == [1, 0]
    assert dm.dataset("validation").labels == [1]


def test_validation_loader_keeps_file_order_and_test_loader_is_validation(make_dm: MakeDM) -> None:
    dm = loaded(make_dm, "cb", eval_batch_size=1)
    assert [b["labels"].item() for b in dm.val_dataloader()] == [1, 0]
    assert [b["labels"].item() for b in dm.test_dataloader()] == [1, 0]


def test_setup_for_validation_reads_only_the_validation_split(make_dm: MakeDM, data_dir: Path) -> None:
    (data_dir / "cb" / "train.jsonl.gz").unlink()
    dm = make_dm("cb")
    dm.setup("validate")
    assert len(dm.dataset("validation")) == 2
    with pytest.raises(RuntimeError, match="call setup"):
        dm.train_dataloader()


def _epoch_order(dm: ClassificationDataModule) -> list[list[int]]:
    return [b["input_ids"].tolist() for b in dm.train_dataloader()]


@pytest.mark.parametrize("group_by_length", [False, True])
def test_train_order_is_reproducible_from_the_seed(make_dm: MakeDM, group_by_length: bool) -> None:
    def order(seed: int) -> list[list[int]]:
        return _epoch_order(loaded(make_dm, "cb", batch_size=1, seed=seed, group_by_length=group_by_length))

    assert order(7) == order(7)
    assert any(order(7) != order(s) for s in range(8, 14))


def test_group_by_length_uses_the_length_grouped_sampler(make_dm: MakeDM) -> None:
    dm = loaded(make_dm, "cb", group_by_length=True)
    assert isinstance(dm.train_dataloader().sampler, LengthGroupedSampler)


def test_worker_processes_can_load_batches(make_dm: MakeDM) -> None:
    loader = loaded(make_dm, "rte", num_workers=1, batch_size=1).train_dataloader()
    assert loader.persistent_workers
    assert sorted(b["labels"].item() for b in loader) == [0, 1]  # collator and dataset crossed a pickle
    # Lightning's save_hyperparameters leaves the datamodule's __init__ frame in a reference cycle, and with it
    # the frames of its callers, this one included: without the del the loader and its persistent worker would
    # live until a later cyclic collection, which stops the worker only after a 5 s join (in whichever test)
    del loader


def test_hub_rows_are_read_when_no_data_dir(make_dm: MakeDM, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_load_dataset(path: str, name: str, split: str) -> datasets.Dataset:
        calls.append((path, name, split))
        return datasets.Dataset.from_dict(
            {
                "premise": ["p1", "p2", "p3"],
                "hypothesis": ["h1", "h2", "h3"],
                "label": [2, 0, 1],
                "idx": [0, 1, 2],
            }
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    dm = loaded(make_dm, "cb", data_dir=None, limit_eval_examples=2)
    assert calls == [("aps/super_glue", "cb", "train"), ("aps/super_glue", "cb", "validation")]
    assert dm.dataset("train").labels == [2, 0, 1]
    assert dm.dataset("validation").labels == [2, 0]


# --- errors -------------------------------------------------------------------------------------


def test_missing_data_dir(make_dm: MakeDM, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist.*DEEPPROMPT_DATA_DIR"):
        loaded(make_dm, "rte", data_dir=str(tmp_path / "missing"))


def test_missing_file_names_the_paths_tried(make_dm: MakeDM, data_dir: Path) -> None:
    (data_dir / "rte" / "val.jsonl.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"rte/val\.jsonl, .*rte/val\.jsonl\.gz"):
        loaded(make_dm, "rte")


def test_malformed_json_line_is_reported_with_its_line(
    make_dm: MakeDM, data_dir: Path, writers: SimpleNamespace
) -> None:
    good = '{"premise": "a", "hypothesis": "b", "label": "entailment"}\n'
    path = writers.text(data_dir / "rte" / "train.jsonl.gz", good * 3 + '{"premise": "a",\n' + good)
    with pytest.raises(DataFormatError, match=rf"^{path}:4: invalid JSON"):
        loaded(make_dm, "rte")


def test_label_outside_the_set_names_line_and_valid_labels(
    make_dm: MakeDM, data_dir: Path, writers: SimpleNamespace
) -> None:
    path = writers.tsv(data_dir / "sst2" / "dev.tsv", [("fine", "1"), ("odd", "3")])
    with pytest.raises(DataFormatError, match=rf"^{path}:3: label 3 is not one of .*0=negative, 1=positive"):
        loaded(make_dm, "sst2")


def test_missing_text_field_is_reported(make_dm: MakeDM, data_dir: Path, writers: SimpleNamespace) -> None:
    path = writers.jsonl(data_dir / "cb" / "val.jsonl", [{"premise": "p", "label": "neutral"}])
    with pytest.raises(DataFormatError, match=rf"^{path}:1: field 'hypothesis' is missing"):
        loaded(make_dm, "cb")


def test_empty_split_names_file_and_split(make_dm: MakeDM, data_dir: Path, writers: SimpleNamespace) -> None:
    path = writers.text(data_dir / "boolq" / "val.jsonl", "\n")
    with pytest.raises(DataFormatError, match=rf"^{path}: the validation split of boolq has no examples"):
        loaded(make_dm, "boolq")


def test_max_seq_length_beyond_the_tokenizer_limit(make_dm: MakeDM) -> None:
    with pytest.raises(ConfigError, match="max_seq_length=600 exceeds .*model_max_length=512"):
        make_dm("rte", max_seq_length=600)


def test_unknown_task(make_dm: MakeDM) -> None:
    with pytest.raises(UnknownTaskError, match="valid tasks: boolq, cb, rte, sst2"):
        make_dm("qnli")


# --- real data ----------------------------------------------------------------------------------

REAL_COUNTS = {"sst2": (67349, 872), "rte": (2490, 277), "boolq": (9427, 3270), "cb": (250, 56)}


@pytest.mark.data
@pytest.mark.skipif(not os.environ.get("DEEPPROMPT_DATA_DIR"), reason="DEEPPROMPT_DATA_DIR is not set")
def test_real_data_row_counts(tokenizer_path: str) -> None:
    start = time.perf_counter()
    for task, (n_train, n_val) in REAL_COUNTS.items():
        dm = ClassificationDataModule(task, tokenizer_path, data_dir=os.environ["DEEPPROMPT_DATA_DIR"])
        dm.setup("fit")
        train, val = dm.dataset("train"), dm.dataset("validation")
        assert (len(train), len(val)) == (n_train, n_val), task
        assert set(train.labels) == set(range(dm.num_labels)), task
        assert max(train.lengths) <= 128
    assert time.perf_counter() - start < 120


MNLI_ORDER = {0: "entailment", 1: "neutral", 2: "contradiction"}


def _numbered_cb(data_dir: Path, writers: SimpleNamespace) -> None:
    from tests.tasks.classification.conftest import CB

    numbered = [{**row, "label": {v: k for k, v in MNLI_ORDER.items()}[row["label"]]} for row in CB]
    writers.jsonl(data_dir / "cb" / "train.jsonl.gz", numbered)


def test_numbered_labels_of_a_named_task_fail_naming_file_line_and_names(
    make_dm: MakeDM, data_dir: Path, writers: SimpleNamespace
) -> None:
    _numbered_cb(data_dir, writers)
    with pytest.raises(DataFormatError) as info:
        loaded(make_dm, "cb")
    assert str(info.value) == (
        f"{data_dir / 'cb' / 'train.jsonl.gz'}:1: label 2 is a number, but cb files name their labels "
        "(entailment, contradiction, neutral); write the names, or say what each number means with "
        "data.label_map={<number>: <name>, ...}"
    )


def test_label_map_says_what_numbered_labels_mean(
    make_dm: MakeDM, data_dir: Path, writers: SimpleNamespace
) -> None:
    _numbered_cb(data_dir, writers)
    dm = loaded(make_dm, "cb", label_map=MNLI_ORDER)
    # CB's ids: entailment=0, contradiction=1, neutral=2 (rows: contradiction, entailment, neutral)
    assert dm.dataset("train").labels == [1, 0, 2]
    with pytest.raises(ConfigError, match=r"data.label_map maps '1' to 'maybe', which is not a cb label"):
        make_dm("cb", label_map={0: "entailment", 1: "maybe"})
