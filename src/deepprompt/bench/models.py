"""Benchmark rows: a training method of `deepprompt.methods`, with variants, on a classification head.

A row is named ``METHOD[+VARIANT...]``: ``ptuning_v2``, ``ptuning_v2+bf16``, ``ptuning_v2+bf16+compile``,
``prefix+reduce_overhead``. The method is built by the registry that training uses (``build_method``), with its
own config defaults; each variant is a set of that method's options (or of the backbone's config, as training's
``backbone.config_overrides``), so a row and a training run with the same options build the same encoder. On top
sits the head `ClassificationModule` uses: dropout and a linear layer on the pooler output.

Methods with a row here (`flops.py` counts their FLOPs): ``ptuning_v2``, ``prefix``, ``prefix_mlp`` (prompt length
``m`` from the grid), ``lora``, ``finetune`` (``m = 0``), and ``linear_probe``: the backbone and head with nothing
added, timed for inference only, the reference that a prompted inference row is compared with.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from deepprompt.bench import shapes
from deepprompt.config import HeadConfig, structured
from deepprompt.errors import ConfigError
from deepprompt.methods import MethodConfig, build_method, method_schema
from deepprompt.prompts import DeepPromptModel

# variant -> options: "method" (the method's config keys), "backbone" (backbone config overrides), "layers"
VARIANTS: dict[str, dict] = {
    # the engine's fast paths off (a (B, 1, T, m + T) mask in every layer, prompts recomputed per inference
    # batch, backward through the unprompted layers): the "before" row
    "naive": {"method": {"compact_mask": False, "cache_prompts": False, "detach_below": False}},
    "bf16": {"method": {"frozen_dtype": "bf16"}},  # frozen backbone weights in bf16 (bf16 runs only)
    # LoRA on a Llama-style decoder's query/value projections (the default names are BERT's)
    "qv_proj": {"method": {"target_modules": ["q_proj", "v_proj"]}},
    # prompts on the top half of the layers (prompt.layers: top-k, k = half the layers): no backward below them
    "top_half": {"layers": {"top_half": True}},
    # the backbone's hidden and attention dropout at p = 0 (SDPA gets dropout_p=0); the head keeps its own
    "nodrop": {"backbone": {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}},
    # torch.compile of the backbone, one graph per shape (the benchmark's shapes are fixed)
    "compile": {"method": {"compile": "default", "compile_dynamic": False}},
    # the same with inductor's CUDA graphs (one launch per compiled graph)
    "reduce_overhead": {"method": {"compile": "reduce-overhead", "compile_dynamic": False}},
    # CUDA graphs of the eager kernels, captured per batch shape without a compiler (CUDA only; eager elsewhere)
    "cuda_graphs": {"method": {"cuda_graphs": True}},
}
PROMPT_LENGTH = {"ptuning_v2": ("prompt", "length"), "prefix": ("num_virtual_tokens",)}
PROMPT_LENGTH["prefix_mlp"] = PROMPT_LENGTH["prefix"]
TRAINED = ("ptuning_v2", "prefix", "prefix_mlp", "lora", "finetune")
INFERENCE_ONLY = ("linear_probe",)
METHODS = (*TRAINED, *INFERENCE_ONLY)
REFERENCE = "linear_probe"  # the inference reference: the backbone and head alone


@dataclass(frozen=True)
class Row:
    """A parsed row name: its method and variants (each checked against the method's config schema)."""

    name: str
    method: str
    variants: tuple[str, ...]

    @classmethod
    def parse(cls, name: str) -> Row:
        """``METHOD[+VARIANT...]`` -> a `Row`; ``ValueError`` naming what is unknown (and what is known)."""
        return _parse(name)

    @classmethod
    def _parse(cls, name: str) -> Row:
        method, *variants = name.split("+")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r} in row {name!r}; known: {', '.join(METHODS)}")
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant {unknown[0]!r} in row {name!r}; known: {', '.join(VARIANTS)}")
        row = cls(name, method, tuple(variants))
        try:
            row.method_config(1)  # a variant the method has no option for fails here, with the key's name
        except ConfigError as err:
            raise ValueError(f"row {name!r}: {err}") from None
        return row

    def _options(self, key: str) -> dict:
        merged: dict = {}
        for variant in self.variants:
            merged |= VARIANTS[variant].get(key, {})
        return merged

    @property
    def backbone_overrides(self) -> dict:
        return self._options("backbone")

    @property
    def prompted(self) -> bool:
        """Whether the cost depends on the prompt length ``m`` (the grid's prompt lengths apply)."""
        return self.method in PROMPT_LENGTH

    @property
    def inference_only(self) -> bool:
        return self.method in INFERENCE_ONLY

    @property
    def infers(self) -> bool:
        """Whether the grid's inference prompt gives this row an inference case too (P-Tuning v2 rows)."""
        return self.method == "ptuning_v2"

    @property
    def bf16(self) -> bool:
        """Frozen weights in bf16: the row needs a bf16 (autocast) run."""
        return self._options("method").get("frozen_dtype") == "bf16"

    @property
    def compile_mode(self) -> str | None:
        """The torch.compile mode (None: eager)."""
        mode = self._options("method").get("compile", "none")
        return None if mode == "none" else mode

    @property
    def graphed(self) -> bool:
        return bool(self._options("method").get("cuda_graphs"))

    def method_config(
        self,
        prompt_length: int,
        num_layers: int = 2,
        reparam: str = "none",
        compile_backend: str = "inductor",
    ) -> MethodConfig:
        """The method's config: its defaults, this row's variants, the prompt length and the run's switches."""
        values: dict = {"name": self.method, **copy.deepcopy(self._options("method"))}
        if self.method in PROMPT_LENGTH:
            *parents, leaf = PROMPT_LENGTH[self.method]
            node = values
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = max(prompt_length, 1)
        if self.method == "ptuning_v2":
            values["prompt"]["reparam"] = reparam
            if self._options("layers").get("top_half"):
                values["prompt"]["layers"] = f"top-{max(num_layers // 2, 1)}"
        if "compile" in values:
            values["compile_backend"] = compile_backend
        return structured(method_schema(self.method), values, "method")


