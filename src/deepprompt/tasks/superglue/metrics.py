"""MultiRC's SuperGLUE metrics: F1a (binary F1 over all answer options) and EM (questions with every option right)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from torchmetrics import Metric


def multirc_scores(groups: Sequence[int], preds: Sequence[int], labels: Sequence[int]) -> dict[str, float]:
    """``f1a``: F1 of the positive class over answer options; ``em``: share of questions (``groups``) all right."""
    tp = sum(1 for p, y in zip(preds, labels, strict=True) if p == 1 and y == 1)
    n_pred = sum(1 for p in preds if p == 1)
    n_true = sum(1 for y in labels if y == 1)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1a = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    right: dict[int, bool] = defaultdict(lambda: True)
    for g, p, y in zip(groups, preds, labels, strict=True):
        right[g] = right[g] and p == y
    em = sum(right.values()) / len(right) if right else 0.0
    return {"f1a": f1a, "em": em}


class MultiRCMetric(Metric):
    """Keeps (question group, prediction, label) per option; gathered across processes before ``compute``."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("groups", "preds", "labels"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, groups: torch.Tensor, preds: torch.Tensor, labels: torch.Tensor) -> None:  # type: ignore[override]
        self.groups.append(groups.detach().long().cpu())
        self.preds.append(preds.detach().long().cpu())
        self.labels.append(labels.detach().long().cpu())

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        def flat(state) -> list[int]:
            if isinstance(state, torch.Tensor):
                return state.tolist()
            return torch.cat(state).tolist() if state else []

        scores = multirc_scores(flat(self.groups), flat(self.preds), flat(self.labels))
        return {k: torch.tensor(v) for k, v in scores.items()}
