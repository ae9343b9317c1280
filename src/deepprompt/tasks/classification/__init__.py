"""Sentence and sentence-pair classification (SST-2, RTE, BoolQ, CB): task registry, data module, module, metrics."""

from deepprompt.tasks.classification.data import ClassificationDataModule
from deepprompt.tasks.classification.metrics import classification_metrics
from deepprompt.tasks.classification.module import ClassificationModule
from deepprompt.tasks.classification.tasks import TASKS, ClassificationTask, UnknownTaskError, get_task

__all__ = [
    "TASKS",
    "ClassificationDataModule",
    "ClassificationModule",
    "ClassificationTask",
    "UnknownTaskError",
    "classification_metrics",
    "get_task",
]
