"""Lightning data module for sentence and sentence-pair classification (SST-2, RTE, BoolQ, CB)."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any

from deepprompt.data.base import SEQUENCE_KEYS, FeatureDataset, TaskDataModule
from deepprompt.data.readers import Row, excerpt, read_jsonl, read_tsv
from deepprompt.data.sources import hub_source, local_source_key, read_split
from deepprompt.data.tokenizing import load_tokenizer
from deepprompt.errors import ConfigError, DataFormatError
from deepprompt.tasks.classification.tasks import ClassificationTask, get_task, label_map_by_raw

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def check_label_map(task: ClassificationTask, label_map: Mapping[Any, str] | None) -> dict[str, str]:
    """``data.label_map`` as ``{str(raw label): label name}`` (`label_map_by_raw`); ConfigError for a name the
    task does not have."""
    mapped = label_map_by_raw(label_map)
    for raw, name in mapped.items():
        if name not in task.label_names:
            raise ConfigError(
                f"data.label_map maps {raw!r} to {name!r}, which is not a {task.name} label "
                f"({', '.join(task.label_names)})"
            )
    return mapped


class ClassificationDataModule(TaskDataModule):
    """Reads a registered task from ``data_dir`` (original file formats) or, when it is None, from the Hub.

    ``setup`` reads, validates and tokenizes (truncating to ``max_seq_length``) without padding; the
    collator pads each batch to its longest example. ``limit_*_examples`` keep the first N rows. Evaluation
    runs on the validation split (these benchmarks' test labels are not public), in file order, so
    predictions line up with the source rows.
    ``label_map`` (``{raw label: label name}``) says what the labels of the local files mean, e.g. numbered
    labels of a task whose published files name them (which are otherwise refused: their order is unknown).

    Decoder-only backbones (SmolLM2 from its GGUF or a local folder, GPT-2): the pad id is the pad token, else
    eos; batches pad on the tokenizer's side (SmolLM2: right) and the attention mask hides the padding, which
    the module's position ids and last-token head ignore (``head.pooling: last``). Such tokenizers have no
    separator token and join a text pair with nothing between, so the second text starts on a new line
    (``PAIR_BREAK``).

    ``tokenizer`` is a Hub name, a folder or a GGUF file, or a tokenizer already loaded (`load_tokenizer`), which
    several data modules then share: `MultiTaskDataModule` loads one for all its tasks.
    """

    PAIR_BREAK = "\n"

    def __init__(
        self,
        task: str,
        tokenizer: str | PreTrainedTokenizerBase,
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
        cache_dir: str | None = None,
    ) -> None:
        task_spec = get_task(task)  # an unknown name fails first, listing the valid ones
        super().__init__(
            tokenizer,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            max_seq_length=max_seq_length,
            num_workers=num_workers,
            group_by_length=group_by_length,
            pad_to_multiple_of=pad_to_multiple_of,
            limit_train_examples=limit_train_examples,
            limit_eval_examples=limit_eval_examples,
            seed=seed,
            cache_dir=cache_dir,
        )
        self.label_map = check_label_map(task_spec, label_map)
        # a tokenizer handed in (shared by the tasks of a MultiTaskDataModule) is an object, no hyperparameter
        self.save_hyperparameters(
            ignore=["label_map"] if isinstance(tokenizer, str) else ["label_map", "tokenizer"]
        )
        self._task = task_spec
        self.data_dir = data_dir

    @staticmethod
    def load_tokenizer(name: str | PreTrainedTokenizerBase, max_seq_length: int):
        """The tokenizer and its pad id: from a Hub name or folder, or the one inside a GGUF file. A tokenizer
        already loaded is used as it is (whoever loaded it checked ``max_seq_length`` against its limit)."""
        if not isinstance(name, str):
            return name, _pad_id(name, name.name_or_path)
        from deepprompt.backbones import resolve_model_path

        folder, gguf = resolve_model_path(name)
        if gguf is None:
            return load_tokenizer(name, max_seq_length)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
        return tokenizer, _pad_id(tokenizer, name)

    # What the Lightning module that trains on this data (see deepprompt.tasks.registry) needs to know.
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

    def build_split(self, split: str) -> FeatureDataset:
        source, rows = self._read_split(split)
        return self._encode(source, split, rows)

    def cache_key(self, split: str) -> dict[str, Any] | None:
        """The local file, the task's definition (fields, label names, formats) and the label map."""
        task = self._task
        files = local_source_key(self.data_dir, (task.local_folder, task.local_files[split]))
        if files is None:
            return None
        from deepprompt.data.cache import code_identity

        return {
            "task": task.name,
            "files": [files],
            "task_spec": repr(task),
            "task_code": code_identity(ClassificationTask),
            "label_map": self.label_map,
        }

    def _read_split(self, split: str) -> tuple[str, list[Row]]:
        """Return a source name for error messages and the ``(line_or_row, dict)`` rows of one split."""
        task, limit = self._task, self.limit(split)

        def reader(path):
            if task.local_format == "tsv":
                return read_tsv(path, columns=(*task.text_fields, task.label_field))
            return read_jsonl(path)

        hub = hub_source(task.hub_path, task.hub_name, task.hub_splits[split])

        def first_rows(data) -> list[Row]:
            if limit is not None:
                data = data.select(range(min(limit, len(data))))
            return list(enumerate(data))

        return read_split(
            self.data_dir,
            (task.local_folder, task.local_files[split]),
            lambda path: list(islice(reader(path), limit)),
            hub,
            first_rows,
        )

    def _encode(self, source: str, split: str, rows: list[Row]) -> FeatureDataset:
        task = self._task
        if not rows:
            raise DataFormatError(f"{source}: the {split} split of {task.name} has no examples")
        local = self.data_dir is not None
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
        if (
            len(texts) == 2 and self.tokenizer.sep_token is None
        ):  # a decoder's tokenizer: nothing between them
            texts[1] = [self.PAIR_BREAK + text for text in texts[1]]
        # One batched call to the fast (Rust) tokenizer: SST-2's 67k rows take seconds this way.
        encoded = self.tokenizer(*texts, truncation=True, max_length=self.max_seq_length)
        keys = [key for key in SEQUENCE_KEYS if key in encoded]
        return FeatureDataset(
            [{**{key: encoded[key][i] for key in keys}, "labels": label} for i, label in enumerate(labels)]
        )


def _pad_id(tokenizer: PreTrainedTokenizerBase, name: str) -> int:
    """The pad token's id, else eos's (the attention mask hides padding, so any id works)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ConfigError(f"tokenizer {name} has neither a pad nor an eos token to pad with")
    return pad
