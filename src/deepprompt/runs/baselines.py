"""The majority-class baseline of a classification run: always predict the training set's most frequent label.

Recorded in ``metrics.json`` (``baselines``) so that reports draw it beside the scores: the floor a trained
model has to clear (SST-2 dev: 50.9% accuracy; BoolQ: 62.2%).
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def _labels(datamodule: Any, split: str) -> list[int] | None:
    try:
        labels = datamodule.dataset(split).labels
    except (AttributeError, RuntimeError, KeyError, TypeError):
        return None
    labels = list(labels)
    return labels if labels and all(isinstance(y, int) for y in labels) else None


def majority_baseline(datamodule: Any, num_labels: int | None = None) -> dict[str, float]:
    """``{"val/acc": ..., "val/f1_macro": ...}`` of the majority-class predictor; {} when the data module has no
    integer labels per example (token classification, QA, generation)."""
    train, val = _labels(datamodule, "train"), _labels(datamodule, "validation")
    if not train or not val:
        return {}
    majority = Counter(train).most_common(1)[0][0]
    share = sum(1 for y in val if y == majority) / len(val)
    classes = num_labels or len(set(train) | set(val))
    # macro F1: the majority class gets precision=share, recall=1; every other class F1=0
    f1_majority = 2 * share / (1 + share) if share else 0.0
    return {"val/acc": share, "val/f1_macro": f1_majority / classes}
