"""The backbone shapes the benchmark builds: random weights from a config, no download.

``bert-base``, ``roberta-large`` and ``smollm2`` (SmolLM2-135M, a Llama decoder) have the published sizes; ``tiny``
is a 2-layer, hidden-32 BERT for tests (``tiny-roberta`` the same sizes on RoBERTa, whose position ids come from the
input ids; ``tiny-llama`` on Llama). Each is the bare
encoder (``AutoModel``, with its pooler), as `deepprompt.backbones.load_backbone` builds it for training
(``pretrained: false``), with ``attn_implementation="sdpa"``; the head is the benchmark's
(`deepprompt.bench.models`).
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

NUM_LABELS = 2

# name -> (model type, config keywords)
SHAPES: dict[str, tuple[str, dict]] = {
    "bert-base": (
        "bert",
        dict(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            vocab_size=30522,
            max_position_embeddings=512,
            type_vocab_size=2,
        ),
    ),
    "roberta-large": (
        "roberta",
        dict(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            vocab_size=50265,
            max_position_embeddings=514,
            type_vocab_size=1,
            layer_norm_eps=1e-5,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        ),
    ),
    "tiny-roberta": (
        "roberta",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=128,
            max_position_embeddings=514,
            type_vocab_size=1,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        ),
    ),
    # SmolLM2-135M's sizes (a Llama decoder: causal attention, grouped-query keys/values, tied embeddings)
    "smollm2": (
        "llama",
        dict(
            hidden_size=576,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            intermediate_size=1536,
            vocab_size=49152,
            max_position_embeddings=8192,
            rope_theta=100000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
            pad_token_id=2,
        ),
    ),
    "tiny-llama": (
        "llama",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            vocab_size=128,
            max_position_embeddings=512,
            pad_token_id=0,
        ),
    ),
    "tiny": (
        "bert",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=128,
            max_position_embeddings=512,
            type_vocab_size=2,
        ),
    ),
}
TINY_OF = {
    "roberta": "tiny-roberta",
    "bert": "tiny",
    "llama": "tiny-llama",
}  # the test-sized shape of each family


def _shape(name: str) -> tuple[str, dict]:
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    return SHAPES[name]


def backbone_config(shape: str, overrides: dict | None = None) -> PretrainedConfig:
    """The config of ``shape`` (``overrides``: as training's ``backbone.config_overrides``); 2 labels."""
    model_type, kwargs = _shape(shape)
    return AutoConfig.for_model(
        model_type, **{**kwargs, **(overrides or {})}, num_labels=NUM_LABELS, attn_implementation="sdpa"
    )


def max_input_positions(config: PretrainedConfig) -> int:
    """How many tokens the position table takes (RoBERTa reserves padding_idx + 1 rows)."""
    offset = config.pad_token_id + 1 if config.model_type == "roberta" else 0
    return config.max_position_embeddings - offset


def build_backbone(
    shape: str, device: str | torch.device = "cpu", seed: int = 0, overrides: dict | None = None
) -> PreTrainedModel:
    """A random-weight bare encoder of ``shape`` on ``device`` (fp32 weights), seeded."""
    torch.manual_seed(seed)
    with torch.device(device):
        return AutoModel.from_config(
            backbone_config(shape, overrides), attn_implementation="sdpa", dtype=torch.float32
        )
