"""What git tracks names no machine: no absolute home/work/tmp/root path in any file, no host in any JSON."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MACHINE_PATH = re.compile(r"/(work|home|root|tmp)/[A-Za-z]")
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()  # holds the pattern itself


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:4096]:
        return None  # binary (figures)
    return data.decode("utf-8", errors="replace")


def test_no_tracked_file_holds_an_absolute_machine_path():
    found = []
    for path in tracked_files():
        name = path.relative_to(ROOT).as_posix()
        text = _text(path)
        if name == THIS_FILE or text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if MACHINE_PATH.search(line):
                found.append(f"{name}:{number}: {line.strip()[:120]}")
    assert not found, "absolute machine paths (write them relative, or ${VAR}):\n" + "\n".join(found[:30])


def _hosts(value, where: str) -> list[str]:
    if isinstance(value, dict):
        own = [where] if "host" in value else []
        return own + [h for key, item in value.items() for h in _hosts(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [h for i, item in enumerate(value) for h in _hosts(item, f"{where}[{i}]")]
    return []


def test_no_tracked_json_records_a_host():
    found = []
    for path in tracked_files():
        name = path.relative_to(ROOT).as_posix()
        if path.suffix == ".json":
            found += _hosts(json.loads(path.read_text()), name)
        elif path.suffix == ".jsonl":
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    found += _hosts(json.loads(line), f"{name}:{number}")
    assert not found, "host names in tracked JSON (extras.record_host is off by default):\n" + "\n".join(
        found[:30]
    )


def test_the_checks_catch_what_they_look_for():
    assert MACHINE_PATH.search('"data_dir": "/work/shared/data"') and MACHINE_PATH.search("cd /home/ann/x")
    assert not MACHINE_PATH.search("../shared/data") and not MACHINE_PATH.search("${TMPDIR:-/tmp}/site")
    assert _hosts({"a": [{"host": "vm"}]}, "f") == ["f.a[0]"]
