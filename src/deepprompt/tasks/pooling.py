"""What the task head reads from a backbone output: one function for training, evaluation, predict and serve.

torch only (no Lightning), so that deepprompt-serve and deepprompt-predict import it without the training stack.
"""

from __future__ import annotations

import torch


def pool(out, batch: dict[str, torch.Tensor], pooling: str) -> torch.Tensor:
    """(B, hidden) the head reads from a backbone output ``out`` of ``batch``: the pooler output (``pooler``, when the
    backbone has one), the first text token's state (``cls``) or each row's last real token (``last``: decoders).
    Training, evaluation, deepprompt-predict and deepprompt-serve all pool here."""
    if pooling == "pooler" and getattr(out, "pooler_output", None) is not None:
        return out.pooler_output
    states = out.last_hidden_state
    # after input prompts (prompt_tuning, ptuning_v1) the text sits past the virtual tokens
    offset = max(states.shape[1] - batch["input_ids"].shape[1], 0)
    if pooling == "last":
        return states[torch.arange(states.shape[0], device=states.device), offset + last_real(batch)]
    return states[:, offset]


def last_real(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B,) index of each row's last real token: the largest position whose attention mask is 1 (left or right
    padding alike); the last column without a mask."""
    ids = batch["input_ids"]
    mask = batch.get("attention_mask")
    if mask is None:
        return torch.full((ids.shape[0],), ids.shape[1] - 1, dtype=torch.long, device=ids.device)
    columns = torch.arange(mask.shape[1], device=mask.device)
    return (mask.long() * columns).argmax(-1)
