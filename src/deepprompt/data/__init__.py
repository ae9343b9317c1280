"""The data plumbing every task family shares: readers, samplers, tokenizer checks, datasets, collators, loaders."""

from deepprompt.data.base import FeatureCollator, FeatureDataset, TaskDataModule
from deepprompt.data.collate import PaddingCollator
from deepprompt.data.readers import read_jsonl, read_tsv, resolve_split_file
from deepprompt.data.samplers import LengthGroupedSampler

__all__ = [
    "FeatureCollator",
    "FeatureDataset",
    "LengthGroupedSampler",
    "PaddingCollator",
    "TaskDataModule",
    "read_jsonl",
    "read_tsv",
    "resolve_split_file",
]
