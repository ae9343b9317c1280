"""Tiny random causal LMs / T5 and a tiny offline tokenizer for the generation tests (never the Hub)."""

from __future__ import annotations

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

VOCAB = 99
PAD = 1


def tiny_causal(kind: str, attn: str = "sdpa", seed: int = 0, layers: int = 2, hidden: int = 32):
    if kind == "llama":
        config = LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=2 * hidden,
            max_position_embeddings=128,
            pad_token_id=PAD,
            bos_token_id=2,
            eos_token_id=2,
        )
        cls = LlamaForCausalLM
    else:
        config = GPT2Config(
            vocab_size=VOCAB,
            n_embd=hidden,
            n_layer=layers,
            n_head=4,
            n_positions=128,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            pad_token_id=PAD,
            bos_token_id=2,
            eos_token_id=2,
        )
        cls = GPT2LMHeadModel
    config._attn_implementation = attn
    torch.manual_seed(seed)
    model = cls(config).eval()
    # random models: no early stop, so every sequence has exactly max_new_tokens new tokens
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = PAD
    model.generation_config.do_sample = False
    return model


def tiny_t5(attn: str = "sdpa", seed: int = 0, init_factor: float = 1.0):
    """``init_factor`` > 1 scales the random weights up (at 1.0 greedy decoding emits token 0 only)."""
    config = T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=0,
        initializer_factor=init_factor,
    )
    config._attn_implementation = attn
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def left_batch(lengths: list[int], seed: int = 1):
    n = max(lengths)
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), n), PAD, dtype=torch.long)
    mask = torch.zeros(len(lengths), n, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, n - length :] = torch.randint(3, VOCAB, (length,), generator=g)
        mask[row, n - length :] = 1
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch, as generate() makes them."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def word_tokenizer(words: list[str]):
    """A whitespace word-level fast tokenizer with <pad>/<unk>/<eos> (ids 0, 1, 2), built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>", bos_token="<eos>"
    )
