"""Where a split is read from: ``<data_dir>/<folder>/<file>`` when a data folder is set, else the Hugging Face Hub.

Every task family reads through `read_split`, so the choice (and its errors) lives here once; `local_source_key`
names the file a split is read from for the tokenized-data cache (`deepprompt.data.cache`). Local files are
read in place (``.gz`` or plain, `resolve_split_file`); the Hub caches a dataset on first read, and
``datasets`` (slow to import) is imported only on that path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from deepprompt.data.readers import resolve_split_file
from deepprompt.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class HubSplit:
    """One split of a Hub dataset: ``datasets.load_dataset(path, name, split=split)``."""

    path: str
    name: str | None
    split: str

    def __str__(self) -> str:  # how errors name a Hub row: "<path>/<name>[<split>]:<row index>: ..."
        return f"{self.path}/{self.name}[{self.split}]"


def hub_source(path: str | None, name: str | None, split: str | None) -> HubSplit | None:
    """The Hub split, or None when the task has no Hub copy (``path`` or ``split`` unset)."""
    return HubSplit(path, name, split) if path and split else None


def read_split(
    data_dir: str | os.PathLike[str] | None,
    local: tuple[str, str] | None,
    read_local: Callable[[Path], T],
    hub: HubSplit | None = None,
    read_hub: Callable[[Any], T] | None = None,
) -> tuple[str, T]:
    """``(source, what the reader made of it)``: ``source`` names the file or Hub split in error messages.

    ``local`` is ``(folder, file name)`` under ``data_dir``; ``read_hub`` gets the loaded ``datasets.Dataset``
    (default: its rows as ``(row index, row)`` pairs).
    """
    if data_dir is not None:
        if local is None:
            raise ConfigError(f"no local file for this split under data_dir={data_dir}")
        path = resolve_split_file(data_dir, *local)
        return str(path), read_local(path)
    if hub is None:
        folder = local[0] if local else "the task"
        raise ConfigError(
            f"data.data_dir is not set and {folder} has no Hub copy: point DEEPPROMPT_DATA_DIR "
            "(config key `paths.data_dir`) at the folder holding the data"
        )
    import datasets

    data = datasets.load_dataset(hub.path, hub.name, split=hub.split)
    return str(hub), (read_hub(data) if read_hub is not None else list(enumerate(data)))


def local_source_key(
    data_dir: str | os.PathLike[str] | None, local: tuple[str, str] | None
) -> dict[str, Any] | None:
    """The local file ``read_split`` reads as a cache key names it (path, size, modification time); None when
    the split comes from the Hub or its file is missing (it is then not cached: reading it says what is wrong)."""
    if data_dir is None or local is None:
        return None
    from deepprompt.data.cache import file_identity

    try:
        return file_identity(resolve_split_file(data_dir, *local))
    except (FileNotFoundError, ConfigError, OSError):
        return None
