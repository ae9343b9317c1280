"""Dynamic padding: each batch is padded only to its own longest sequence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

# Sequence keys and the value that fills their padding positions; absent keys are skipped.
_PAD_VALUES = {"input_ids": None, "attention_mask": 0, "token_type_ids": 0}


class PaddingCollator:
    """Turn a list of tokenized examples into a batch of LongTensors.

    ``input_ids`` are padded with ``pad_token_id`` (None in the table above), ``attention_mask`` and
    ``token_type_ids`` with 0; ``labels`` (one int per example) are stacked as is. With
    ``pad_to_multiple_of`` the width is rounded up, which lets tensor cores and kernels tile evenly.
    A plain class, not a closure, so DataLoader workers can pickle it.
    """

    def __init__(
        self,
        pad_token_id: int,
        pad_to_multiple_of: int | None = None,
        padding_side: Literal["right", "left"] = "right",
    ) -> None:
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}")
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.padding_side = padding_side

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch: dict[str, torch.Tensor] = {}
        for key, pad in _PAD_VALUES.items():
            if key not in features[0]:
                continue
            fill = self.pad_token_id if pad is None else pad
            out = torch.full((len(features), width), fill, dtype=torch.long)
            for row, f in enumerate(features):
                values = torch.as_tensor(f[key], dtype=torch.long)
                if self.padding_side == "right":
                    out[row, : len(values)] = values
                else:
                    out[row, width - len(values) :] = values
            batch[key] = out
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch
