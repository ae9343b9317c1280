"""Line-oriented readers for the benchmark files, with errors that point at ``file:line``.

The benchmark copies are distributed gzip-compressed, but a user may have unpacked them; both are
accepted, chosen by the file suffix.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from deepprompt.errors import ConfigError, DataFormatError

Row = tuple[int, dict[str, Any]]


def excerpt(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error quotes the offending field, never a whole line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def read_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line (1-based, line end kept), UTF-8 decoded line by line.

    A UTF-8 byte-order mark at the start is dropped (line 1 is then read as if it had none). A byte that is not
    UTF-8, a truncated ``.gz`` and a plain file named ``.gz`` fail with :class:`DataFormatError` naming the file
    (and the line where it can be known), never Python's bare ``UnicodeDecodeError``/``EOFError``.
    """
    path = Path(path)
    lineno = 0
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataFormatError(
                        f"{path}:{lineno}: not UTF-8 text: byte 0x{raw[e.start]:02x} at byte {e.start + 1} of "
                        "the line; save the file as UTF-8"
                    ) from None
                yield lineno, text
    except gzip.BadGzipFile:
        raise DataFormatError(
            f"{path}: not a gzip file, though its name ends in .gz; compress it with gzip or drop the .gz suffix"
        ) from None
    except (EOFError, zlib.error) as e:
        raise DataFormatError(
            f"{path}:{lineno + 1}: the gzip data ends early or is corrupt ({type(e).__name__}) after line "
            f"{lineno}; copy the file again"
        ) from None


def read_text(path: str | os.PathLike[str]) -> str:
    """The whole file as text, with :func:`read_lines`'s checks and errors."""
    return "".join(line for _, line in read_lines(path))


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Row]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file (1-based lines)."""
    path = Path(path)
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DataFormatError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def read_tsv(path: str | os.PathLike[str], columns: Sequence[str] = ()) -> Iterator[Row]:
    """Yield ``(line_number, {column: value})`` for each data line of a TSV file with a header line.

    Fields are split on tabs only, with no quote handling: GLUE's TSV files are unquoted and their
    sentences contain literal ``"`` characters that a CSV dialect would misread. ``columns`` the header must
    name (a missing one fails at line 1).
    """
    path = Path(path)
    header: list[str] | None = None
    for lineno, line in read_lines(path):
        line = line.rstrip("\r\n")
        if header is None:
            header = line.split("\t")
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataFormatError(
                    f"{path}:{lineno}: the header line lacks the column(s) {missing}; expected a header "
                    f"naming {list(columns)}"
                )
            continue
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataFormatError(
                f"{path}:{lineno}: expected {len(header)} tab-separated fields (as the header line), got {len(fields)}"
            )
        yield lineno, dict(zip(header, fields, strict=True))


def check_inside(data_dir: str | os.PathLike[str], relative: str | os.PathLike[str]) -> None:
    """ConfigError if the relative data path ``relative`` leaves ``data_dir`` (an absolute path is allowed)."""
    relative = Path(relative)
    if not relative.is_absolute() and os.path.normpath(relative).split(os.sep)[0] == os.pardir:
        raise ConfigError(
            f"data file {relative} leaves the data folder {data_dir}: a relative data path must stay inside it; "
            "give an absolute path to read a file elsewhere"
        )


def resolve_split_file(data_dir: str | os.PathLike[str], folder: str, filename: str) -> Path:
    """Find ``data_dir/folder/filename``, compressed (``.gz``) or not, whichever exists.

    ``filename`` may be given with or without ``.gz``; the given spelling is tried first. A relative ``folder``
    or ``filename`` must stay inside ``data_dir`` (``../../etc/passwd`` is refused); an absolute one is read
    where it points, as given on purpose.
    """
    check_inside(data_dir, Path(folder) / filename)
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