@functools.cache
def _parse(name: str) -> Row:  # every case, table and ratio asks: build each method config once
    return Row._parse(name)


def _linear(hidden: int, out: int) -> nn.Linear:
    """The task modules' head initialisation (`TaskModule.linear`): N(0, 0.02) weights, zero bias."""
    layer = nn.Linear(hidden, out)
    nn.init.normal_(layer.weight, std=0.02)
    nn.init.zeros_(layer.bias)
    return layer


class BenchClassifier(nn.Module):
    """``encoder`` (what the method built) with `ClassificationModule`'s head: dropout + linear on the pooler output
    (or, without a pooler, on the first real token). ``forward(input_ids, attention_mask=None, labels=None)``
    returns ``.logits`` (B, C) and, given labels, ``.loss`` (cross-entropy in fp32)."""

    def __init__(self, encoder: nn.Module, hidden: int, num_labels: int, head: HeadConfig | None = None):
        super().__init__()
        head = head or HeadConfig()
        self.encoder = encoder
        self.pooling = head.pooling
        self.dropout = nn.Dropout(head.dropout)
        self.classifier = _linear(hidden, num_labels)

    @property
    def backbone(self) -> nn.Module:
        """The module whose forward the method runs (the one a compiled row compiles)."""
        if isinstance(self.encoder, DeepPromptModel):
            return self.encoder.model
        return getattr(self.encoder, "backbone", self.encoder)

    @property
    def graphs(self):
        """The encoder's CUDA graphs (``method.cuda_graphs``), or None."""
        return getattr(self.encoder, "graphs", None)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        out = self.encoder(**{k: v for k, v in inputs.items() if v is not None})
        if self.pooling == "pooler" and getattr(out, "pooler_output", None) is not None:
            pooled = out.pooler_output
        else:  # after input prompts [CLS] sits past the virtual tokens
            states = out.last_hidden_state
            pooled = states[:, max(states.shape[1] - input_ids.shape[1], 0)]
        logits = self.classifier(self.dropout(pooled))  # (B, C)
        loss = None if labels is None else nn.functional.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def build_model(
    row: Row | str,
    shape: str,
    prompt_length: int = 0,
    device: str | torch.device = "cpu",
    seed: int = 0,
    reparam: str = "none",
    compile_backend: str = "inductor",
) -> tuple[BenchClassifier, list[nn.Parameter]]:
    """``row`` on a fresh random-weight ``shape`` backbone; returns ``(model, trainable parameters)``.

    New parameters (prompts, adapters, the head) are created on ``device``. A compiled row compiles on its first
    call. The model is in train mode, as `ClassificationModule` trains it.
    """
    row = Row.parse(row) if isinstance(row, str) else row
    if row.prompted and prompt_length <= 0:
        raise ValueError(f"{row.name} needs a prompt length > 0")
    backbone = shapes.build_backbone(shape, device, seed, row.backbone_overrides)
    config = backbone.config
    cfg = row.method_config(prompt_length, config.num_hidden_layers, reparam, compile_backend)
    with torch.device(device):
        encoder = build_method(backbone, cfg)
        model = BenchClassifier(encoder, config.hidden_size, config.num_labels).to(device)
    model.train()
    return model, [p for p in model.parameters() if p.requires_grad]


def prompted_layers(model: BenchClassifier) -> int | None:
    """How many layers carry a P-Tuning v2 prompt (None for the other methods)."""
    if isinstance(model.encoder, DeepPromptModel):
        return len(model.encoder.prompt_encoder.layer_ids)
    return None


def build_inference(
    row: Row | str, shape: str, prompt_length: int = 0, device="cpu", seed: int = 0, reparam: str = "none"
) -> BenchClassifier:
    """A row for forward-only latency, in eval mode without gradients: ``linear_probe`` rows and P-Tuning v2 rows
    (the reparameterization MLP folded away, as for inference)."""
    row = Row.parse(row) if isinstance(row, str) else row
    if not (row.inference_only or row.infers):
        raise ValueError(
            f"inference latency is measured for linear_probe and ptuning_v2 rows, not {row.name!r}"
        )
    model, _ = build_model(row, shape, prompt_length, device, seed, reparam)
    if isinstance(model.encoder, DeepPromptModel):
        model.encoder.fold()
        model.to(device)
    return model.eval().requires_grad_(False)


def disable_dropout(module: nn.Module) -> int:
    """Set every ``nn.Dropout`` inside ``module`` to p = 0; returns how many (tests compare paths without RNG)."""
    count = 0
    for child in module.modules():
        if isinstance(child, nn.Dropout):
            child.p = 0.0
            count += 1
    return count
