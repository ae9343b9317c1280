"""Tokenized splits kept on disk and shared by every run that would tokenize them alike (the jobs of a sweep).

An entry is one split of one data module, named by the hash of everything its features depend on (its *key*):
the data module's class and the source of its code, the tokenizer's content (vocabulary, normalisation and
special tokens, hashed, not only its name), the versions of deepprompt, transformers and tokenizers, the data
files (path, size, modification time) and every option that changes the features (task, max_seq_length, limits,
label map ...: what the data module's ``cache_key`` names). A change in any of them gives a new entry; entries
are never updated in place.

Where: ``<cache_dir>/tokenized/<name>.dpt``, ``cache_dir`` being the data config's ``cache_dir`` (by default
``paths.cache_dir``: ``$DEEPPROMPT_CACHE_DIR``, else ``<output root>/.cache``); null switches the cache off. The
folder may be deleted at any time.

Safety: an entry is written to a temporary file in the same folder and renamed into place (atomic on POSIX), so
a reader sees a whole file or none; two jobs that build the same entry at once both succeed and the last rename
wins with the same content. Each file carries its key and a SHA-256 of its payload: a truncated, corrupt or
foreign file is reported, rebuilt and replaced, never used.

Format: a magic line, a JSON header (key, row count, columns, payload hash) and the columns as flat arrays (token
lists as values + offsets). Rows are made into dicts when a loader asks for them (`CachedFeatures`), so reading
SST-2's 67k training rows back takes milliseconds, not the seconds a list of dicts would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1
MAGIC = b"deepprompt tokenized split\n"
SUFFIX = ".dpt"
_ALIGN = 8


class CacheError(Exception):
    """A cache file that cannot be used (truncated, corrupt, another key or format)."""


# -- keys ----------------------------------------------------------------------------------------------------
def file_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A data file as a key names it: resolved path, size and modification time (ns)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _where_from(option: str) -> bool:
    """Init options that say where a tokenizer was read from, not what it does (a copy elsewhere is the same)."""
    return option.endswith(("_file", "_files")) or option in (
        "name_or_path",
        "_commit_hash",
        "is_local",
        "local_files_only",
        "cache_dir",
        "revision",
        "token",
    )


def tokenizer_identity(tokenizer: Any) -> str:
    """A SHA-256 of what the tokenizer does: for a fast tokenizer its full definition (vocabulary, merges,
    normaliser, pre-tokenizer, post-processor; not the truncation/padding state a call leaves behind), for a slow
    one its vocabulary; plus its class, special tokens and init options (lower-casing, prefix space ...)."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
        digest.update(json.dumps(spec, sort_keys=True).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    options = {
        k: v
        for k, v in sorted(getattr(tokenizer, "init_kwargs", {}).items())
        if isinstance(v, str | int | float | bool | type(None)) and not _where_from(k)
    }
    digest.update(
        json.dumps(
            [
                type(tokenizer).__name__,
                options,
                str(getattr(tokenizer, "special_tokens_map", {})),
                getattr(tokenizer, "padding_side", None),
                getattr(tokenizer, "truncation_side", None),
            ],
            sort_keys=True,
            default=str,
        ).encode()
    )
    return digest.hexdigest()


def code_identity(cls: type) -> str:
    """A SHA-256 of the source files of ``cls`` and its deepprompt base classes: a change in how a family
    tokenizes gives new entries."""
    import inspect

    digest = hashlib.sha256()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("deepprompt"):
            continue
        try:
            digest.update(Path(inspect.getfile(klass)).read_bytes())
        except (OSError, TypeError):
            digest.update(klass.__qualname__.encode())
    return digest.hexdigest()


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("deepprompt", "transformers", "tokenizers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def entry_name(key: Mapping[str, Any]) -> str:
    """``<task>-<split>-<hash>``: readable in a listing, unique by the hash of the whole key."""
    text = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    label = "-".join(str(key.get(k)) for k in ("task", "split") if key.get(k) is not None) or "split"
    label = "".join(c if c.isalnum() or c in "._-" else "_" for c in label)
    return f"{label}-{digest}"


# -- columns -------------------------------------------------------------------------------------------------
def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list):
        if not value or isinstance(value[0], int) and not isinstance(value[0], bool):
            return "ints"
        if isinstance(value[0], list):
            return "intss"
    return None


def _int_array(values: Sequence[int]) -> np.ndarray:
    array = np.asarray(values, dtype=np.int64)
    if array.size and np.iinfo(np.int32).min <= array.min() and array.max() <= np.iinfo(np.int32).max:
        return array.astype(np.int32)
    return array


def _offsets(lengths: Iterator[int], count: int) -> np.ndarray:
    out = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.fromiter(lengths, dtype=np.int64, count=count), out=out[1:])
    return out


