"""Line-oriented readers for the benchmark files, with errors that point at ``file:line``.

The benchmark copies are distributed gzip-compressed, but a user may have unpacked them; both are
accepted, chosen by the file suffix.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from deepprompt.errors import DataFormatError

Row = tuple[int, dict[str, Any]]


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Row]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file (1-based lines)."""
    path = Path(path)
    with _open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{path}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
            if not isinstance(obj, dict):
                raise DataFormatError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_tsv(path: str | os.PathLike[str]) -> Iterator[Row]:
    """Yield ``(line_number, {column: value})`` for each data line of a TSV file with a header line.

    Fields are split on tabs only, with no quote handling: GLUE's TSV files are unquoted and their
    sentences contain literal ``"`` characters that a CSV dialect would misread.
    """
    path = Path(path)
    with _open_text(path) as f:
        header: list[str] | None = None
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if header is None:
                header = line.split("\t")
                continue
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                raise DataFormatError(
                    f"{path}:{lineno}: expected {len(header)} tab-separated fields {header}, got {len(fields)}"
                )
            yield lineno, dict(zip(header, fields, strict=True))


def resolve_split_file(data_dir: str | os.PathLike[str], folder: str, filename: str) -> Path:
    """Find ``data_dir/folder/filename``, compressed (``.gz``) or not, whichever exists.

    ``filename`` may be given with or without ``.gz``; the given spelling is tried first.
    """
    base = Path(data_dir) / folder
    other = filename[: -len(".gz")] if filename.endswith(".gz") else filename + ".gz"
    candidates = [base / filename, base / other]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    missing_dir = "" if Path(data_dir).is_dir() else f" (the data directory {data_dir} does not exist)"
    raise FileNotFoundError(
        f"no data file for {folder}/{filename}: tried {tried}{missing_dir}; set DEEPPROMPT_DATA_DIR "
        "(config key `paths.data_dir`) to the folder that holds the benchmark data"
    )
