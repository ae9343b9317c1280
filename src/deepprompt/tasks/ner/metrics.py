"""Entity-level micro precision/recall/F1, chunking exactly as ``seqeval.metrics`` does in its default mode.

``get_entities`` follows seqeval's (conlleval's) lenient rules: an ``I-X`` after ``O`` or after another type
starts a chunk, ``B-`` and ``S-`` always start one, ``E-``/``S-`` end one. Counting entities sentence by
sentence gives the same totals as seqeval's flattening with ``O`` separators, and the counts are sums, so
the torchmetrics wrapper synchronises across DDP processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric


def _split(tag: str) -> tuple[str, str]:
    prefix = tag[0] if tag else "O"
    kind = tag[1:].split("-", maxsplit=1)[-1] or "_"
    return prefix, kind


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def get_entities(seq: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, first, last)`` chunks of one tag sequence (inclusive token indices)."""
    prev_tag, prev_type, begin = "O", "", 0
    chunks: list[tuple[str, int, int]] = []
    for i, chunk in enumerate([*seq, "O"]):
        tag, type_ = _split(chunk)
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def entity_counts(true: Sequence[str], pred: Sequence[str]) -> tuple[int, int, int]:
    """(correct, predicted, gold) entity counts of one sentence."""
    gold, guess = set(get_entities(true)), set(get_entities(pred))
    return len(gold & guess), len(guess), len(gold)


def _prf(tp: float, n_pred: float, n_true: float) -> dict[str, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def entity_prf(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro P/R/F1 over sentences (lists of tags), as ``seqeval.metrics.{precision,recall,f1}_score``."""
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} gold sentences but {len(pred)} predicted")
    tp = n_pred = n_true = 0
    for t, p in zip(true, pred, strict=True):
        if len(t) != len(p):
            raise ValueError(f"sentence lengths differ: {len(t)} gold tags, {len(p)} predicted")
        a, b, c = entity_counts(t, p)
        tp, n_pred, n_true = tp + a, n_pred + b, n_true + c
    return _prf(tp, n_pred, n_true)


class EntityF1(Metric):
    """Accumulates entity counts from tag sequences; ``compute`` gives precision, recall and f1."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("tp", "n_pred", "n_true"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:  # type: ignore[override]
        for t, p in zip(true, pred, strict=True):
            a, b, c = entity_counts(t, p)
            self.tp += a
            self.n_pred += b
            self.n_true += c

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        scores = _prf(self.tp.item(), self.n_pred.item(), self.n_true.item())
        return {k: torch.tensor(v) for k, v in scores.items()}
