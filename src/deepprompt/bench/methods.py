"""The compared methods, each built on a fresh random-weight backbone of a named shape.

Shapes are built from configs only (no Hub download): ``bert-base`` and ``roberta-large`` have the published
shapes, ``tiny`` is a 2-layer, hidden-32 BERT for tests
(``tiny-roberta`` the same sizes on RoBERTa). Every backbone is a ``*ForSequenceClassification``
with 2 labels and ``attn_implementation="sdpa"``.

Methods (``build_method`` returns the model to call and its trainable parameters):

- ``ptuning_v2``: our engine, `add_deep_prompts` with ``m`` prompt tokens on every layer (head trains), with
  its default switches (compact masks, cached inference prompts), fp32 frozen weights under autocast;
- ``ptuning_v2_naive``: the same engine with every speed switch off (a (B, 1, T, m + T) mask materialised in
  every layer, prompts recomputed per inference batch): the "before" row;
- ``ptuning_v2_bf16``: ``ptuning_v2`` with the frozen backbone stored in bf16 (``frozen_dtype``; bf16 runs only);
- ``ptuning_v2_bf16_top``: ``ptuning_v2_bf16`` with prompts on the top half of the layers only (no backward
  below them);
- issue 5's next levers, all on top of ``ptuning_v2_bf16`` (`LEVERS`): ``ptuning_v2_nodrop`` (the frozen
  backbone's hidden and attention dropout off: every ``nn.Dropout`` of ``base_model`` at p = 0, so no dropout
  kernel runs and SDPA gets ``dropout_p=0``; the prompts' and the head's dropout stay), ``ptuning_v2_compile``
  (the backbone's forward compiled with ``torch.compile(dynamic=False)``: the bench's shapes are fixed; the
  training loop's dynamic padding would need ``dynamic=True`` or length buckets, or it recompiles per batch
  shape), ``ptuning_v2_compile_nodrop`` (both), ``ptuning_v2_cudagraph`` (compiled with
  ``mode="reduce-overhead"``: inductor's CUDA graphs replay each compiled graph with one launch);
- ``ptuning_v2_graphs``: ``ptuning_v2_bf16`` with ``enable_cuda_graphs()``: no compiler, the eager kernels of
  the training forward and backward captured as CUDA graphs at the first step (prompts/graphing.py; CUDA only,
  elsewhere it runs eager);
- ``peft_prefix``: ``peft.PrefixTuningConfig(task_type=SEQ_CLS, num_virtual_tokens=m)`` + ``get_peft_model``
  (prefix through the KV cache, positions shifted by m, so T + m must fit the position table);
- ``lora``: ``peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1)`` on ``query``/``value``;
- ``full_ft``: every parameter trains;
- ``bare``: the backbone itself, inference only; ``bare_bf16``: the same with bf16 weights.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from deepprompt.prompts import DeepPromptConfig, add_deep_prompts, compiling

METHODS = (
    "ptuning_v2",
    "ptuning_v2_naive",
    "ptuning_v2_bf16",
    "ptuning_v2_bf16_top",
    "peft_prefix",
    "lora",
    "full_ft",
    "bare",
    "bare_bf16",
    "ptuning_v2_nodrop",
    "ptuning_v2_compile",
    "ptuning_v2_compile_nodrop",
    "ptuning_v2_cudagraph",
    "peft_prefix_compile",
    "peft_prefix_cudagraph",
    "ptuning_v2_graphs",
)
# our engine's variants: method name -> add_deep_prompts speed switches (+ "top": prompts on the top half)
PTUNING_VARIANTS: dict[str, dict] = {
    "ptuning_v2": {},
    "ptuning_v2_naive": {"compact_mask": False, "cache_prompts": False, "detach_below": False},
    "ptuning_v2_bf16": {"frozen_dtype": torch.bfloat16},
    "ptuning_v2_bf16_top": {"frozen_dtype": torch.bfloat16, "top": True},
    # issue 5's next levers ("dropout": False = backbone dropout off; "compile": torch.compile mode)
    "ptuning_v2_nodrop": {"frozen_dtype": torch.bfloat16, "dropout": False},
    "ptuning_v2_compile": {"frozen_dtype": torch.bfloat16, "compile": "default"},
    "ptuning_v2_compile_nodrop": {"frozen_dtype": torch.bfloat16, "compile": "default", "dropout": False},
    "ptuning_v2_cudagraph": {"frozen_dtype": torch.bfloat16, "compile": "reduce-overhead"},
    "ptuning_v2_graphs": {"frozen_dtype": torch.bfloat16, "graphs": True},
}
LEVERS = ("ptuning_v2_nodrop", "ptuning_v2_compile", "ptuning_v2_compile_nodrop", "ptuning_v2_cudagraph")
# peft prefix tuning with its backbone compiled the same way (the prompt encoder stays eager, as ours): is the
# compiled engine faster than peft, or only compile faster than eager? fp32 weights under autocast, as peft_prefix
PEFT_COMPILED: dict[str, str] = {"peft_prefix_compile": "default", "peft_prefix_cudagraph": "reduce-overhead"}
GRAPHED = frozenset(m for m, v in PTUNING_VARIANTS.items() if v.get("graphs"))  # method.cuda_graphs
COMPILED = frozenset({*(m for m, v in PTUNING_VARIANTS.items() if "compile" in v), *PEFT_COMPILED})
BF16_ONLY = frozenset(
    {"ptuning_v2_bf16", "ptuning_v2_bf16_top", "bare_bf16", "ptuning_v2_graphs", *LEVERS}
)  # bf16 weights need autocast
INFERENCE_ONLY = frozenset({"bare", "bare_bf16"})
PROMPTED = frozenset(
    {*PTUNING_VARIANTS, "peft_prefix", *PEFT_COMPILED}
)  # methods whose cost depends on the prompt length m
TRAINED = ("ptuning_v2", "peft_prefix", "lora", "full_ft")
FROZEN_BACKBONE = frozenset({*PTUNING_VARIANTS, "peft_prefix", *PEFT_COMPILED, "lora"})
LORA_RANK = 8


def peft_prefix_backbone(model: nn.Module) -> nn.Module:
    """The module a peft prefix-tuning model calls with ``past_key_values``: the wrapped *ForSequenceClassification
    when its ``forward`` takes them, else (BERT, RoBERTa in transformers 5) the bare encoder inside it
    (``transformer_backbone_name``), with the head applied eagerly by peft. Compiling the wrapper in the second case
    compiles nothing: peft never calls it (``PeftModelForSequenceClassification._prefix_tuning_forward``)."""
    base = model.base_model
    if "past_key_values" in inspect.signature(base.forward).parameters:
        return base
    return base.get_submodule(model.transformer_backbone_name)


def compile_mode(method: str) -> str | None:
    """The torch.compile mode of a bench method (None: eager)."""
    return PEFT_COMPILED.get(method) or PTUNING_VARIANTS.get(method, {}).get("compile")


LORA_TARGETS = ("query", "value")

# name -> (config class, model class, config keywords)
SHAPES: dict[str, tuple[type, type, dict]] = {
    "bert-base": (
        BertConfig,
        BertForSequenceClassification,
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
        RobertaConfig,
        RobertaForSequenceClassification,
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
    "tiny-roberta": (  # RoBERTa's embeddings (position ids from the input ids), for tests
        RobertaConfig,
        RobertaForSequenceClassification,
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
    "tiny": (
        BertConfig,
        BertForSequenceClassification,
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


def _shape(name: str) -> tuple[type, type, dict]:
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    return SHAPES[name]


def backbone_config(shape: str, num_labels: int = 2) -> PretrainedConfig:
    config_cls, _, kwargs = _shape(shape)
    return config_cls(**kwargs, num_labels=num_labels, attn_implementation="sdpa")


def max_input_positions(config: PretrainedConfig) -> int:
    """How many tokens the position table takes (RoBERTa reserves padding_idx + 1 rows)."""
    offset = config.pad_token_id + 1 if config.model_type == "roberta" else 0
    return config.max_position_embeddings - offset


def build_backbone(shape: str, device: str | torch.device = "cpu", seed: int = 0) -> PreTrainedModel:
    """A random-weight ``*ForSequenceClassification`` of ``shape`` on ``device`` (fp32 weights)."""
    _, model_cls, _ = _shape(shape)
    torch.manual_seed(seed)
    with torch.device(device):
        model = model_cls(backbone_config(shape))
    return model


def prompted_layers(method: str, config: PretrainedConfig) -> int:
    """How many layers carry a prompt in ``method`` (all, or the top half for ``*_top``)."""
    layers = config.num_hidden_layers
    return max(layers // 2, 1) if PTUNING_VARIANTS.get(method, {}).get("top") else layers


def disable_backbone_dropout(model: PreTrainedModel) -> int:
    """Set every ``nn.Dropout`` of ``model.base_model`` (embeddings, attention probabilities, hidden states) to
    p = 0; returns how many. The head's dropout is not touched. BERT/RoBERTa pass ``self.dropout.p`` to the
    attention function, so SDPA gets ``dropout_p=0``; ``F.dropout`` with p = 0 launches no kernel."""
    count = 0
    for module in model.base_model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
            count += 1
    return count


def compile_backbone(model: nn.Module, mode: str = "default", backend: str = "inductor") -> None:
    """``prompts.compiling.compile_backbone`` with ``dynamic=False`` (the bench's shapes are fixed).

    transformers' *ForSequenceClassification sets ``config.problem_type`` on its first call with labels: a guard
    on it would recompile the model at its second step, so it is set here first (the bench's labels are class
    indices).
    """
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "problem_type", "") is None and config.num_labels > 1:
        config.problem_type = "single_label_classification"
    compiling.compile_backbone(model, mode, backend, dynamic=False)


def build_method(
    method: str,
    backbone: PreTrainedModel,
    prompt_length: int = 0,
    reparam: str = "none",
    compile_backend: str = "inductor",
) -> tuple[nn.Module, list[nn.Parameter]]:
    """Wrap ``backbone`` for ``method``; returns ``(model, trainable parameters)``.

    Every returned model takes ``model(input_ids=..., labels=...)`` and returns an output with ``.loss``
    and ``.logits``. New parameters (prompts, adapters) are created on the backbone's device. The compiled
    variants compile ``model.model`` (the backbone, prompts arriving as its ``deep_prompts`` argument) with
    ``compile_backend``; the first call compiles.
    """
    device = next(backbone.parameters()).device
    if method in PTUNING_VARIANTS:
        speed = dict(PTUNING_VARIANTS[method])
        layers = f"top-{prompted_layers(method, backbone.config)}" if speed.pop("top", False) else "all"
        dropout, mode = speed.pop("dropout", True), speed.pop("compile", None)
        graphs = speed.pop("graphs", False)
        if not dropout:
            disable_backbone_dropout(backbone)
        config = DeepPromptConfig(length=prompt_length, reparam=reparam, layers=layers)
        model = add_deep_prompts(backbone, config, **speed).to(device)
        if mode is not None:
            compile_backbone(model.model, mode, compile_backend)
        if graphs:
            model.enable_cuda_graphs()
    elif method == "peft_prefix" or method in PEFT_COMPILED:
        from peft import PrefixTuningConfig, TaskType, get_peft_model

        model = get_peft_model(
            backbone, PrefixTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=prompt_length)
        )
        model.to(device)
        if method in PEFT_COMPILED:
            compile_backbone(peft_prefix_backbone(model), PEFT_COMPILED[method], compile_backend)
    elif method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=LORA_RANK,
            lora_alpha=16,
            lora_dropout=0.1,
            target_modules=list(LORA_TARGETS),
        )
        model = get_peft_model(backbone, config)
        model.to(device)
    elif method == "full_ft":
        model = backbone.requires_grad_(True)
    elif method in INFERENCE_ONLY:
        model = backbone.requires_grad_(False)
        if method == "bare_bf16":
            model.to(torch.bfloat16)
    else:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    return model, [p for p in model.parameters() if p.requires_grad]


def build_inference(
    method: str, backbone: PreTrainedModel, prompt_length: int = 0, reparam: str = "none"
) -> nn.Module:
    """``bare``/``bare_bf16`` or a ``ptuning_v2`` variant (MLP folded) in eval mode, for forward-only latency."""
    if method in INFERENCE_ONLY:
        model, _ = build_method(method, backbone)
    elif method in PTUNING_VARIANTS:
        model, _ = build_method(method, backbone, prompt_length, reparam)
        model.fold()
        model.to(next(backbone.parameters()).device)
    else:
        raise ValueError(
            f"inference latency is measured for bare and the ptuning_v2 variants, not {method!r}"
        )
    return model.eval().requires_grad_(False)
