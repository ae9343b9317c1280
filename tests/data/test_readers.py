"""Readers, file resolution and the task registry's label mapping."""

from __future__ import annotations

import gzip
from pathlib import Path
from types import SimpleNamespace

import pytest

from deepprompt.data import read_jsonl, read_tsv, resolve_split_file
from deepprompt.errors import ConfigError, DataFormatError
from deepprompt.tasks.classification import TASKS, UnknownTaskError, get_task


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.jsonl.gz"])
def test_read_jsonl_yields_line_numbers_and_skips_blank_lines(
    tmp_path: Path, writers: SimpleNamespace, name: str
) -> None:
    path = writers.text(tmp_path / name, '{"a": 1}\n\n{"a": 2}\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]


def test_read_jsonl_malformed_line_names_file_and_line(tmp_path: Path, writers: SimpleNamespace) -> None:
    path = writers.text(tmp_path / "bad.jsonl.gz", '{"a": 1}\n{"a": 2}\n{"a": \n')
    with pytest.raises(DataFormatError, match=rf"^{path}:3: invalid JSON") as info:
        list(read_jsonl(path))
    assert isinstance(info.value, ValueError)


def test_read_jsonl_rejects_non_object(tmp_path: Path, writers: SimpleNamespace) -> None:
    path = writers.text(tmp_path / "list.jsonl", "[1, 2]\n")
    with pytest.raises(DataFormatError, match=r":1: expected a JSON object, got list"):
        list(read_jsonl(path))


@pytest.mark.parametrize("name", ["dev.tsv", "dev.tsv.gz"])
def test_read_tsv_keeps_quotes_and_numbers_data_lines(
    tmp_path: Path, writers: SimpleNamespace, name: str
) -> None:
    path = writers.tsv(tmp_path / name, [('a "quoted" word ', "1"), ("plain", "0")])
    assert list(read_tsv(path)) == [
        (2, {"sentence": 'a "quoted" word ', "label": "1"}),
        (3, {"sentence": "plain", "label": "0"}),
    ]


def test_read_tsv_wrong_field_count_names_line(tmp_path: Path, writers: SimpleNamespace) -> None:
    path = writers.text(tmp_path / "x.tsv", "sentence\tlabel\nok\t1\nno label here\n")
    with pytest.raises(DataFormatError, match=rf"^{path}:3: expected 2 tab-separated fields"):
        list(read_tsv(path))


@pytest.mark.parametrize(("stored", "asked"), [("t.jsonl.gz", "t.jsonl"), ("t.jsonl", "t.jsonl.gz")])
def test_resolve_split_file_accepts_either_compression(
    tmp_path: Path, writers: SimpleNamespace, stored: str, asked: str
) -> None:
    writers.jsonl(tmp_path / "rte" / stored, [{}])
    assert resolve_split_file(tmp_path, "rte", asked) == tmp_path / "rte" / stored


def test_resolve_split_file_missing_file_lists_tried_paths(tmp_path: Path) -> None:
    (tmp_path / "rte").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        resolve_split_file(tmp_path, "rte", "val.jsonl")
    message = str(info.value)
    assert str(tmp_path / "rte" / "val.jsonl") in message
    assert str(tmp_path / "rte" / "val.jsonl.gz") in message
    assert "DEEPPROMPT_DATA_DIR" in message and "paths.data_dir" in message
    assert "does not exist" not in message


def test_resolve_split_file_missing_data_dir_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(
        FileNotFoundError, match=rf"data directory {missing} does not exist.*DEEPPROMPT_DATA_DIR"
    ):
        resolve_split_file(missing, "sst2", "dev.tsv")


def test_get_task_unknown_lists_valid_names() -> None:
    with pytest.raises(KeyError) as info:
        get_task("mnli")
    assert isinstance(info.value, UnknownTaskError)
    assert str(info.value) == "unknown task 'mnli'; valid tasks: boolq, cb, rte, sst2"


@pytest.mark.parametrize(
    ("task", "raw", "expected"),
    [
        ("sst2", "0", 0),
        ("sst2", "1", 1),
        ("sst2", 1, 1),
        ("sst2", "positive", 1),
        ("rte", "entailment", 0),
        ("rte", "not_entailment", 1),
        ("boolq", False, 0),
        ("boolq", True, 1),
        ("boolq", 1, 1),
        ("cb", "entailment", 0),
        ("cb", "contradiction", 1),
        ("cb", "neutral", 2),
        ("cb", 2, 2),
    ],
)
def test_label_to_id(task: str, raw: object, expected: int) -> None:
    assert TASKS[task].label_to_id(raw) == expected


@pytest.mark.parametrize(
    ("task", "raw"), [("sst2", "2"), ("sst2", -1), ("rte", "contradiction"), ("cb", True)]
)
def test_label_to_id_rejects_labels_outside_the_set(task: str, raw: object) -> None:
    with pytest.raises(ValueError, match="is not one of the"):
        TASKS[task].label_to_id(raw)


def test_registry_matches_the_benchmarks() -> None:
    assert TASKS["boolq"].text_fields == ("question", "passage")
    assert TASKS["cb"].metrics == ("acc", "f1_macro")
    assert {t.hub_path for t in TASKS.values()} == {"nyu-mll/glue", "aps/super_glue"}
    assert all(set(t.local_files) == set(t.hub_splits) == {"train", "validation"} for t in TASKS.values())


def test_read_lines_truncated_gzip_names_file_and_line(tmp_path: Path, writers: SimpleNamespace) -> None:
    whole = writers.text(tmp_path / "whole.jsonl.gz", "".join(f'{{"a": {i}}}\n' for i in range(2000)))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole.read_bytes()[:-40])
    with pytest.raises(DataFormatError) as info:
        list(read_jsonl(cut))
    message = str(info.value)
    line = int(message.split(":")[1])
    assert message == (
        f"{cut}:{line}: the gzip data ends early or is corrupt (EOFError) after line {line - 1}; copy the file again"
    )
    assert 1 < line <= 2001


