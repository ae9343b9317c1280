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

# Task families beyond sentence classification (issue 4).
from deepprompt.data.base import FeatureCollator, FeatureDataset, TaskDataModule  # noqa: E402
from deepprompt.data.multiple_choice import MultipleChoiceDataModule  # noqa: E402
from deepprompt.data.ner import NERDataModule, read_conll, to_iob2  # noqa: E402
from deepprompt.data.squad import SquadDataModule, read_squad  # noqa: E402
from deepprompt.data.superglue import SuperGLUEDataModule  # noqa: E402

__all__ += [
    "FeatureCollator",
    "FeatureDataset",
    "MultipleChoiceDataModule",
    "NERDataModule",
    "SquadDataModule",
    "SuperGLUEDataModule",
    "TaskDataModule",
    "read_conll",
    "read_squad",
    "to_iob2",
]

# Joint multi-task training (issue 9).
from deepprompt.data.multitask import (  # noqa: E402
    MultiTaskDataModule,
    MultiTaskSampler,
    task_probabilities,
)

__all__ += ["MultiTaskDataModule", "MultiTaskSampler", "task_probabilities"]
