"""Data loading: readers, task registry, samplers, collators and the data modules of every task family.

Names are imported on first use: the registry (``deepprompt.data.tasks``) and the readers need no torch, so the
entry points check data folders before the heavy imports (``deepprompt.runs.preflight``).
"""

from importlib import import_module

_WHERE = {
    "ClassificationDataModule": "classification",
    "EncodedDataset": "classification",
    "PaddingCollator": "collate",
    "read_jsonl": "readers",
    "read_tsv": "readers",
    "resolve_split_file": "readers",
    "LengthGroupedSampler": "samplers",
    "TASKS": "tasks",
    "ClassificationTask": "tasks",
    "UnknownTaskError": "tasks",
    "get_task": "tasks",
    # task families beyond sentence classification
    "FeatureCollator": "base",
    "FeatureDataset": "base",
    "TaskDataModule": "base",
    "MultipleChoiceDataModule": "multiple_choice",
    "NERDataModule": "ner",
    "read_conll": "ner",
    "to_iob2": "ner",
    "SquadDataModule": "squad",
    "read_squad": "squad",
    "SuperGLUEDataModule": "superglue",
    # joint multi-task training
    "MultiTaskDataModule": "multitask",
    "MultiTaskSampler": "multitask",
    "task_probabilities": "multitask",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"deepprompt.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'deepprompt.data' has no attribute {name!r}")
