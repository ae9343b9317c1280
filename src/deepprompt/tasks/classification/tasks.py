"""Registry of the sentence(-pair) classification tasks: where their data lives and how labels map to ids."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from deepprompt.data.readers import excerpt
from deepprompt.errors import ConfigError, DeepPromptError

SPLITS = ("train", "validation")


def label_map_by_raw(label_map: Any, where: str = "data") -> dict[str, str]:
    """``<where>.label_map`` (``{raw label: label name}``) keyed by the text a file's label is compared as:
    ``0`` -> ``"0"``, YAML's ``true`` -> ``"true"`` (not Python's ``"True"``); None -> ``{}``. The config
    schema and the data module both read it through here. ConfigError for anything but a mapping."""
    if label_map is None:
        return {}
    if not isinstance(label_map, Mapping):
        raise ConfigError(
            f"{where}.label_map must map raw labels to label names, e.g. {{0: entailment, 1: neutral}}, "
            f"got {label_map!r}"
        )
    return {str(k).lower() if isinstance(k, bool) else str(k): v for k, v in label_map.items()}


class UnknownTaskError(DeepPromptError, KeyError):
    """The requested task name is not in the registry."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message, wrapping it in quotes.
        return str(self.args[0])


@dataclass(frozen=True)
class ClassificationTask:
    """How to read one classification task, locally (``data_dir``) or from the Hugging Face Hub.

    Label ids are positions in ``label_names``; the order matches the hub's integer labels, so hub
    rows and local rows give the same ids. ``integer_labels``: the task's published files store those ids
    (GLUE's TSVs) rather than names; in a local file of another task a number is refused (:meth:`label_to_id`
    with ``allow_ids=False``), since nothing says which order it was numbered in.
    """

    name: str
    text_fields: tuple[str, ...]
    label_field: str
    label_names: tuple[str, ...]
    metrics: tuple[str, ...]
    hub_path: str
    hub_name: str
    hub_splits: dict[str, str]
    local_folder: str
    local_files: dict[str, str]
    local_format: Literal["tsv", "jsonl"]
    integer_labels: bool = False

    def __post_init__(self) -> None:
        # Tokenizers encode one text or a (first, second) pair; more segments have no encoding.
        if not 1 <= len(self.text_fields) <= 2:
            raise ValueError(f"{self.name}: text_fields must name one or two fields, got {self.text_fields}")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def label_to_id(self, raw: Any, allow_ids: bool = True) -> int:
        """Map a raw label (name, JSON bool, int id or its decimal string) to its id; ValueError if invalid.

        ``allow_ids=False`` (a local file of a task whose files name their labels): numbers are refused.
        """
        if isinstance(raw, bool):  # BoolQ's JSON true/false; checked before int since bool is an int
            raw = str(raw).lower()
        if isinstance(raw, str) and raw in self.label_names:
            return self.label_names.index(raw)
        number = isinstance(raw, int) or (isinstance(raw, str) and raw.isdecimal())
        if number and not allow_ids:
            raise ValueError(
                f"label {excerpt(raw)} is a number, but {self.name} files name their labels "
                f"({', '.join(self.label_names)}); write the names, or say what each number means with "
                "data.label_map={<number>: <name>, ...}"
            )
        if isinstance(raw, str) and raw.isdecimal():  # GLUE TSV stores ids as text
            raw = int(raw)
        if isinstance(raw, int) and 0 <= raw < self.num_labels:
            return raw
        valid = ", ".join(f"{i}={n}" for i, n in enumerate(self.label_names))
        raise ValueError(f"label {excerpt(raw)} is not one of the {self.name} labels ({valid})")


def _superglue(
    name: str, text_fields: tuple[str, ...], label_names: tuple[str, ...], metrics: tuple[str, ...]
) -> ClassificationTask:
    return ClassificationTask(
        name=name,
        text_fields=text_fields,
        label_field="label",
        label_names=label_names,
        metrics=metrics,
        hub_path="aps/super_glue",
        hub_name=name,
        hub_splits={"train": "train", "validation": "validation"},
        local_folder=name,
        # SuperGLUE's test labels are hidden, so its val split is the evaluation split.
        local_files={"train": "train.jsonl", "validation": "val.jsonl"},
        local_format="jsonl",
    )


TASKS: dict[str, ClassificationTask] = {
    "sst2": ClassificationTask(
        name="sst2",
        text_fields=("sentence",),
        label_field="label",
        label_names=("negative", "positive"),
        metrics=("acc",),
        hub_path="nyu-mll/glue",
        hub_name="sst2",
        hub_splits={"train": "train", "validation": "validation"},
        local_folder="sst2",
        local_files={"train": "train.tsv", "validation": "dev.tsv"},
        local_format="tsv",
        integer_labels=True,  # GLUE's TSVs: 0 = negative, 1 = positive
    ),
    "rte": _superglue("rte", ("premise", "hypothesis"), ("entailment", "not_entailment"), ("acc",)),
    "boolq": _superglue("boolq", ("question", "passage"), ("false", "true"), ("acc",)),
    "cb": _superglue(
        "cb", ("premise", "hypothesis"), ("entailment", "contradiction", "neutral"), ("acc", "f1_macro")
    ),
}


def get_task(name: str) -> ClassificationTask:
    """Look up a task by name; the error lists the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}") from None
