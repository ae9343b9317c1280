"""Model FLOPs of one training step, and MFU.

Only matrix products are counted (the convention behind MFU); embedding lookups, layer norms, softmax, GELU,
dropout and the optimizer update are left out. A multiply-add is 2 FLOPs. Notation, per step:

- ``B`` sequences of ``T`` real tokens, ``m`` prompt tokens in ``L_p`` of the ``L`` layers (``m = 0`` for
  methods without prompts), hidden size ``h``, FFN width ``I``, ``C`` labels;
- ``N = L * (4 h^2 + 2 h I)``: the weights every token goes through (Q, K, V, output projections and the two
  FFN matrices; biases ignored). roberta-large: N = 302M (the "355M" usually quoted includes the 52M of
  embeddings, which cost no matrix FLOPs); bert-base: N = 85M;
- ``N_head = h^2 + h C``: the classification head (pooler/dense + classifier), applied once per sequence.

Forward:  ``F_dense = 2 N B T``;  ``F_attn = 2 * 2 * B * h * (L T^2 + L_p T m)`` (Q K^T and P V, each
``2 T (T + m) h`` per prompted layer and sequence);  ``F_head = 2 N_head B``.

Training step = forward + backward:

- backward through a *frozen* weight computes only the activation gradient (one product), through a
  *trained* weight also the weight gradient (two products), so dense matmuls cost ``4 N B T`` for frozen
  backbones (``ptuning_v2``, ``prefix``, ``lora``) and ``6 N B T`` for ``finetune``;
- attention has no weights but its backward needs dQ, dK, dV and dP (4 products against 2 forward), so every
  method pays ``3 F_attn``;
- the head always trains: ``6 N_head B``; LoRA adds ``6 N_lora B T`` with ``N_lora = L * 2 * r * 2h``
  (query and value adapters, trained); the prompt MLP reparameterization (if any) is a few GFLOPs a step and
  is ignored.

This is what the method *needs*, counted the usual way. When only the top ``L_b`` layers carry prompts
(``backward_layers``), nothing below them needs a gradient: the backward counts only those layers,
``dense = 2 N B T (1 + L_b / L)`` and attention backward ``2 * 4 B h (L_b T^2 + L_p T m)`` (the "no backward
below the lowest prompted layer" switch of docs/performance.md). A row's variants (``ptuning_v2+naive``,
``ptuning_v2+bf16`` ...) count as its method; ``prefix_mlp`` as ``prefix`` (its MLP is ignored, as above).

``MFU = train_step_flops / step_time / measured matmul rate`` (the rate from `timing.matmul_tflops`).
"""

from __future__ import annotations

from transformers import PretrainedConfig

FROZEN = frozenset({"ptuning_v2", "prefix", "lora"})
PROMPTED = frozenset({"ptuning_v2", "prefix"})


def dense_params(config: PretrainedConfig) -> int:
    """``N``: matmul weights each token passes through, ``L * (4 h^2 + 2 h I)``."""
    h, inter = config.hidden_size, config.intermediate_size
    return config.num_hidden_layers * (4 * h * h + 2 * h * inter)


def head_params(config: PretrainedConfig) -> int:
    """``N_head``: pooler (BERT) or dense (RoBERTa head) ``h^2`` plus classifier ``h C``."""
    h = config.hidden_size
    return h * h + h * config.num_labels


def lora_params(config: PretrainedConfig, rank: int = 8, targets: int = 2) -> int:
    """``N_lora``: per layer and adapted ``h x h`` projection, ``A (r x h)`` and ``B (h x r)``."""
    return config.num_hidden_layers * targets * rank * 2 * config.hidden_size


def attention_flops(
    config: PretrainedConfig, batch: int, seq: int, prompt: int = 0, prompted_layers: int | None = None
) -> int:
    """Forward attention products: ``4 B h (L T^2 + L_p T m)``."""
    layers = config.num_hidden_layers
    lp = layers if prompted_layers is None else prompted_layers
    return 4 * batch * config.hidden_size * (layers * seq * seq + lp * seq * prompt)


def base_method(row: str) -> str:
    """A row name's method, whose FLOPs it has: ``ptuning_v2+bf16`` -> ``ptuning_v2``, ``prefix_mlp`` ->
    ``prefix``; others unchanged."""
    method = row.split("+")[0]
    return "prefix" if method == "prefix_mlp" else method


def train_step_flops(
    config: PretrainedConfig,
    method: str,
    batch: int,
    seq: int,
    prompt: int = 0,
    prompted_layers: int | None = None,
    lora_rank: int = 8,
    backward_layers: int | None = None,
) -> int:
    """Model FLOPs of one training step of ``method`` (see the module docstring for the formula)."""
    method = base_method(method)
    if method not in FROZEN and method != "finetune":
        raise ValueError(f"no training FLOP model for method {method!r}")
    m = prompt if method in PROMPTED else 0
    tokens = batch * seq
    layers = config.num_hidden_layers
    if backward_layers is not None and method != "finetune" and backward_layers < layers:
        # forward everywhere, backward (activation gradients only) through the top backward_layers layers
        dense = 2 * dense_params(config) * tokens * (layers + backward_layers) // layers
        forward_attn = attention_flops(config, batch, seq, m, prompted_layers)
        h = config.hidden_size
        lp = layers if prompted_layers is None else prompted_layers
        attn = forward_attn + 2 * 4 * batch * h * (backward_layers * seq * seq + lp * seq * m)
        head = 6 * head_params(config) * batch
        lora = 6 * lora_params(config, lora_rank) * tokens if method == "lora" else 0
        return dense + attn + head + lora
    dense = (6 if method == "finetune" else 4) * dense_params(config) * tokens
    attn = 3 * attention_flops(config, batch, seq, m, prompted_layers)
    head = 6 * head_params(config) * batch
    lora = 6 * lora_params(config, lora_rank) * tokens if method == "lora" else 0
    return dense + attn + head + lora


def inference_flops(config: PretrainedConfig, batch: int, seq: int, prompt: int = 0) -> int:
    """Forward-only model FLOPs: ``2 N B T + F_attn + 2 N_head B``."""
    return (
        2 * dense_params(config) * batch * seq
        + attention_flops(config, batch, seq, prompt)
        + 2 * head_params(config) * batch
    )


def mfu(flops: float, seconds: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation in [0, 1]: achieved FLOP/s over the reference rate."""
    return flops / seconds / (peak_tflops * 1e12)
