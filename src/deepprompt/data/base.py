"""What every task family's data module shares: a dataset of feature dicts, one collator, the loaders, the
on-disk cache of tokenized splits (`deepprompt.data.cache`), and the view of an evaluation split that a Lightning
module scores (`SplitView`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from deepprompt.data.samplers import LengthGroupedSampler
from deepprompt.data.tokenizing import check_sizes, load_tokenizer

SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids")
IGNORE_INDEX = -100
T = TypeVar("T")


class FeatureDataset(Dataset):
    """A list of feature dicts (token id lists, int labels, bookkeeping ints), or the rows of a cache entry
    (`deepprompt.data.cache.CachedFeatures`, which makes each dict when it is read)."""

    def __init__(self, features: Sequence[dict[str, Any]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.features[index]

    @property
    def lengths(self) -> list[int]:
        def size(ids) -> int:
            return max(len(x) for x in ids) if ids and isinstance(ids[0], list) else len(ids)

        cached = getattr(self.features, "lengths", None)
        if cached is not None and (lengths := cached("input_ids")) is not None:
            return lengths
        return [size(f["input_ids"]) for f in self.features]

    @property
    def labels(self) -> list[Any]:
        column = getattr(self.features, "column", None)
        if column is not None and (labels := column("labels")) is not None:
            return labels
        return [f["labels"] for f in self.features]


def fill_value(key: str, pad_token_id: int) -> int:
    """What a token-level key pads with: ``input_ids`` the pad id, ``attention_mask``/``token_type_ids`` 0, other
    lists (token labels) ``IGNORE_INDEX``."""
    if key == "input_ids":
        return pad_token_id
    return 0 if key in ("attention_mask", "token_type_ids") else IGNORE_INDEX


def pad_into(out: np.ndarray, rows: Sequence[Sequence[int]], fill: int, side: str) -> np.ndarray:
    """``rows`` written into ``out`` (rows, width), padded with ``fill`` on ``side`` ("right" or "left"): the
    tokens of every row in one flat array, put in place by a mask of the rows' lengths (no padded list per row, no
    torch call per row: the server's worker gives up the GIL at each one)."""
    rows = [r.tolist() if isinstance(r, torch.Tensor) else r for r in rows]
    lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
    columns = np.arange(out.shape[1])
    at = columns < lengths[:, None] if side == "right" else columns >= (out.shape[1] - lengths)[:, None]
    out[...] = fill
    out[at] = np.fromiter(chain.from_iterable(rows), np.int64, int(lengths.sum()))
    return out


class FeatureCollator:
    """Pads token-level keys of a batch to its longest sequence and stacks the scalar ones (dynamic padding).

    ``input_ids`` pad with the pad id, ``attention_mask``/``token_type_ids`` with 0, other lists (token
    labels) with -100; those keys, ``labels`` and ``word_index`` share the batch width, other lists get their own. A list
    of lists (multiple choice: one sequence per choice) becomes ``(batch, choices, length)``. Numbers become
    tensors (int -> long, float -> float); other values (strings, None) stay out of the batch. With
    ``pad_to_multiple_of`` the width is rounded up, which lets tensor cores and kernels tile evenly. A plain
    class, not a closure, so DataLoader workers can pickle it.
    """

    def __init__(
        self,
        pad_token_id: int,
        pad_to_multiple_of: int | None = None,
        padding_side: Literal["right", "left"] = "right",
    ) -> None:
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}")
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.padding_side = padding_side

    def _fill(self, key: str) -> int:
        return fill_value(key, self.pad_token_id)

    def _pad(self, rows: list[list[int]], fill: int, width: int) -> torch.Tensor:
        padded = np.empty((len(rows), width), dtype=np.int64)
        return torch.from_numpy(pad_into(padded, rows, fill, self.padding_side))

    @staticmethod
    def _longest(features: Sequence[Mapping[str, Any]], key: str) -> int:
        width = 1
        for f in features:
            v = f[key]
            width = max(
                width, max((len(x) for x in v), default=0) if v and isinstance(v[0], list) else len(v)
            )
        return width

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        first = features[0]
        lists = [k for k, v in first.items() if isinstance(v, list) and not (v and isinstance(v[0], str))]
        # Token-aligned keys share one width (rounded up); other lists (e.g. word labels) get their own.
        aligned = [k for k in lists if k in (*SEQUENCE_KEYS, "labels", "word_index")]
        width = max((self._longest(features, k) for k in aligned), default=1)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch: dict[str, torch.Tensor] = {}
        for key, value in first.items():
            if key in lists:
                fill = self._fill(key)
                w = width if key in aligned else self._longest(features, key)
                if value and isinstance(value[0], list):  # (choices, length) per example
                    batch[key] = torch.stack([self._pad(f[key], fill, w) for f in features])
                else:
                    batch[key] = self._pad([f[key] for f in features], fill, w)
            elif isinstance(value, bool | int):
                batch[key] = torch.tensor([int(f[key]) for f in features], dtype=torch.long)
            elif isinstance(value, float):
                batch[key] = torch.tensor([f[key] for f in features], dtype=torch.float)
        return batch


