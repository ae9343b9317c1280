"""`FeatureCollator`: padding to the longest row (rounded up), on either side, for lists, tensors and choices."""

from __future__ import annotations

import pytest
import torch

from deepprompt.data.base import IGNORE_INDEX, FeatureCollator

FEATURES = [
    {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": 1},
    {"input_ids": torch.tensor([8]), "attention_mask": [1], "labels": 0},  # a tensor row
    {"input_ids": [], "attention_mask": [], "labels": 2},  # an empty row
]


@pytest.mark.parametrize(
    ("side", "ids", "mask"),
    [
        ("right", [[5, 6, 7, 0], [8, 0, 0, 0], [0, 0, 0, 0]], [[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]),
        ("left", [[0, 5, 6, 7], [0, 0, 0, 8], [0, 0, 0, 0]], [[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]),
    ],
)
def test_rows_are_padded_on_their_side_to_a_multiple(side, ids, mask):
    batch = FeatureCollator(pad_token_id=0, pad_to_multiple_of=2, padding_side=side)(FEATURES)
    assert batch["input_ids"].dtype == torch.long and batch["input_ids"].tolist() == ids
    assert batch["attention_mask"].tolist() == mask
    assert batch["labels"].tolist() == [1, 0, 2]


def test_choices_and_token_labels_are_padded():
    features = [
        {"input_ids": [[1, 2], [3]], "labels": [4, 5, 6]},
        {"input_ids": [[7], [8, 9, 10]], "labels": [11]},
    ]
    batch = FeatureCollator(pad_token_id=99)(features)
    assert batch["input_ids"].tolist() == [[[1, 2, 99], [3, 99, 99]], [[7, 99, 99], [8, 9, 10]]]
    assert batch["labels"].tolist() == [[4, 5, 6], [11, IGNORE_INDEX, IGNORE_INDEX]]
