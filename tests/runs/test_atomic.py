"""Atomic writes are durable: the file's data is flushed before the rename, the folder's entry after it."""

from __future__ import annotations

import json
import os

import pytest

from deepprompt.utils.atomic import atomic_write, atomic_write_json


def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    target = tmp_path / "run" / "last.ckpt"
    target.parent.mkdir()
    target.write_bytes(b"old")
    synced = []  # (inode, what the final name held at that moment)
    real_fsync = os.fsync

    def spy(fd):
        synced.append((os.fstat(fd).st_ino, target.read_bytes()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic_write(target, lambda tmp: tmp.write_bytes(b"new checkpoint"))

    assert target.read_bytes() == b"new checkpoint"
    file_ino, folder_ino = target.stat().st_ino, target.parent.stat().st_ino
    assert [ino for ino, _ in synced] == [file_ino, folder_ino]
    assert synced[0][1] == b"old"  # the data was on disk before the name pointed at it
    assert synced[1][1] == b"new checkpoint"
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # no temp file left


def test_failed_write_leaves_the_previous_file_and_no_temp_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"status": "finished"})

    def broken(tmp):
        tmp.write_text("{half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"status": "finished"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