class SplitView(Generic[T]):
    """One evaluation split as the Lightning module that scores it sees it.

    The data module hands the view to the module at construction (``module_kwargs()``) and fills it when
    ``setup`` reads the split, so the module reads what it scores (examples, references) from here, never
    through ``trainer.datamodule``.
    """

    def __init__(self, split: str) -> None:
        self.split = split
        self._data: T | None = None

    def set(self, data: T) -> None:
        self._data = data

    @property
    def data(self) -> T:
        if self._data is None:
            raise RuntimeError(
                f"the {self.split!r} split is not loaded; call the data module's setup() first"
            )
        return self._data


class TaskDataModule(L.LightningDataModule):
    """Tokenizer, sizes, loaders; subclasses build each split in ``build_split``.

    A family whose ``build_split`` returns a plain `FeatureDataset` can have its splits cached on disk: its
    ``cache_key`` names what a split depends on (files, options), and with a ``cache_dir`` a split whose entry
    exists is read from ``<cache_dir>/tokenized/`` instead of being read and tokenized again
    (`deepprompt.data.cache`).
    """

    eval_splits: tuple[str, ...] = ("validation",)

    def __init__(
        self,
        tokenizer: str,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        max_seq_length: int = 128,
        num_workers: int = 0,
        group_by_length: bool = False,
        pad_to_multiple_of: int | None = None,
        limit_train_examples: int | None = None,
        limit_eval_examples: int | None = None,
        seed: int = 42,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        check_sizes(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            max_seq_length=max_seq_length,
            limit_train_examples=limit_train_examples,
            limit_eval_examples=limit_eval_examples,
        )
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.max_seq_length = max_seq_length
        self.num_workers = num_workers
        self.group_by_length = group_by_length
        self.limit_train_examples = limit_train_examples
        self.limit_eval_examples = limit_eval_examples
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir else None  # None or "": every run tokenizes
        self.tokenizer, pad_id = self.load_tokenizer(tokenizer, max_seq_length)
        self.collator = FeatureCollator(pad_id, pad_to_multiple_of, self.tokenizer.padding_side)
        # training batches' collator where a family pads them otherwise (generation); None: ``collator``
        self.train_collator: FeatureCollator | None = None
        self._datasets: dict[str, FeatureDataset] = {}

    @staticmethod
    def load_tokenizer(name: str, max_seq_length: int):
        """The tokenizer and the id to pad with (a family may load its tokenizer otherwise)."""
        return load_tokenizer(name, max_seq_length)

    def module_kwargs(self) -> dict[str, Any]:
        """What the Lightning module that trains on this data needs to know (label count, metrics ...)."""
        return {}

    def limit(self, split: str) -> int | None:
        return self.limit_train_examples if split == "train" else self.limit_eval_examples

    def prepare_data(self) -> None:
        """Nothing to download ahead: local files are read in place and the Hub caches on first read."""

    def setup(self, stage: str | None = None) -> None:
        needed = ("train", *self.eval_splits) if stage in (None, "fit") else self.eval_splits
        for split in needed:
            if split not in self._datasets:
                self._datasets[split] = self.load_split(split)

    def build_split(self, split: str) -> FeatureDataset:
        raise NotImplementedError

    def cache_key(self, split: str) -> dict[str, Any] | None:
        """What ``split``'s features depend on besides the tokenizer, the code, ``max_seq_length`` and the
        example limit (which the cache adds): ``task``, the files read (`deepprompt.data.cache.file_identity`)
        and every option of the family that changes them. None (the default, and for a split read from the
        Hub): the split is not cached."""
        return None

    def load_split(self, split: str) -> FeatureDataset:
        """``build_split``, through the tokenized-data cache when there is a ``cache_dir`` and a ``cache_key``."""
        if self.cache_dir is None or (key := self.cache_key(split)) is None:
            return self.build_split(split)
        from deepprompt.data import cache

        cls = type(self)
        if getattr(self, "_tokenizer_identity", None) is None:
            self._tokenizer_identity = cache.tokenizer_identity(self.tokenizer)
        key = {
            **key,
            "split": split,
            "max_seq_length": self.max_seq_length,
            "limit": self.limit(split),
            "data_module": f"{cls.__module__}.{cls.__qualname__}",
            "code": cache.code_identity(cls),
            "tokenizer": self._tokenizer_identity,
            "versions": cache.versions(),
        }
        what = f"{key.get('task', cls.__name__)} {split}"
        return FeatureDataset(
            cache.load_or_build(
                self.cache_dir / "tokenized", key, lambda: self.build_split(split).features, what
            )
        )

    def dataset(self, split: str) -> FeatureDataset:
        if split not in self._datasets:
            raise RuntimeError(f"the {split!r} split is not loaded; call setup() first")
        return self._datasets[split]

    def train_dataloader(self) -> DataLoader:
        data = self.dataset("train")
        sampler: Sampler[int]
        if self.group_by_length:
            sampler = LengthGroupedSampler(data.lengths, self.batch_size, seed=self.seed)
        else:
            sampler = RandomSampler(data, generator=torch.Generator().manual_seed(self.seed))
        return self._loader(data, self.batch_size, sampler, self.train_collator)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """Evaluation splits in file order (several: dataloader_idx follows ``eval_splits``)."""
        loaders = [self._loader(self.dataset(s), self.eval_batch_size, None) for s in self.eval_splits]
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        return self.val_dataloader()

    def _loader(
        self,
        data: FeatureDataset,
        batch_size: int,
        sampler: Sampler[int] | None,
        collator: FeatureCollator | None = None,
    ) -> DataLoader:
        return DataLoader(
            data,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collator or self.collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
