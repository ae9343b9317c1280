"""The data plumbing every task family shares: readers, samplers, tokenizer checks, datasets, collators, loaders.

Names are imported on first use: the readers need no torch, so the entry points check data folders before the
heavy imports (``deepprompt.runs.preflight``).
"""

from deepprompt.utils.lazy import lazy_names

_WHERE = {
    "FeatureCollator": ".base",
    "FeatureDataset": ".base",
    "SplitView": ".base",
    "TaskDataModule": ".base",
    "read_jsonl": ".readers",
    "read_tsv": ".readers",
    "resolve_split_file": ".readers",
    "LengthGroupedSampler": ".samplers",
    "hub_source": ".sources",
    "read_split": ".sources",
}
__all__ = sorted(_WHERE)

__getattr__ = lazy_names(__name__, _WHERE)
