"""Data loading for classification tasks: readers, task registry, samplers, collator, data module."""

from deepprompt.data.classification import ClassificationDataModule, EncodedDataset
from deepprompt.data.collate import PaddingCollator
from deepprompt.data.readers import read_jsonl, read_tsv, resolve_split_file
from deepprompt.data.samplers import LengthGroupedSampler
from deepprompt.data.tasks import TASKS, ClassificationTask, UnknownTaskError, get_task

__all__ = [
    "TASKS",
    "ClassificationDataModule",
    "ClassificationTask",
    "EncodedDataset",
    "LengthGroupedSampler",
    "PaddingCollator",
    "UnknownTaskError",
    "get_task",
    "read_jsonl",
    "read_tsv",
    "resolve_split_file",
]
