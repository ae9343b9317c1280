"""Sentence and sentence-pair classification (SST-2, RTE, BoolQ, CB): task registry, data module, module, metrics.

Names are imported on first use: the task registry (``tasks.py``) needs no torch, so the entry points check data
folders before the heavy imports (``deepprompt.runs.preflight``).
"""

from importlib import import_module

_WHERE = {
    "TASKS": "tasks",
    "ClassificationTask": "tasks",
    "UnknownTaskError": "tasks",
    "get_task": "tasks",
    "ClassificationDataModule": "data",
    "ClassificationModule": "module",
    "classification_metrics": "metrics",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"deepprompt.tasks.classification.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'deepprompt.tasks.classification' has no attribute {name!r}")
