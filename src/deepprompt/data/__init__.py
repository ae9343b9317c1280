"""The data plumbing every task family shares: readers, samplers, tokenizer checks, datasets, collators, loaders."""

from deepprompt.data.base import FeatureCollator, FeatureDataset, SplitView, TaskDataModule
from deepprompt.data.readers import read_jsonl, read_tsv, resolve_split_file
from deepprompt.data.samplers import LengthGroupedSampler
from deepprompt.data.sources import hub_source, read_split

__all__ = [
    "FeatureCollator",
    "FeatureDataset",
    "LengthGroupedSampler",
    "SplitView",
    "TaskDataModule",
    "hub_source",
    "read_split",
    "read_jsonl",
    "read_tsv",
    "resolve_split_file",
]
