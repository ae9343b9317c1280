"""Sentence and sentence-pair classification (SST-2, RTE, BoolQ, CB): task registry, data module, module, metrics.

Names are imported on first use: the task registry (``tasks.py``) needs no torch, so the entry points check data
folders before the heavy imports (``deepprompt.runs.preflight``).
"""

from deepprompt.utils.lazy import lazy_names

_WHERE = {
    "TASKS": ".tasks",
    "ClassificationTask": ".tasks",
    "UnknownTaskError": ".tasks",
    "get_task": ".tasks",
    "ClassificationDataModule": ".data",
    "ClassificationModule": ".module",
    "classification_metrics": ".metrics",
}
__all__ = sorted(_WHERE)

__getattr__ = lazy_names(__name__, _WHERE)
