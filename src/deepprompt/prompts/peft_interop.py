"""Interchange with peft's PrefixTuning checkpoints (peft 0.21).

peft stores prefix tuning as ``prompt_embeddings`` ``(m, num_layers * 2 * token_dim)``; `PeftModel.get_prompt`
views it as ``(B, m, num_layers * 2, num_attention_heads, token_dim // num_attention_heads)`` and permutes to
``(num_layers * 2, B, heads, m, head_dim)``, so layer l's key is row 2l and its value row 2l + 1. Our joint
prefix ``(m, L * 2 * kv_width)`` is viewed as ``(m, L, 2, kv_heads, head_dim)``: the very same column order.
With ``token_dim = kv_width`` and ``num_attention_heads = num_kv_heads`` the tensor is therefore exchanged as
is, no transpose needed (GQA included: peft's "heads" are the key/value heads).

Positions: peft passes the prefix as ``past_key_values``, so the model counts the m prefix positions as past
and the real tokens get position ids ``m .. m+n-1``; deep prompts keep ``0 .. n-1``. The two agree exactly when our
model is fed explicit ``position_ids = arange(n) + m`` (tests/prompts/test_peft_interop.py, BERT and Llama).
Passing ``position_ids=arange(n)`` to the peft model does not undo the shift (peft 0.21's prefix path does not
reach the backbone's position ids unchanged in our test), so prompts moved between the two frameworks see
positions shifted by m: expect a small accuracy change, and re-tune briefly if it matters.

Only full-depth, uniform-length prompts can be exchanged (peft has one length and every layer); the task
head is not exported (peft keeps it in ``modules_to_save``; save it separately if needed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from deepprompt.errors import PromptMismatchError
from deepprompt.prompts.config import DeepPromptConfig
from deepprompt.prompts.geometry import BackboneGeometry
from deepprompt.prompts.model import DeepPromptModel, add_deep_prompts

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def _task_type(model: PreTrainedModel) -> str:
    name = type(model).__name__
    for suffix, task in (
        ("ForSequenceClassification", "SEQ_CLS"),
        ("ForTokenClassification", "TOKEN_CLS"),
        ("ForQuestionAnswering", "QUESTION_ANS"),
        ("ForCausalLM", "CAUSAL_LM"),
        ("LMHeadModel", "CAUSAL_LM"),
        ("ForConditionalGeneration", "SEQ_2_SEQ_LM"),
    ):
        if name.endswith(suffix):
            return task
    return "FEATURE_EXTRACTION"


def export_to_peft(
    model: DeepPromptModel,
    out_dir: str | os.PathLike,
    base_model_name_or_path: str | None = None,
    task_type: str | None = None,
) -> Path:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors`` loadable by ``PeftModel.from_pretrained``."""
    from peft import PrefixTuningConfig

    enc, g = model.prompt_encoder, model.geometry
    if enc.layer_ids != list(range(g.num_layers)) or len(set(enc.lengths.values())) != 1:
        raise PromptMismatchError(
            "peft's PrefixTuning has one prompt length in every layer: only full-depth, uniform-length deep "
            f"prompts can be exported (these prompt layers {enc.layer_ids} with lengths {enc.lengths})"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = PrefixTuningConfig(
        task_type=task_type or _task_type(model.model),
        num_virtual_tokens=enc.length,
        num_layers=g.num_layers,
        token_dim=g.kv_width,
        num_attention_heads=g.num_kv_heads,
        encoder_hidden_size=g.hidden_size,
        prefix_projection=False,
        num_transformer_submodules=1,
        base_model_name_or_path=base_model_name_or_path,
        inference_mode=True,
    )
    config.save_pretrained(str(out_dir))
    with torch.no_grad():
        flat = enc.flat().detach().float().contiguous().clone()  # (m, L * 2 * kv_width), MLP output if any
    save_file({"prompt_embeddings": flat}, str(out_dir / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    return out_dir


def import_from_peft(
    directory: str | os.PathLike, backbone: PreTrainedModel, dropout: float = 0.0, train_head: bool = True
) -> DeepPromptModel:
    """A `DeepPromptModel` on ``backbone`` holding the prefix of a peft PrefixTuning checkpoint."""
    directory = Path(directory)
    meta = json.loads((directory / ADAPTER_CONFIG).read_text())
    if meta.get("peft_type") != "PREFIX_TUNING":
        raise PromptMismatchError(f"{directory} holds a {meta.get('peft_type')} adapter, not PREFIX_TUNING")
    if meta.get("num_transformer_submodules") not in (None, 1):
        raise PromptMismatchError(
            "encoder-decoder prefix tuning (two transformer submodules) is not supported"
        )
    path = directory / ADAPTER_WEIGHTS
    if not path.is_file():
        raise PromptMismatchError(f"{path} is missing (only safetensors adapters are read)")
    tensors = load_file(str(path))
    weights = tensors.get("prompt_embeddings")
    if weights is None:
        raise PromptMismatchError(f"{path} has no 'prompt_embeddings' (keys: {sorted(tensors)})")
    g = BackboneGeometry.from_config(backbone.config)
    m, width = weights.shape
    want = g.num_layers * 2 * g.kv_width
    if (
        meta.get("num_layers") != g.num_layers
        or meta.get("token_dim") != g.kv_width
        or meta.get("num_attention_heads") != g.num_kv_heads
        or width != want
        or meta.get("num_virtual_tokens") != m
    ):
        raise PromptMismatchError(
            f"peft prefix (num_layers={meta.get('num_layers')}, token_dim={meta.get('token_dim')}, "
            f"heads={meta.get('num_attention_heads')}, tensor {tuple(weights.shape)}) does not fit this backbone "
            f"(num_layers={g.num_layers}, kv_width={g.kv_width}, kv_heads={g.num_kv_heads}, needs (m, {want}))"
        )
    model = add_deep_prompts(
        backbone, DeepPromptConfig(length=m, layers="all", dropout=dropout), train_head=train_head
    )
    with torch.no_grad():
        model.prompt_encoder.prefix.copy_(weights)
    return model
