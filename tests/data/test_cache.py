"""The tokenized-data cache: a sweep's later jobs reuse what the first one prepared; what changes an entry's key;
a damaged entry is rebuilt; two processes building one entry at once."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from deepprompt.data import cache

TINY = ("backbone=tiny", "debug=limit", "extras.print_config=false")


def entries(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "tokenized").glob("*.dpt"))


def identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def rows(dm, split: str) -> list[dict]:
    return [dict(f) for f in dm.dataset(split).features]


# -- a sweep ---------------------------------------------------------------------------------------------------
def test_second_job_of_a_sweep_reuses_the_first_jobs_tokenized_data(tiny_sweep, run_cli, tmp_path):
    # deepprompt-train -m backbone=tiny debug=limit data=cb method.prompt.length=2,4: one process, two jobs
    first, second = tiny_sweep.runs
    [sweep_cache] = [p / ".cache" for p in first.parents if (p / ".cache").is_dir()]
    log_first, log_second = ((d / "train.log").read_text() for d in (first, second))
    assert "tokenized data: built cb train" in log_first
    assert "tokenized data: built cb validation" in log_first
    assert "tokenized data: built" not in log_second
    assert log_second.count("tokenized data: reused") == 2
    assert [p.name.split("-")[:2] for p in entries(sweep_cache)] == [["cb", "train"], ["cb", "validation"]]
    for run in (first, second):
        summary = json.loads((run / "metrics.json").read_text())
        assert summary["status"] == "finished"
        assert summary["startup_s"] > 0
        assert summary["startup_s"] == pytest.approx(sum(summary["startup_phases_s"].values()), abs=0.01)
        assert {"imports", "backbone", "data", "loop"} <= set(summary["startup_phases_s"])
    assert json.loads((first / "metrics.json").read_text())["startup_from"] == "process"
    assert (
        json.loads((second / "metrics.json").read_text())["startup_from"] == "job"
    )  # same process, own clock
    assert "start-up: " in log_second

    # a new process (each job of the submitit and SLURM launchers is one) reads them too, and leaves them as they
    # are; it gets a copy of the sweep's cache in its own output folder (the session's sweep stays untouched)
    cache_dir = tmp_path / "outputs" / ".cache"
    shutil.copytree(sweep_cache, cache_dir)
    stored = entries(cache_dir)
    before = {p: identity(p) for p in stored}
    proc = run_cli("deepprompt.train", *TINY, "data=cb", "method.prompt.length=8")
    assert proc.stdout.count("tokenized data: reused") == 2, proc.stdout[-2000:]
    assert {p: identity(p) for p in entries(cache_dir)} == before
    assert not [p for p in (cache_dir / "tokenized").iterdir() if p.suffix != ".dpt"]


# -- keys ------------------------------------------------------------------------------------------------------
def test_options_and_data_files_that_change_the_features_change_the_key(make_dm, data_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="deepprompt.data.cache")
    store = tmp_path / "cache"

    def setup(**kwargs):
        dm = make_dm("sst2", cache_dir=str(store), **kwargs)
        dm.setup("fit")
        return dm

    base = setup()
    assert len(entries(store)) == 2
    # what does not change the features shares the entries
    setup(batch_size=7, seed=3, num_workers=0, group_by_length=True, pad_to_multiple_of=8)
    assert len(entries(store)) == 2
    assert caplog.text.count("tokenized data: reused") == 2

    shorter = setup(max_seq_length=4)  # truncation
    assert len(entries(store)) == 4
    assert max(shorter.dataset("train").lengths) == 4 < max(base.dataset("train").lengths)

    setup(limit_train_examples=2)  # a subset of the training split only
    assert len(entries(store)) == 5

    setup(label_map={"0": "negative", "1": "positive"})
    assert len(entries(store)) == 7

    # a changed data file: a new row, then the same bytes with a new modification time
    dev = data_dir / "sst2" / "dev.tsv"
    dev.write_text(dev.read_text() + "a new row\t1\n")
    grown = setup()
    assert len(entries(store)) == 8
    assert len(grown.dataset("validation")) == len(base.dataset("validation")) + 1
    os.utime(dev, ns=(time.time_ns(), dev.stat().st_mtime_ns + 10**9))
    setup()
    assert len(entries(store)) == 9


def test_tokenizer_key_is_its_content_not_its_name(data_dir, tokenizer_path, tmp_path):
    from transformers import AutoTokenizer

    from deepprompt.tasks.classification import ClassificationDataModule

    copy = shutil.copytree(tokenizer_path, tmp_path / "elsewhere" / "tok")
    cased = tmp_path / "cased" / "tok"  # the same folder name, another vocabulary
    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    tok.add_tokens(["zzyzx"])
    tok.save_pretrained(cased)
    ids = {
        name: cache.tokenizer_identity(AutoTokenizer.from_pretrained(p))
        for name, p in (("original", tokenizer_path), ("copy", copy), ("other", cased))
    }
    assert ids["original"] == ids["copy"] != ids["other"]

    store = tmp_path / "cache"
    for path in (tokenizer_path, copy, cased):
        dm = ClassificationDataModule("rte", str(path), data_dir=str(data_dir), cache_dir=str(store))
        dm.setup("fit")
    assert len(entries(store)) == 4  # the copy shares the original's entries


def test_no_cache_dir_switches_the_cache_off(make_dm, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="deepprompt.data.cache")
    dm = make_dm("rte", cache_dir=None)
    dm.setup("fit")
    assert "tokenized data" not in caplog.text
    assert isinstance(dm.dataset("train").features, list)


# -- damaged entries -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "empty", "another key"])
def test_a_damaged_entry_is_detected_and_rebuilt(make_dm, tmp_path, caplog, damage):
    caplog.set_level(logging.INFO, logger="deepprompt.data.cache")
    store = tmp_path / "cache"
    built = make_dm("boolq", cache_dir=str(store))
    built.setup("fit")
    expected = rows(built, "train")
    train = next(p for p in entries(store) if "-train-" in p.name)
    raw = train.read_bytes()
    if damage == "truncated":
        train.write_bytes(raw[:-9])
    elif damage == "flipped byte":
        train.write_bytes(raw[:-5] + bytes([raw[-5] ^ 0xFF]) + raw[-4:])
    elif damage == "empty":
        train.write_bytes(b"")
    else:  # a valid entry of another split under this entry's name
        other = next(p for p in entries(store) if "-validation-" in p.name)
        shutil.copyfile(other, train)
    caplog.clear()

    again = make_dm("boolq", cache_dir=str(store))
    again.setup("fit")
    assert f"{train} is unusable" in caplog.text
    assert "tokenized data: built boolq train" in caplog.text
    assert rows(again, "train") == expected
    assert train.read_bytes() == raw  # rewritten whole

    caplog.clear()
    make_dm("boolq", cache_dir=str(store)).setup("fit")
    assert caplog.text.count("tokenized data: reused") == 2


def test_cached_rows_equal_the_built_ones_for_every_feature_type(tmp_path):
    features = [
        {"input_ids": [[1, 2, 3], [4]], "labels": 1, "score": 0.25, "flag": True, "word_index": [0, -100]},
        {"input_ids": [[5], [6, 7]], "labels": 0, "score": -1.5, "flag": False, "word_index": []},
    ]
    key = {"task": "t", "split": "train"}
    assert cache.load_or_build(tmp_path, key, lambda: features) == features
    reused = cache.load_or_build(tmp_path, key, lambda: pytest.fail("rebuilt"))
    assert isinstance(reused, cache.CachedFeatures)
    assert list(reused) == features and reused[-1] == features[-1]
    assert reused.lengths("input_ids") == [3, 2]
    assert type(reused[0]["flag"]) is bool and type(reused[0]["score"]) is float
    # what the format does not store (text, a float after ints in a list) is returned as built, not stored
    for n, odd in enumerate(
        [{"input_ids": [1], "text": "a"}, {"input_ids": [1, 2.5]}, {"input_ids": [[1], [True]]}]
    ):
        assert cache.load_or_build(tmp_path, {"task": f"x{n}"}, lambda odd=odd: [odd]) == [odd]
    assert not list(tmp_path.glob("x*"))


# -- two builders at once ----------------------------------------------------------------------------------------
BUILDER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from deepprompt.data import cache

    folder, go = Path(sys.argv[1]), Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.005)

    def build():
        time.sleep(0.3)  # both find no entry and build it
        return [{"input_ids": list(range(i % 97 + 1)), "labels": i % 2} for i in range(60000)]

    rows = cache.load_or_build(folder, {"task": "race", "split": "train"}, build)
    print(json.dumps({"rows": len(rows), "last": dict(rows[-1])}))
    """
)