def to_columns(
    features: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]] | None:
    """``(columns, arrays)`` for features of ints, floats, bools, int lists and lists of int lists, every row
    with the same keys; None for anything else (such a split is not cached)."""
    if not features:
        return None
    keys = list(features[0])
    columns, arrays = [], {}
    for key in keys:
        try:
            values = [f[key] for f in features]
        except (KeyError, TypeError):
            return None
        kinds = {_kind(v) for v in values}
        if len(kinds) != 1 or None in kinds:  # strings, None, mixed types: not cached
            return None
        kind = kinds.pop()
        name = f"c{len(columns)}"
        try:
            if kind in ("int", "bool"):
                arrays[name] = _int_array(values)
            elif kind == "float":
                arrays[name] = np.asarray(values, dtype=np.float64)
            elif kind == "ints":
                flat = [x for v in values for x in v]
                if not all(type(x) is int for x in flat):  # a float or bool further on would be rounded
                    return None
                arrays[name + ".offsets"] = _offsets((len(v) for v in values), len(values))
                arrays[name] = _int_array(flat)
            else:  # intss: one list of token lists per row (multiple choice)
                inner = [x for v in values for x in v]
                if not all(isinstance(x, list) for x in inner):
                    return None
                flat = [t for x in inner for t in x]
                if not all(type(t) is int for t in flat):
                    return None
                arrays[name + ".rows"] = _offsets((len(v) for v in values), len(values))
                arrays[name + ".offsets"] = _offsets((len(x) for x in inner), len(inner))
                arrays[name] = _int_array(flat)
        except (TypeError, ValueError, OverflowError):
            return None
        columns.append({"key": key, "kind": kind, "name": name})
    if any(set(f) != set(keys) for f in features):
        return None
    return columns, arrays


class CachedFeatures(Sequence):
    """Rows of a cache entry, made into feature dicts on access (a `FeatureDataset`'s ``features``)."""

    def __init__(self, count: int, columns: list[dict[str, Any]], arrays: dict[str, np.ndarray]) -> None:
        self.count, self.columns, self.arrays = count, columns, arrays

    def __len__(self) -> int:
        return self.count

    def _value(self, column: dict[str, Any], i: int) -> Any:
        kind, name, a = column["kind"], column["name"], self.arrays
        if kind == "int":
            return int(a[name][i])
        if kind == "bool":
            return bool(a[name][i])
        if kind == "float":
            return float(a[name][i])
        if kind == "ints":
            o = a[name + ".offsets"]
            return a[name][o[i] : o[i + 1]].tolist()
        rows, o = a[name + ".rows"], a[name + ".offsets"]
        return [a[name][o[j] : o[j + 1]].tolist() for j in range(rows[i], rows[i + 1])]

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        return {c["key"]: self._value(c, index) for c in self.columns}

    def lengths(self, key: str = "input_ids") -> list[int] | None:
        """Each row's sequence length (the longest of its lists for multiple choice), without building rows."""
        column = next((c for c in self.columns if c["key"] == key), None)
        if column is None or column["kind"] not in ("ints", "intss"):
            return None
        offsets = self.arrays[column["name"] + ".offsets"]
        sizes = np.diff(offsets)
        if column["kind"] == "ints":
            return sizes.tolist()
        rows = self.arrays[column["name"] + ".rows"]
        return [int(sizes[rows[i] : rows[i + 1]].max(initial=0)) for i in range(self.count)]

    def column(self, key: str) -> list[Any] | None:
        column = next((c for c in self.columns if c["key"] == key), None)
        if column is None or column["kind"] not in ("int", "bool", "float"):
            return None
        return [self._value(column, i) for i in range(self.count)]


