"""The one local-folder-or-Hub decision (`read_split`) and the split view a Lightning module scores."""

from __future__ import annotations

import datasets
import pytest

from deepprompt.data import SplitView, hub_source, read_jsonl, read_split
from deepprompt.errors import ConfigError


def test_local_folder_wins_and_names_the_file(tmp_path, writers):
    writers.jsonl(tmp_path / "rte" / "val.jsonl.gz", [{"a": 1}, {"a": 2}])
    source, rows = read_split(
        tmp_path, ("rte", "val.jsonl"), lambda p: list(read_jsonl(p)), hub_source("x/y", "rte", "validation")
    )
    assert source == str(tmp_path / "rte" / "val.jsonl.gz")
    assert rows == [(1, {"a": 1}), (2, {"a": 2})]


def test_without_a_folder_the_hub_split_is_read(monkeypatch):
    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return datasets.Dataset.from_list([{"a": 7}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    source, rows = read_split(
        None, ("rte", "val.jsonl"), list, hub_source("aps/super_glue", "rte", "validation")
    )
    assert calls == [("aps/super_glue", "rte", "validation")]
    assert source == "aps/super_glue/rte[validation]" and rows == [(0, {"a": 7})]


def test_neither_folder_nor_hub_copy_says_what_to_set():
    assert hub_source(None, "x", "train") is None and hub_source("p", "x", None) is None
    with pytest.raises(ConfigError, match=r"e2e has no Hub copy: point DEEPPROMPT_DATA_DIR"):
        read_split(None, ("e2e", "trainset.csv"), list)


def test_split_view_before_and_after_setup():
    view: SplitView[list[int]] = SplitView("validation")
    with pytest.raises(RuntimeError, match="'validation' split is not loaded"):
        _ = view.data
    view.set([1, 2])
    assert view.data == [1, 2] and view.split == "validation"