def test_read_lines_plain_file_named_gz(tmp_path: Path, writers: SimpleNamespace) -> None:
    path = writers.text(tmp_path / "dev.tsv", "sentence\tlabel\nok\t1\n").rename(tmp_path / "dev.tsv.gz")
    with pytest.raises(DataFormatError) as info:
        list(read_tsv(path))
    assert str(info.value) == (
        f"{path}: not a gzip file, though its name ends in .gz; compress it with gzip or drop the .gz suffix"
    )


@pytest.mark.parametrize("name", ["bad.jsonl", "bad.jsonl.gz"])
def test_read_lines_invalid_utf8_names_line_and_byte(tmp_path: Path, name: str) -> None:
    data = '{"a": 1}\n{"a": 2}\n{"a": "\xff"}\n'.encode("latin-1")
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DataFormatError) as info:
        list(read_jsonl(path))
    assert (
        str(info.value)
        == f"{path}:3: not UTF-8 text: byte 0xff at byte 8 of the line; save the file as UTF-8"
    )


@pytest.mark.parametrize("name", ["bom.tsv", "bom.tsv.gz"])
def test_byte_order_mark_is_dropped(tmp_path: Path, writers: SimpleNamespace, name: str) -> None:
    path = writers.text(tmp_path / name, "\ufeffsentence\tlabel\nfine\t1\n")
    assert list(read_tsv(path, columns=("sentence", "label"))) == [(2, {"sentence": "fine", "label": "1"})]
    jsonl = writers.text(tmp_path / name.replace("tsv", "jsonl"), '\ufeff{"a": 1}\n')
    assert list(read_jsonl(jsonl)) == [(1, {"a": 1})]


def test_read_tsv_header_without_the_needed_columns_fails_at_line_1(
    tmp_path: Path, writers: SimpleNamespace
) -> None:
    path = writers.text(tmp_path / "dev.tsv", "text\tlabel\nfine\t1\n")
    with pytest.raises(DataFormatError) as info:
        list(read_tsv(path, columns=("sentence", "label")))
    assert str(info.value) == (
        f"{path}:1: the header line lacks the column(s) ['sentence']; expected a header naming ['sentence', 'label']"
    )


@pytest.mark.parametrize(
    ("folder", "filename"),
    [("conll2003", "../../../../etc/passwd"), ("..", "x.txt"), ("conll2003", "a/../../../b.txt")],
)
def test_relative_data_paths_may_not_leave_the_data_folder(
    tmp_path: Path, folder: str, filename: str
) -> None:
    relative = Path(folder) / filename
    with pytest.raises(ConfigError) as info:
        resolve_split_file(tmp_path, folder, filename)
    assert str(info.value) == (
        f"data file {relative} leaves the data folder {tmp_path}: a relative data path must stay inside it; "
        "give an absolute path to read a file elsewhere"
    )


def test_absolute_and_inner_relative_data_paths_are_read(tmp_path: Path, writers: SimpleNamespace) -> None:
    elsewhere = writers.text(tmp_path / "elsewhere" / "train.txt", "EU B-ORG\n")
    data = tmp_path / "data"
    writers.text(data / "ner" / "splits" / "dev.txt", "EU B-ORG\n")
    assert resolve_split_file(data, "ner", str(elsewhere)) == elsewhere
    assert (
        resolve_split_file(data, "ner", "splits/../splits/dev.txt")
        == data / "ner" / "splits/../splits/dev.txt"
    )


@pytest.mark.parametrize(("task", "raw"), [("cb", 0), ("cb", "2"), ("rte", 1), ("boolq", 0)])
def test_numbered_labels_are_refused_where_the_task_names_them(task: str, raw: object) -> None:
    names = ", ".join(TASKS[task].label_names)
    with pytest.raises(ValueError) as info:
        TASKS[task].label_to_id(raw, allow_ids=False)
    assert str(info.value) == (
        f"label {raw!r} is a number, but {task} files name their labels ({names}); write the names, or say "
        "what each number means with data.label_map={<number>: <name>, ...}"
    )
    # only GLUE's TSVs (SST-2) publish numbered labels
    assert [name for name, t in TASKS.items() if t.integer_labels] == ["sst2"]


def test_label_map_must_be_a_mapping() -> None:
    from deepprompt.config import DataConfig, typed_keys

    with pytest.raises(ConfigError) as info:
        typed_keys(DataConfig, {"label_map": ["entailment", "neutral"]}, "data")
    assert str(info.value) == (
        "data.label_map must map raw labels to label names, e.g. {0: entailment, 1: neutral}, "
        "got ['entailment', 'neutral']"
    )
    assert typed_keys(DataConfig, {"label_map": {0: "entailment"}}, "data").label_map == {"0": "entailment"}
