"""The benchmark's batches: random token ids (optionally padded) and the run's autocast."""

from __future__ import annotations

import contextlib

import torch


def autocast(args):
    """``torch.autocast(bfloat16)`` on the run's device for ``--dtype bf16``, else nothing."""
    if args.dtype == "bf16":
        return torch.autocast(device_type=torch.device(args.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def padded_lengths(batch: int, seq: int, pad: float) -> list[int]:
    """Row lengths from ``seq`` down to ``seq (1 - 2 pad)``, evenly spaced: ``pad`` is the mean padded fraction."""
    if not 0.0 <= pad < 0.5:
        raise ValueError(f"--pad must be in [0, 0.5), got {pad}")
    shortest = max(1, round(seq * (1 - 2 * pad)))
    if batch == 1:
        return [seq]
    return [round(seq - (seq - shortest) * i / (batch - 1)) for i in range(batch)]


def make_inputs(config, args, seq: int, pad: float = 0.0, batch: int | None = None):
    """``(batch dict, labels)`` on ``args.device``: ``batch or args.batch`` rows of ``seq`` random ids (seeded by
    ``args.seed``), an attention mask when padded (``pad``) or asked for (``args.attention_mask``)."""
    rows = batch or args.batch
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    low = 3 if config.model_type == "roberta" else 1  # keep clear of special ids (RoBERTa pad = 1)
    ids = torch.randint(low, config.vocab_size, (rows, seq), generator=gen)
    labels = torch.randint(0, config.num_labels, (rows,), generator=gen).to(args.device)
    out = {}
    if pad > 0:
        lengths = torch.tensor(padded_lengths(rows, seq, pad))
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
        ids = ids.masked_fill(mask == 0, config.pad_token_id or 0)
        out["attention_mask"] = mask.to(args.device)
    elif getattr(args, "attention_mask", False):
        out["attention_mask"] = torch.ones_like(ids).to(args.device)
    out["input_ids"] = ids.to(args.device)
    return out, labels