def test_two_processes_building_one_entry_at_once_both_succeed(tmp_path):
    folder, go = tmp_path / "tokenized", tmp_path / "go"
    src = str(Path(cache.__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILDER, str(folder), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    time.sleep(1.0)  # both started and waiting
    go.touch()
    key = {"task": "race", "split": "train"}
    seen = 0
    while any(p.poll() is None for p in procs):  # a reader never sees a partial entry
        for path in folder.glob("*.dpt") if folder.is_dir() else []:
            cache.read_entry(path, key)
            seen += 1
        time.sleep(0.002)
    outputs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert (
        results[0]
        == results[1]
        == {"rows": 60000, "last": {"input_ids": list(range(59999 % 97 + 1)), "labels": 1}}
    )
    assert seen > 0
    (entry,) = folder.iterdir()  # one entry, no temporary file left
    assert entry.suffix == ".dpt"
    assert len(cache.read_entry(entry, key)) == 60000


@pytest.mark.parametrize("family", ["wic", "multirc", "copa", "conll2003"])
def test_superglue_multiple_choice_and_ner_splits_are_reused_alike(family, tokenizer_path, tmp_path, caplog):
    from tests.tasks.conftest import write_task_benchmarks

    from deepprompt.tasks.ner import NERDataModule
    from deepprompt.tasks.superglue import MultipleChoiceDataModule, SuperGLUEDataModule

    caplog.set_level(logging.INFO, logger="deepprompt.data.cache")
    data, store = str(write_task_benchmarks(tmp_path / "data")), str(tmp_path / "cache")

    def make():
        if family == "copa":
            return MultipleChoiceDataModule("copa", tokenizer_path, data_dir=data, cache_dir=store)
        if family == "conll2003":
            return NERDataModule("conll2003", tokenizer_path, data_dir=data, cache_dir=store)
        return SuperGLUEDataModule(family, tokenizer_path, data_dir=data, cache_dir=store)

    built = make()
    built.setup("fit")
    splits = ("train", *built.eval_splits)
    assert caplog.text.count("tokenized data: built") == len(splits)
    caplog.clear()
    again = make()
    again.setup("fit")
    assert caplog.text.count("tokenized data: reused") == len(splits)
    for split in splits:
        assert rows(again, split) == rows(built, split)
        assert again.dataset(split).lengths == built.dataset(split).lengths
