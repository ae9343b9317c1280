"""Lightning data module for sentence and sentence-pair classification (SST-2, RTE, BoolQ, CB)."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from deepprompt.data.collate import PaddingCollator
from deepprompt.data.readers import Row, excerpt, read_jsonl, read_tsv, resolve_split_file
from deepprompt.data.samplers import LengthGroupedSampler
from deepprompt.data.tasks import SPLITS, ClassificationTask, get_task
from deepprompt.data.tokenizing import check_sizes, load_tokenizer
from deepprompt.errors import ConfigError, DataFormatError

_SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def check_label_map(task: ClassificationTask, label_map: Mapping[Any, str] | None) -> dict[str, str]:
    """``data.label_map`` as ``{str(raw label): label name}``; ConfigError for a name the task does not have."""
    mapped = {str(k).lower() if isinstance(k, bool) else str(k): v for k, v in (label_map or {}).items()}
    for raw, name in mapped.items():
        if name not in task.label_names:
            raise ConfigError(
                f"data.label_map maps {raw!r} to {name!r}, which is not a {task.name} label "
                f"({', '.join(task.label_names)})"
            )
    return mapped


class EncodedDataset(Dataset):
    """Tokenized examples kept as Python lists: cheap to build, pickle and index."""

    def __init__(self, encodings: dict[str, list[list[int]]], labels: list[int]) -> None:
        self.encodings = encodings
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {key: values[index] for key, values in self.encodings.items()}
        item["labels"] = self.labels[index]
        return item

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.encodings["input_ids"]]


class ClassificationDataModule(L.LightningDataModule):
    """Reads a registered task from ``data_dir`` (original file formats) or, when it is None, from the Hub.

    ``setup`` reads, validates and tokenizes (truncating to ``max_seq_length``) without padding; the
    collator pads each batch to its longest example. ``limit_*_examples`` keep the first N rows.
    ``label_map`` (``{raw label: label name}``) says what the labels of the local files mean, e.g. numbered
    labels of a task whose published files name them (which are otherwise refused: their order is unknown).
    """

    def __init__(
        self,
        task: str,
        tokenizer: str,
        data_dir: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        max_seq_length: int = 128,
        num_workers: int = 0,
        group_by_length: bool = False,
        pad_to_multiple_of: int | None = None,
        limit_train_examples: int | None = None,
        limit_eval_examples: int | None = None,
        seed: int = 42,
        label_map: Mapping[Any, str] | None = None,
    ) -> None:
        super().__init__()
        self._task = get_task(task)
        self.label_map = check_label_map(self._task, label_map)
        self.save_hyperparameters(ignore=["label_map"])
        check_sizes(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            max_seq_length=max_seq_length,
            limit_train_examples=limit_train_examples,
            limit_eval_examples=limit_eval_examples,
        )
        self.tokenizer, pad_id = load_tokenizer(tokenizer, max_seq_length)
        self.collator = PaddingCollator(pad_id, pad_to_multiple_of, self.tokenizer.padding_side)
        self._datasets: dict[str, EncodedDataset] = {}

    # The Lightning module that trains on this data, and what it needs to know about the task.
    module_target = "deepprompt.modules.ClassificationModule"

    def module_kwargs(self) -> dict[str, Any]:
        return {"num_labels": self.num_labels, "metrics": list(self.task.metrics)}

    @property
    def task(self) -> ClassificationTask:
        return self._task

    @property
    def num_labels(self) -> int:
        return self._task.num_labels

    @property
    def label_names(self) -> tuple[str, ...]:
        return self._task.label_names

    def prepare_data(self) -> None:
        """Nothing to download ahead: local files are read in place and the Hub caches on first read."""

    def setup(self, stage: str | None = None) -> None:
        """Read and tokenize the splits the stage needs (fit: both; validate/test/predict: validation)."""
        needed = SPLITS if stage in (None, "fit") else ("validation",)
        for split in needed:
            if split not in self._datasets:
                source, rows = self._read_split(split)
                self._datasets[split] = self._encode(source, split, rows)

    def dataset(self, split: str) -> EncodedDataset:
        if split not in self._datasets:
            raise RuntimeError(f"the {split!r} split is not loaded; call setup() first")
        return self._datasets[split]

    def train_dataloader(self) -> DataLoader:
        data = self.dataset("train")
        sampler: Sampler[int]
        if self.hparams.group_by_length:
            sampler = LengthGroupedSampler(data.lengths, self.hparams.batch_size, seed=self.hparams.seed)
        else:
            # An explicit generator makes the shuffle reproducible regardless of the global RNG state.
            # Under DDP Lightning swaps this sampler for a DistributedSampler seeded by PL_GLOBAL_SEED.
            sampler = RandomSampler(data, generator=torch.Generator().manual_seed(self.hparams.seed))
        return self._loader(data, self.hparams.batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        """Validation examples in file order, so predictions line up with the source rows."""
        data = self.dataset("validation")
        return self._loader(data, self.hparams.eval_batch_size or self.hparams.batch_size, sampler=None)

    def test_dataloader(self) -> DataLoader:
        """The validation split: these benchmarks' test labels are not public."""
        return self.val_dataloader()

    def _loader(self, data: EncodedDataset, batch_size: int, sampler: Sampler[int] | None) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(
            data,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collator,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def _read_split(self, split: str) -> tuple[str, list[Row]]:
        """Return a source name for error messages and the ``(line_or_row, dict)`` rows of one split."""
        task, hp = self._task, self.hparams
        limit = hp.limit_train_examples if split == "train" else hp.limit_eval_examples
        if hp.data_dir is not None:
            path = resolve_split_file(hp.data_dir, task.local_folder, task.local_files[split])
            if task.local_format == "tsv":
                rows = read_tsv(path, columns=(*task.text_fields, task.label_field))
            else:
                rows = read_jsonl(path)
            return str(path), list(islice(rows, limit))
        # Imported here: `datasets` is slow to import and only the Hub path needs it.
        import datasets

        hub = datasets.load_dataset(task.hub_path, task.hub_name, split=task.hub_splits[split])
        if limit is not None:
            hub = hub.select(range(min(limit, len(hub))))
        # Errors then read "<path>/<config>[<split>]:<row index>: ...".
        return f"{task.hub_path}/{task.hub_name}[{split}]", list(enumerate(hub))

    def _encode(self, source: str, split: str, rows: list[Row]) -> EncodedDataset:
        task = self._task
        if not rows:
            raise DataFormatError(f"{source}: the {split} split of {task.name} has no examples")
        local = self.hparams.data_dir is not None
        texts: list[list[str]] = [[] for _ in task.text_fields]
        labels: list[int] = []
        for line, row in rows:
            for column, field in zip(texts, task.text_fields, strict=True):
                value = row.get(field)
                if not isinstance(value, str):
                    raise DataFormatError(
                        f"{source}:{line}: field {field!r} is missing or not text: {excerpt(value)}"
                    )
                column.append(value)
            if task.label_field not in row:
                raise DataFormatError(f"{source}:{line}: no {task.label_field!r} field")
            raw = row[task.label_field]
            try:
                if local and str(raw) in self.label_map:
                    labels.append(task.label_names.index(self.label_map[str(raw)]))
                else:
                    labels.append(task.label_to_id(raw, allow_ids=not local or task.integer_labels))
            except ValueError as e:
                raise DataFormatError(f"{source}:{line}: {e}") from None
        # One batched call to the fast (Rust) tokenizer: SST-2's 67k rows take seconds this way.
        encoded = self.tokenizer(*texts, truncation=True, max_length=self.hparams.max_seq_length)
        encodings = {key: encoded[key] for key in _SEQUENCE_KEYS if key in encoded}
        return EncodedDataset(encodings, labels)
