"""What a case's forward does, recorded next to its times: SDPA calls and kernels, compiles and graph breaks."""

from __future__ import annotations

import contextlib
import warnings

import torch

from deepprompt.bench.inputs import autocast, make_inputs
from deepprompt.bench.models import Row, build_model
from deepprompt.bench.shapes import TINY_OF, backbone_config


def sdpa_probe(model, batch, args) -> dict[str, bool]:
    """CUDA only: can this model's forward run with SDPA restricted to flash / to memory-efficient attention?

    One forward per backend under ``sdpa_kernel``; a backend that cannot take the call (a materialised mask
    for flash, say) raises "No available kernel". Says which fused kernels the default dispatch can pick.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    result = {}
    for name, backend in (
        ("flash", SDPBackend.FLASH_ATTENTION),
        ("efficient", SDPBackend.EFFICIENT_ATTENTION),
    ):
        try:
            with warnings.catch_warnings(), torch.no_grad(), sdpa_kernel(backend), autocast(args):
                warnings.simplefilter("ignore")
                model(**batch)
            result[name] = True
        except RuntimeError:
            result[name] = False
    return result


@contextlib.contextmanager
def record_sdpa_calls():
    """Record every ``scaled_dot_product_attention`` call made inside (transformers looks it up at call time).

    Yields a list that fills with one dict per call: query/key dtype, key length, the mask (None or its shape and
    dtype), ``is_causal``, ``dropout_p``, and whether inference mode / autograd were on.
    """
    functional = torch.nn.functional
    original = functional.scaled_dot_product_attention
    calls: list[dict] = []

    def recording(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, *args, **kwargs):
        calls.append(
            {
                "dtype": str(query.dtype).removeprefix("torch."),
                "kv_dtype": str(key.dtype).removeprefix("torch."),
                "q_len": query.shape[-2],
                "kv_len": key.shape[-2],
                "mask": None if attn_mask is None else [list(attn_mask.shape), str(attn_mask.dtype)],
                "is_causal": bool(is_causal),
                "dropout_p": float(dropout_p),
                "inference_mode": torch.is_inference_mode_enabled(),
                "grad": torch.is_grad_enabled(),
            }
        )
        return original(query, key, value, attn_mask, dropout_p, is_causal, *args, **kwargs)

    functional.scaled_dot_product_attention = recording
    try:
        yield calls
    finally:
        functional.scaled_dot_product_attention = original


def attention_signature(step) -> dict:
    """What one call of an inference ``step`` hands to SDPA, summarised (recorded in every inference row).

    The bare and the prompted rows must agree on everything but the key length (T vs m + T): same dtype, same
    mask handling (None without padding), not causal, no dropout, inference mode. tests/bench checks it on CPU.
    """
    with record_sdpa_calls() as calls:
        step()
    if not calls:
        return {"sdpa_calls": 0}
    keys = ("dtype", "kv_dtype", "mask", "is_causal", "dropout_p", "inference_mode", "grad")
    first = calls[0]
    return {
        "sdpa_calls": len(calls),
        **{k: first[k] for k in keys},
        "uniform": all(all(c[k] == first[k] for k in keys) for c in calls),
        "q_len": first["q_len"],
        "kv_len": sorted({c["kv_len"] for c in calls}),
    }


def compile_counters() -> dict:
    """Dynamo's and inductor's counters now (graphs compiled, graph breaks by reason, CUDA-graph skips)."""
    from torch._dynamo.utils import counters

    return {
        "graph_breaks": dict(counters["graph_break"]),
        "unique_graphs": counters["stats"]["unique_graphs"],
        "cudagraph_skips": counters["inductor"]["cudagraph_skips"],
    }


def compile_diff(before: dict, after: dict) -> dict:
    """What one case's build added: graphs compiled, graph breaks (reason -> count), CUDA-graph skips."""
    breaks = {
        reason[:300]: n - before["graph_breaks"].get(reason, 0)
        for reason, n in after["graph_breaks"].items()
        if n > before["graph_breaks"].get(reason, 0)
    }
    return {
        "graphs": after["unique_graphs"] - before["unique_graphs"],
        "graph_breaks": sum(breaks.values()),
        "graph_break_reasons": breaks,
        "cudagraph_skips": after["cudagraph_skips"] - before["cudagraph_skips"],
    }


def explain_compiled(cases, args) -> dict:
    """``torch._dynamo.explain`` of each compiled P-Tuning v2 row's backbone forward (train mode, autocast, prompts
    as ``deep_prompts``) on the tiny shape of the same family: graph count, graph breaks and their reasons.

    Run before any case is compiled: explain resets dynamo, which would drop the resident models' graphs. The
    reasons do not depend on the size, and the real compiles' breaks are in each row's ``compile`` block too.
    """
    import torch._dynamo

    out: dict = {}
    for name, shape in dict.fromkeys((c.method, c.shape) for c in cases if Row.parse(c.method).compile_mode):
        row = Row.parse(name)
        if row.method != "ptuning_v2":  # prefix's compiled rows: their own compile block has the breaks
            continue
        tiny = TINY_OF.get(backbone_config(shape).model_type, "tiny")
        nodrop = "nodrop" in row.variants
        key = f"{tiny}:dropout={not nodrop}"
        if key in out:
            out[key]["methods"].append(name)
            continue
        try:
            plain = "ptuning_v2+bf16+nodrop" if nodrop else "ptuning_v2+bf16"
            model, _ = build_model(plain, tiny, 4, args.device, args.seed, args.reparam)
            encoder = model.encoder
            batch, _ = make_inputs(backbone_config(tiny), args, 8, batch=2)
            with autocast(args):
                prompts = encoder.prompts()
                result = torch._dynamo.explain(encoder.model)(**batch, deep_prompts=prompts)
            out[key] = {
                "methods": [name],
                "shape": tiny,
                "graphs": result.graph_count,
                "graph_breaks": result.graph_break_count,
                "break_reasons": [str(b.reason)[:300] for b in result.break_reasons],
                "ops": result.op_count,
            }
        except Exception as err:  # noqa: BLE001 - an explain failure is a finding, not a crash
            out[key] = {"methods": [name], "error": f"{type(err).__name__}: {str(err)[:300]}"}
    torch._dynamo.reset()
    return out