# -- files ---------------------------------------------------------------------------------------------------
def _padded(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def write_entry(
    path: Path, key: Mapping[str, Any], count: int, columns, arrays: dict[str, np.ndarray]
) -> None:
    """Write an entry to a temporary file beside ``path`` and rename it into place."""
    layout, offset, blobs = {}, 0, []
    for name, array in arrays.items():
        data = np.ascontiguousarray(array).tobytes()
        layout[name] = {
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "offset": offset,
            "nbytes": len(data),
        }
        blobs.append(data + b"\0" * (_padded(len(data)) - len(data)))
        offset += _padded(len(data))
    payload = b"".join(blobs)
    header = {
        "format": FORMAT,
        "key": json.loads(json.dumps(key, sort_keys=True, default=str)),
        "rows": count,
        "columns": columns,
        "arrays": layout,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    head = json.dumps(header, sort_keys=True).encode()
    head += b" " * (_padded(len(MAGIC) + 8 + len(head)) - len(MAGIC) - 8 - len(head))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide a shared cache from the other users
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + len(head).to_bytes(8, "little") + head + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_entry(path: Path, key: Mapping[str, Any]) -> CachedFeatures:
    """The entry's rows; CacheError if the file is not a whole, intact entry of this key."""
    raw = path.read_bytes()
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 8:
        raise CacheError("not a deepprompt cache file")
    size = int.from_bytes(raw[len(MAGIC) : len(MAGIC) + 8], "little")
    start = len(MAGIC) + 8 + size
    try:
        header = json.loads(raw[len(MAGIC) + 8 : start])
    except ValueError:
        raise CacheError("its header is cut or corrupt") from None
    if header.get("format") != FORMAT:
        raise CacheError(f"format {header.get('format')}, expected {FORMAT}")
    if header.get("key") != json.loads(json.dumps(key, sort_keys=True, default=str)):
        raise CacheError("it holds another key")
    payload = memoryview(raw)[start:]
    if len(payload) != header["payload_bytes"]:
        raise CacheError(f"{len(payload)} payload bytes, expected {header['payload_bytes']} (truncated)")
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise CacheError("its payload does not match its checksum (corrupt)")
    arrays = {}
    for name, spec in header["arrays"].items():
        dtype = np.dtype(spec["dtype"])
        count = spec["nbytes"] // dtype.itemsize
        arrays[name] = np.frombuffer(payload, dtype=dtype, count=count, offset=spec["offset"]).reshape(
            spec["shape"]
        )
    return CachedFeatures(int(header["rows"]), header["columns"], arrays)


def load_or_build(
    folder: str | os.PathLike[str],
    key: Mapping[str, Any],
    build: Callable[[], Sequence[Mapping[str, Any]]],
    what: str = "split",
) -> Sequence[Mapping[str, Any]]:
    """The features of ``key``: read from ``folder`` when an intact entry is there, else built and stored.

    Logs one line: ``tokenized data: reused <path>`` or ``tokenized data: built <what> in N s -> <path>``.
    """
    path = Path(folder) / f"{entry_name(key)}{SUFFIX}"
    if path.is_file():
        try:
            features = read_entry(path, key)
        except (CacheError, OSError, ValueError, KeyError) as err:
            log.warning("tokenized data: %s is unusable (%s); building it again", path, err)
        else:
            log.info("tokenized data: reused %s (%s, %d rows)", path, what, len(features))
            return features
    started = time.perf_counter()
    features = build()
    seconds = time.perf_counter() - started
    packed = to_columns(features)
    if packed is None:
        log.info("tokenized data: built %s in %.1f s (not cached: features of other types)", what, seconds)
        return features
    try:
        write_entry(path, key, len(features), *packed)
    except OSError as err:
        log.warning(
            "tokenized data: built %s in %.1f s; could not store it in %s: %s", what, seconds, path, err
        )
        return features
    log.info("tokenized data: built %s in %.1f s -> %s", what, seconds, path)
    return features
