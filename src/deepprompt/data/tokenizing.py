"""Checks and tokenizer loading shared by every data module."""

from __future__ import annotations

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from deepprompt.errors import ConfigError

# Tokenizers without a real limit report a huge sentinel (int(1e30)) as model_max_length.
_SANE_MODEL_MAX_LENGTH = 100_000


def check_sizes(**sizes: int | None) -> None:
    """Batch sizes, lengths and limits must be >= 1 (None: not set)."""
    for name, value in sizes.items():
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")


def load_tokenizer(name: str, max_seq_length: int) -> tuple[PreTrainedTokenizerBase, int]:
    """The tokenizer and the id to pad with; ``max_seq_length`` must fit the tokenizer's own limit."""
    tokenizer = AutoTokenizer.from_pretrained(name)
    model_max = tokenizer.model_max_length
    if model_max < _SANE_MODEL_MAX_LENGTH and max_seq_length > model_max:
        raise ConfigError(
            f"max_seq_length={max_seq_length} exceeds the tokenizer's model_max_length={model_max} ({name})"
        )
    # Decoder tokenizers (GPT-2) have no pad token; any id works since the attention mask hides padding.
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ConfigError(f"tokenizer {name} has neither a pad nor an eos token to pad with")
    return tokenizer, pad_id
