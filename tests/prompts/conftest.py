"""Tiny random backbones (never the Hub) and the reference implementation the engine is checked against.

The reference for deep prompts is transformers' own cache path: a `DynamicCache` pre-filled with every
layer's prefix keys/values, explicit position ids (those the unprompted model would use, so nothing shifts by
m) and a 2D attention mask of ``ones(m)`` followed by the real mask.
"""

from __future__ import annotations

import sys

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    DynamicCache,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaModel,
)
from transformers.models.roberta.modeling_roberta import RobertaEmbeddings

VOCAB = 99
PAD = 1  # RoBERTa's padding_idx; used as pad id everywhere (real tokens are drawn from 3..VOCAB-1)

ENCODER_CLASSES = {
    "bert": BertModel,
    "bert-cls": BertForSequenceClassification,
    "roberta": RobertaModel,
    "roberta-cls": RobertaForSequenceClassification,
}
CAUSAL_CLASSES = {"llama": LlamaForCausalLM, "gpt2": GPT2LMHeadModel}
ATTN = ("sdpa", "eager")


def tiny_config(
    kind: str, attn: str = "sdpa", layers: int = 2, hidden: int = 32, heads: int = 4, **overrides
):
    family = kind.split("-")[0]
    if family in ("bert", "roberta"):
        cls = BertConfig if family == "bert" else RobertaConfig
        kw = dict(
            vocab_size=VOCAB,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=2 * hidden,
            max_position_embeddings=64,
            type_vocab_size=2,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            pad_token_id=PAD,
            num_labels=3,
        )
    elif family == "llama":
        cls = LlamaConfig
        kw = dict(
            vocab_size=VOCAB,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            intermediate_size=2 * hidden,
            max_position_embeddings=64,
            pad_token_id=PAD,
            attention_dropout=0.0,
        )
    elif family == "gpt2":
        cls = GPT2Config
        kw = dict(
            vocab_size=VOCAB,
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_positions=64,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            pad_token_id=PAD,
            bos_token_id=2,
            eos_token_id=2,
        )
    else:  # pragma: no cover
        raise ValueError(kind)
    kw.update(overrides)
    config = cls(**kw)
    config._attn_implementation = attn
    return config


def build(kind: str, attn: str = "sdpa", seed: int = 0, **config_kw):
    """A tiny random model of ``kind`` (see ENCODER_CLASSES / CAUSAL_CLASSES), in eval mode."""
    cls = {**ENCODER_CLASSES, **CAUSAL_CLASSES}[kind]
    torch.manual_seed(seed)
    model = cls(tiny_config(kind, attn, **config_kw))
    return model.eval()


def batch(lengths: list[int], n: int | None = None, seed: int = 1, left: bool = False):
    """input_ids (pad = PAD) and attention_mask for sequences of the given real lengths."""
    n = n or max(lengths)
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), n), PAD, dtype=torch.long)
    mask = torch.zeros(len(lengths), n, dtype=torch.long)
    for row, length in enumerate(lengths):
        span = slice(n - length, n) if left else slice(0, length)
        ids[row, span] = torch.randint(3, VOCAB, (length,), generator=g)
        mask[row, span] = 1
    return ids, mask


def default_positions(model, input_ids: torch.Tensor) -> torch.Tensor:
    """The position ids the unprompted model uses by default (deep prompts must not shift them)."""
    if model.config.model_type == "roberta":
        return RobertaEmbeddings.create_position_ids_from_input_ids(input_ids, model.config.pad_token_id, 0)
    return torch.arange(input_ids.shape[1]).expand(input_ids.shape[0], -1)


def cache_reference(model, prompts: dict, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, **kw):
    """The backbone run through transformers' cache path with the prefixes pre-filled (every layer prompted)."""
    b = input_ids.shape[0]
    cache = DynamicCache()
    for layer in range(model.config.num_hidden_layers):
        k, v = prompts[layer]
        cache.update(k.expand(b, -1, -1, -1).clone(), v.expand(b, -1, -1, -1).clone(), layer)
    m = prompts[0][0].shape[2]
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    full_mask = torch.cat([torch.ones(b, m, dtype=attention_mask.dtype), attention_mask], dim=1)
    return model(
        input_ids=input_ids,
        attention_mask=full_mask,
        position_ids=default_positions(model, input_ids),
        past_key_values=cache,
        **kw,
    )


def main_output(out) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") and out.logits is not None else out.last_hidden_state


@pytest.fixture(autouse=True)
def _deterministic():
    # One intra-op thread: these models are tiny, and on a shared 2-core box more threads make a forward pass
    # ~50x slower (0.3 s instead of 5 ms) through contention.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    yield
    torch.set_num_threads(threads)


_HELPERS = sys.modules[__name__]


@pytest.fixture(scope="session")
def tiny():
    """This module (tiny models, batches, the cache reference); conftest modules are not importable by name
    when several test folders without ``__init__.py`` each have one."""
    return _HELPERS
