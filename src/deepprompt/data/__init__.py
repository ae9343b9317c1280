"""The data plumbing every task family shares: readers, samplers, tokenizer checks, datasets, collators, loaders.

Names are imported on first use: the readers need no torch, so the entry points check data folders before the
heavy imports (``deepprompt.runs.preflight``).
"""

from importlib import import_module

_WHERE = {
    "FeatureCollator": "base",
    "FeatureDataset": "base",
    "SplitView": "base",
    "TaskDataModule": "base",
    "read_jsonl": "readers",
    "read_tsv": "readers",
    "resolve_split_file": "readers",
    "LengthGroupedSampler": "samplers",
    "hub_source": "sources",
    "read_split": "sources",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"deepprompt.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'deepprompt.data' has no attribute {name!r}")
