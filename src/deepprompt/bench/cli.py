"""``deepprompt-bench``: time training steps and inference of deep prompts against peft prefix, LoRA, full FT.

Timing protocol (docs/performance.md): the GPU is first kept busy for ``--gpu-warmup-s`` (clocks up); then the
cases run in groups (one group = one sub-grid's cases of one shape and T). Each case of a group is built on its
own fresh random-weight backbone (no download) and runs ``--warmup`` untimed steps (its peak memory is read then,
net of the models already resident); then the group's cases are timed in ``--rounds`` interleaved rounds
(A B C, C B A, ...), ``--steps`` timed steps per case in all, so drift hits every case of the group alike. Per
case the JSON holds every step time, the median (the headline), quartiles, p10/p90 and IQR/median (``noisy``
above 10 %, marked ``!`` in the table's IQR column).

A training step is forward + loss + backward + AdamW step (fused on CUDA) + zero_grad on random token ids (no
padding, so no attention mask unless ``--attention-mask``), queued back to back and timed with CUDA events;
``--dtype bf16`` runs under ``torch.autocast(bfloat16)`` with fp32 weights. Inference is one forward under
``torch.inference_mode`` (and the same autocast) for ``bare`` and for ``ptuning_v2`` with ``--infer-prompt``
tokens (MLP folded), each step started on an idle GPU (latency), with the same step function for every
inference row; the row records which SDPA calls the forward makes (``attention``: dtype, mask, causal flag, key
length) and whether the host could not keep up with the GPU (``host_bound``).

Methods without a prompt (``lora``, ``full_ft``, ``bare``) are measured once per (shape, T) and recorded with
``m = 0``. A case that fails (peft prefix with T + m beyond the position table, out of memory ...) becomes an
error row and the run goes on.

``--preset gpu-issue5`` runs issue 5's targets as several sub-grids in one process (one table, one JSON, with a
``targets`` block: speed-up over peft prefix, MFU, inference overhead, memory); ``--preset cpu-tiny`` is the
same machinery on the tiny shape (the test suite runs it). ``--pad F`` gives the batch rows lengths from T down
to T(1 - 2F) (F = mean padded fraction, with an attention mask) to show the masks' cost. ``deepprompt-bench
epoch ...`` times one real training epoch (`deepprompt.bench.epoch`). ``--profile`` (``--preset gpu-issue5-levers``)
profiles chosen cases after their group is timed (`deepprompt.bench.profile`: GPU busy vs step time, kernels and
launches per step, time by kernel category, top kernels/ops, casts).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from deepprompt.bench import flops as F
from deepprompt.bench import methods as M
from deepprompt.bench import profile as P
from deepprompt.bench import timing

COLUMNS = (
    "method",
    "shape",
    "T",
    "m",
    "train ms/step",
    "samples/s",
    "peak GiB",
    "MFU %",
    "inference ms",
    "x bare",
    "IQR %",
    "pad",
    "sdpa",
)


@dataclass(frozen=True)
class Case:
    method: str
    shape: str
    seq: int
    prompt: int
    mode: str  # "train" or "infer"
    pad: float = 0.0
    group: tuple = field(default=(), compare=False)  # cases of one group are timed in interleaved rounds

    @property
    def key(self) -> tuple[str, str, int, int, float]:
        return (self.method, self.shape, self.seq, self.prompt, self.pad)


@dataclass
class Grid:
    """One sub-grid: every method x shape x T (x m for prompted methods), one padding fraction."""

    shapes: list[str]
    seq: list[int]
    methods: list[str]
    prompt: list[int] = field(default_factory=lambda: [16, 64, 128])
    infer_prompt: int = 0  # prompt tokens of the ptuning_v2 variants' inference rows (0: none)
    pad: float = 0.0


_RL, _BB = "roberta-large", "bert-base"
_INFER = ["bare", "bare_bf16"]
_EAGER = ["ptuning_v2_bf16", "peft_prefix", "ptuning_v2_nodrop"]
_COMPILED = ["ptuning_v2_compile", "ptuning_v2_cudagraph"]
# The protocol of the short single-purpose GPU presets (levers, final, fair): 3 warm-up + 30 timed steps in 3
# interleaved rounds, no SDPA probe (it would recompile the compiled rows); each preset adds its budget.
_SHORT_GPU_CALL = {
    "batch": 32,
    "dtype": "bf16",
    "steps": 30,
    "rounds": 3,
    "warmup": 3,
    "gpu_warmup_s": 2.0,
    "no_probe": True,
}
PRESETS: dict[str, dict] = {
    # issue 5's targets on one GPU, most important first. Cases of one (shape, T, padding) form one group, timed
    # in interleaved rounds; 3 warm-up + 40 timed steps per case: ~150 s on an H100 (docs/performance.md has the
    # estimate from the first run's per-step times), guard: no new group after 240 s
    "gpu-issue5": {
        "defaults": {
            "batch": 32,
            "dtype": "bf16",
            "steps": 40,
            "rounds": 4,
            "warmup": 3,
            "gpu_warmup_s": 3.0,
            "budget_s": 240.0,
        },
        "grids": [
            Grid([_RL], [128, 256], ["ptuning_v2_bf16", "peft_prefix"], [16, 64, 128]),
            Grid([_RL], [128, 256], ["ptuning_v2_naive", "ptuning_v2"], [16, 64]),
            Grid([_RL], [128, 256], ["lora", "full_ft"]),
            Grid([_RL], [128, 256], [*_INFER, "ptuning_v2_naive", "ptuning_v2", "ptuning_v2_bf16"], [], 100),
            Grid([_RL], [256], ["ptuning_v2_bf16_top"], [64]),
            Grid(
                [_RL],
                [256],
                ["ptuning_v2_naive", "ptuning_v2", "ptuning_v2_bf16", "peft_prefix"],
                [64],
                pad=0.25,
            ),
            Grid([_BB], [128, 256], ["ptuning_v2_bf16", "peft_prefix"], [16, 64, 128]),
            Grid([_BB], [128], ["lora", "full_ft", *_INFER, "ptuning_v2_bf16"], [], 100),
            Grid([_BB], [256], ["lora", "full_ft", *_INFER]),
        ],
    },
    # issue 5's next levers in ONE short GPU call (docs/performance.md, "Next GPU call"): where the time goes
    # (profiles of ours and peft at T128 m16, and of the compiled row, which is already compiled by then), the
    # backbone's dropout, torch.compile and CUDA graphs, each timed in the same interleaved group as
    # ptuning_v2_bf16 and peft_prefix. Budget (H100, 16 host cores), compile time included:
    #   setup (2 s GPU warm-up, matmul rate, explain of the tiny RoBERTa)            ~ 8 s
    #   12 eager cases x (build ~1.5 s + 33 steps of 35-60 ms)                       ~ 40 s
    #   3 compiles of the whole roberta-large backbone, fwd + bwd (dynamic=False: one per shape and mode):
    #     T128 compile ~30-45 s cold, T128 cudagraph ~15-25 s (triton kernels cached), T256 compile ~25-35 s
    #                                                                                ~ 70-105 s
    #   3 profiles x (3 host + 3 profiled steps, trace parsing, .json.gz export)      ~ 12 s
    # ~ 130-165 s. Guard: the T256 group (~55 s) starts only before 75 s, so a slow compile drops T256, not the
    # call (worst case ~ 75 + 55 s). Every row records build_s (its compile) for budgeting the next plan.
    "gpu-issue5-levers": {
        "defaults": {
            **_SHORT_GPU_CALL,
            "budget_s": 75.0,
            "profile": True,
            "profile_steps": 3,
            "profile_cases": [
                "ptuning_v2_bf16:roberta-large:128:16",
                "peft_prefix:roberta-large:128:16",
                "ptuning_v2_compile:roberta-large:128:16",
            ],
            "explain": True,
        },
        "grids": [
            Grid([_RL], [128], _EAGER, [16, 64]),
            Grid([_RL], [128], _COMPILED, [16]),
            Grid([_RL], [256], _EAGER, [16, 64]),
            Grid([_RL], [256], ["ptuning_v2_compile"], [64]),
        ],
    },
    # issue 5's targets with the lever that paid in the levers call (CUDA graphs: 4.07x peft prefix at T128 m16):
    # T256 m16/m64 and T128 m64 against eager ours and peft prefix, and inference with a 100-token prompt
    # against the bare model (bf16 weights both, eager). Budget (H100): 3 compiles of roberta-large ~55 s each,
    # 9 eager cases ~25 s, 3 inference cases ~5 s, setup ~5 s: ~200 s; no new case after 230 s.
    "gpu-issue5-final": {
        "defaults": {
            **_SHORT_GPU_CALL,
            "budget_s": 230.0,
        },
        "grids": [
            Grid([_RL], [256], ["ptuning_v2_bf16", "peft_prefix", "ptuning_v2_cudagraph"], [16, 64]),
            Grid([_RL], [128], ["ptuning_v2_bf16", "peft_prefix", "ptuning_v2_cudagraph"], [64]),
            Grid([_RL], [128], ["bare_bf16", "ptuning_v2_bf16"], [], 100),
        ],
    },
    # the fair comparison: peft prefix with its backbone compiled the same way as ours (CUDA graphs; and
    # inductor alone at T128 m16), next to eager peft and ours with CUDA graphs. 5 compiles of roberta-large at
    # ~55 s each: ~300 s; no new case after 330 s. Every row gets the all-ones attention mask a collator passes:
    # compiled, peft's prefix needs it. Under dynamo before torch 2.14 transformers never skips the padding mask
    # (masking_utils._ignore_bidirectional_mask_sdpa), and the encoder's mask built without one has n key columns,
    # not m + n (peft widens only a mask it is given): H200 call of 2026-12-03, "Attempting to broadcast a
    # dimension of length 128 ... [32, 16, 128, 144]"; tests/bench/test_bench_profile.py reproduces it on CPU.
    "gpu-issue5-fair": {
        "defaults": {
            **_SHORT_GPU_CALL,
            "budget_s": 330.0,
            "attention_mask": True,
        },
        "grids": [
            # the two target shapes first; the plain-compile pair last (a call cut short loses the least)
            Grid([_RL], [128], ["peft_prefix", "peft_prefix_cudagraph", "ptuning_v2_cudagraph"], [16]),
            Grid([_RL], [256], ["peft_prefix", "peft_prefix_cudagraph", "ptuning_v2_cudagraph"], [64]),
            Grid([_RL], [128], ["peft_prefix_compile", "ptuning_v2_compile"], [16]),
        ],
    },
    # CUDA graphs without a compiler (method.cuda_graphs, prompts/graphing.py) at the two target shapes, next to
    # eager peft, eager ours and inductor's CUDA graphs (compile ~36 s per shape on an H200): ~150 s in all;
    # every row with the collator's all-ones mask, as in gpu-issue5-fair (a captured graph always builds its mask)
    "gpu-issue5-graphs": {
        "defaults": {
            **_SHORT_GPU_CALL,
            "budget_s": 200.0,
            "attention_mask": True,
        },
        "grids": [
            Grid(
                [_RL],
                [128],
                ["peft_prefix", "ptuning_v2_bf16", "ptuning_v2_graphs", "ptuning_v2_cudagraph"],
                [16],
            ),
            Grid(
                [_RL],
                [256],
                ["peft_prefix", "ptuning_v2_bf16", "ptuning_v2_graphs", "ptuning_v2_cudagraph"],
                [64],
            ),
        ],
    },
    # the same on the tiny RoBERTa, CPU, aot_eager instead of inductor (no C++/triton build): the test suite
    "cpu-tiny-levers": {
        "defaults": {
            "batch": 2,
            "dtype": "bf16",
            "steps": 2,
            "rounds": 2,
            "warmup": 1,
            "device": "cpu",
            "threads": 1,
            "compile_backend": "aot_eager",
            "profile": True,
            "profile_steps": 2,
            "profile_cases": ["ptuning_v2_bf16:tiny-roberta:8:4", "peft_prefix:tiny-roberta:8:4"],
            "explain": True,
        },
        "grids": [
            Grid(
                ["tiny-roberta"],
                [8],
                [
                    *_EAGER,
                    *_COMPILED,
                    "ptuning_v2_compile_nodrop",
                    "peft_prefix_compile",
                    "peft_prefix_cudagraph",
                ],
                [4],
            ),
        ],
    },
    # the same machinery on the tiny shape, CPU, seconds (the test suite runs it)
    "cpu-tiny": {
        "defaults": {
            "batch": 2,
            "dtype": "bf16",
            "steps": 2,
            "rounds": 2,
            "warmup": 1,
            "device": "cpu",
            "threads": 1,
        },
        "grids": [
            Grid(["tiny"], [8, 16], ["ptuning_v2_bf16", "peft_prefix"], [4]),
            Grid(["tiny"], [8], ["ptuning_v2_naive", "ptuning_v2", "lora", "full_ft"], [4]),
            Grid(["tiny"], [8], [*_INFER, "ptuning_v2_naive", "ptuning_v2", "ptuning_v2_bf16"], [], 6),
            Grid(["tiny"], [16], ["ptuning_v2_naive", "ptuning_v2"], [4], pad=0.25),
            Grid(["tiny"], [16], ["ptuning_v2_bf16_top", "ptuning_v2_graphs"], [4]),  # graphs: eager on CPU
        ],
    },
}


def _csv(kind):
    def parse(text: str):
        return [kind(x.strip()) for x in text.split(",") if x.strip()]

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deepprompt-bench",
        description="Benchmark P-Tuning v2 (deepprompt) against peft prefix tuning, LoRA and full fine-tuning.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--shapes",
        type=_csv(str),
        default=["bert-base", "roberta-large"],
        help=f"backbone shapes, comma-separated ({', '.join(M.SHAPES)})",
    )
    p.add_argument("--batch", type=int, default=32, help="sequences per step")
    p.add_argument("--seq", type=_csv(int), default=[128, 256], help="sequence lengths T")
    p.add_argument(
        "--prompt", type=_csv(int), default=[16, 64, 128], help="prompt lengths m (prompted methods)"
    )
    p.add_argument(
        "--methods", type=_csv(str), default=list(M.METHODS), help=f"methods ({', '.join(M.METHODS)})"
    )
    p.add_argument(
        "--dtype", choices=("bf16", "fp32"), default="bf16", help="bf16 = autocast over fp32 weights"
    )
    p.add_argument("--steps", type=int, default=50, help="timed steps per case (over all rounds)")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved rounds: a group's cases take turns, --steps/--rounds timed steps per turn",
    )
    p.add_argument("--warmup", type=int, default=10, help="untimed steps per case, when it is built")
    p.add_argument(
        "--gpu-warmup-s",
        type=float,
        default=3.0,
        help="seconds of bf16 matrix products before the first case (GPU clocks up; 0 = none)",
    )
    p.add_argument(
        "--group-size",
        type=int,
        default=32,
        help="most cases resident and interleaved at once (a larger (shape, T, pad) group is split)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="run a preset list of sub-grids (shapes/seq/prompt/methods come from it; explicit --batch, "
        "--steps, --rounds, --warmup, --gpu-warmup-s, --dtype, --device, --budget-s still apply)",
    )
    p.add_argument(
        "--pad",
        type=float,
        default=0.0,
        help="mean padded fraction per batch (rows from T down to T(1-2F), with an attention mask)",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="start no new group of cases after this many seconds (the rest become 'skipped' rows); 0 = no limit",
    )
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the SDPA kernel probe (CUDA: can the case's forward run on flash / efficient attention?)",
    )
    p.add_argument("--out", type=Path, default=Path("results.json"), help="JSON results file")
    p.add_argument(
        "--infer-prompt", type=int, default=100, help="prompt tokens for ptuning_v2 inference (0: skip)"
    )
    p.add_argument(
        "--reparam", choices=("none", "mlp"), default="none", help="ptuning_v2 prompt reparameterization"
    )
    p.add_argument(
        "--attention-mask", action="store_true", help="pass an all-ones attention mask (as a collator would)"
    )
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="reference rate for MFU instead of the measured matmul rate",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU intra-op threads (torch.set_num_threads); 1 avoids spin-wait collapse on a busy CPU",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile backend of the *_compile/*_cudagraph rows (aot_eager: CPU tests, no code generation)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="before the first group: torch._dynamo.explain of each compiled variant's backbone on the tiny shape "
        "of the same family (graph breaks, their reasons) into the JSON's 'explain' block",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after a group is timed, profile its --profile-cases (torch.profiler, CPU + CUDA): GPU busy vs step "
        "time, kernels and launches per step, time by kernel category, top kernels/ops, casts",
    )
    p.add_argument(
        "--profile-cases",
        type=_csv(str),
        default=[],
        help="METHOD:SHAPE:T:M[:PAD] cases to profile (train rows of this run); default: every train case",
    )
    p.add_argument("--profile-steps", type=int, default=5, help="steps per profiled pass (and per host pass)")
    p.add_argument(
        "--profile-trace",
        type=Path,
        default=None,
        help="folder for a chrome trace per profiled case (<case>.json.gz)",
    )
    return p


def case_id(case) -> str:
    """``METHOD:SHAPE:T:M`` (``:PAD`` when padded), the name ``--profile-cases`` takes."""
    base = f"{case.method}:{case.shape}:{case.seq}:{case.prompt}"
    return f"{base}:{case.pad:g}" if case.pad else base


def wants_profile(case, args) -> bool:
    if not getattr(args, "profile", False) or case.mode != "train":
        return False
    chosen = getattr(args, "profile_cases", None)
    return not chosen or case_id(case) in chosen


def grids(args) -> list[Grid]:
    if args.preset:
        return PRESETS[args.preset]["grids"]
    return [Grid(args.shapes, args.seq, args.methods, args.prompt, args.infer_prompt, args.pad)]


def plan_grid(grid: Grid, dtype: str) -> list[Case]:
    """The cases of one sub-grid, in order; bf16-weight variants only when ``dtype`` is bf16."""
    cases = []
    methods = [m for m in grid.methods if dtype == "bf16" or m not in M.BF16_ONLY]
    for shape in grid.shapes:
        for seq in grid.seq:
            for method in methods:
                if method in M.INFERENCE_ONLY:
                    cases.append(Case(method, shape, seq, 0, "infer", grid.pad))
                elif method in M.PROMPTED:
                    cases += [Case(method, shape, seq, m, "train", grid.pad) for m in grid.prompt]
                else:
                    cases.append(Case(method, shape, seq, 0, "train", grid.pad))
            if grid.infer_prompt > 0:
                cases += [
                    Case(method, shape, seq, grid.infer_prompt, "infer", grid.pad)
                    for method in methods
                    if method in M.PTUNING_VARIANTS and method not in M.LEVERS  # levers: training rows only
                ]
    return cases


def plan(args) -> list[Case]:
    """Every case once, in the order of the (sub-)grids; ``group`` = (shape, T, padding)."""
    cases, seen = [], set()
    for grid in grids(args):
        for case in plan_grid(grid, args.dtype):
            if (case.key, case.mode) not in seen:
                seen.add((case.key, case.mode))
                cases.append(replace(case, group=(case.shape, case.seq, case.pad)))
    return cases


def plan_groups(cases: list[Case], size: int = 32) -> list[list[Case]]:
    """The cases by group, groups in order of first appearance, each split into chunks of at most ``size``.

    A group's cases are resident together and timed in interleaved rounds (`timing.interleave`), so the
    comparisons that matter (ours vs peft, before/after, prompted vs bare inference) share the same moments.
    """
    by_group: dict[tuple, list[Case]] = {}
    for case in cases:
        by_group.setdefault(case.group, []).append(case)
    size = max(1, size)
    return [members[i : i + size] for members in by_group.values() for i in range(0, len(members), size)]


def _autocast(args):
    if args.dtype == "bf16":
        return torch.autocast(device_type=torch.device(args.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def padded_lengths(batch: int, seq: int, pad: float) -> list[int]:
    """Row lengths from ``seq`` down to ``seq (1 - 2 pad)``, evenly spaced: ``pad`` is the mean padded fraction."""
    if not 0.0 <= pad < 0.5:
        raise ValueError(f"--pad must be in [0, 0.5), got {pad}")
    shortest = max(1, round(seq * (1 - 2 * pad)))
    if batch == 1:
        return [seq]
    return [round(seq - (seq - shortest) * i / (batch - 1)) for i in range(batch)]


def _inputs(config, args, seq: int, pad: float = 0.0):
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    low = 3 if config.model_type == "roberta" else 1  # keep clear of special ids (RoBERTa pad = 1)
    ids = torch.randint(low, config.vocab_size, (args.batch, seq), generator=gen)
    labels = torch.randint(0, config.num_labels, (args.batch,), generator=gen).to(args.device)
    batch = {}
    if pad > 0:
        lengths = torch.tensor(padded_lengths(args.batch, seq, pad))
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
        ids = ids.masked_fill(mask == 0, config.pad_token_id or 0)
        batch["attention_mask"] = mask.to(args.device)
    elif args.attention_mask:
        batch["attention_mask"] = torch.ones_like(ids).to(args.device)
    batch["input_ids"] = ids.to(args.device)
    return batch, labels


def sdpa_probe(model, batch, args) -> dict[str, bool]:
    """CUDA only: can this model's forward run with SDPA restricted to flash / to memory-efficient attention?

    One forward per backend under ``sdpa_kernel``; a backend that cannot take the call (a materialised mask
    for flash, say) raises "No available kernel". Says which fused kernels the default dispatch can pick.
    """
    import warnings

    from torch.nn.attention import SDPBackend, sdpa_kernel

    result = {}
    for name, backend in (
        ("flash", SDPBackend.FLASH_ATTENTION),
        ("efficient", SDPBackend.EFFICIENT_ATTENTION),
    ):
        try:
            with warnings.catch_warnings(), torch.no_grad(), sdpa_kernel(backend), _autocast(args):
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


def infer_step(model, batch, args):
    """The inference step of every inference row (bare and prompted alike): eval-mode forward, inference mode,
    the run's autocast; returns the logits."""

    def step():
        with torch.inference_mode(), _autocast(args):
            return model(**batch).logits

    return step


@dataclass
class Built:
    """A case ready to time: its timer (which holds the model), and what was measured while building it."""

    case: Case
    timer: timing.StepTimer
    info: dict


def build_case(case: Case, args) -> Built:
    """Build one case on a fresh backbone, run its warm-up steps and read its peak memory; raises on failure.

    Peak memory is net of what was allocated before the build (the group's other models stay resident).
    """
    config = M.backbone_config(case.shape)
    if case.method in M.PROMPTED and case.prompt <= 0:
        raise ValueError(f"{case.method} needs a prompt length > 0")
    if case.seq > M.max_input_positions(config):
        raise ValueError(
            f"T={case.seq} exceeds the {M.max_input_positions(config)} positions of {case.shape}"
        )
    timing.reset_peak_memory(args.device)
    baseline = timing.allocated_gib(args.device)
    built_at = time.perf_counter()
    compiled = case.method in M.COMPILED
    before = compile_counters() if compiled else None
    backbone = M.build_backbone(case.shape, args.device, seed=args.seed)
    batch, labels = _inputs(config, args, case.seq, case.pad)
    info: dict = {}
    # a probe would recompile a compiled model, and run a graphed one's captured step
    probe = (
        timing.is_cuda(args.device) and not args.no_probe and not compiled and case.method not in M.GRAPHED
    )
    backend = getattr(args, "compile_backend", "inductor")
    if case.mode == "train":
        model, params = M.build_method(case.method, backbone, case.prompt, args.reparam, backend)
        model.train()
        cuda = timing.is_cuda(args.device)
        optimizer = torch.optim.AdamW(params, lr=args.lr, fused=True if cuda else None)
        graphs = M.compile_mode(case.method) == "reduce-overhead"

        def step():
            if graphs:  # a new iteration: the previous replay's outputs may be overwritten
                torch.compiler.cudagraph_mark_step_begin()
            with _autocast(args):
                loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        timer = timing.StepTimer(step, args.device, sync_each=False)
        timer.warmup(args.warmup)
        info["build_s"] = time.perf_counter() - built_at  # model, inputs and warm-up steps (compile included)
        if compiled:
            info["compile"] = compile_diff(before, compile_counters()) | {"backend": backend}
        if getattr(model, "graphs", None) is not None:
            info["cuda_graphs"] = model.graphs.counts()
        layers = M.prompted_layers(case.method, config) if case.method in M.PTUNING_VARIANTS else None
        info |= {
            "train_peak_gib": timing.peak_memory_gib(args.device, baseline),
            "train_flops": F.train_step_flops(
                config, case.method, args.batch, case.seq, case.prompt, layers, backward_layers=layers
            ),
            "trainable_params": sum(p.numel() for p in params),
        }
    else:
        model = M.build_inference(case.method, backbone, case.prompt, args.reparam)
        step = infer_step(model, batch, args)
        timer = timing.StepTimer(step, args.device, sync_each=True)
        timer.warmup(args.warmup)
        info["build_s"] = time.perf_counter() - built_at
        info |= {
            "infer_peak_gib": timing.peak_memory_gib(args.device, baseline),
            "infer_flops": F.inference_flops(config, args.batch, case.seq, case.prompt),
            "attention": attention_signature(step),
        }
    if probe:
        info["sdpa"] = sdpa_probe(model, batch, args)
    return Built(case, timer, info)


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


TINY_OF = {"roberta": "tiny-roberta", "bert": "tiny"}


def explain_compiled(cases: list[Case], args) -> dict:
    """``torch._dynamo.explain`` of each compiled variant's backbone forward (train mode, autocast, prompts as
    ``deep_prompts``) on the tiny shape of the same family: graph count, graph breaks and their reasons.

    Run before any case is compiled: explain resets dynamo, which would drop the resident models' graphs. The
    reasons do not depend on the size, and the real compiles' breaks are in each row's ``compile`` block too.
    """
    import torch._dynamo

    out: dict = {}
    for method, shape in dict.fromkeys((c.method, c.shape) for c in cases if c.method in M.COMPILED):
        if method not in M.PTUNING_VARIANTS:  # peft's compiled rows: their own compile block has the breaks
            continue
        tiny = TINY_OF.get(M.backbone_config(shape).model_type, "tiny")
        speed = M.PTUNING_VARIANTS[method]
        key = f"{tiny}:dropout={speed.get('dropout', True)}"
        if key in out:
            out[key]["methods"].append(method)
            continue
        try:
            backbone = M.build_backbone(tiny, args.device, seed=args.seed)
            plain = "ptuning_v2_bf16" if speed.get("dropout", True) else "ptuning_v2_nodrop"
            model, _ = M.build_method(plain, backbone, 4, args.reparam)
            model.train()
            batch, labels = _inputs(M.backbone_config(tiny), _Batch(args, 2), 8)
            with _autocast(args):
                prompts = model.prompts()
                result = torch._dynamo.explain(model.model)(**batch, labels=labels, deep_prompts=prompts)
            out[key] = {
                "methods": [method],
                "shape": tiny,
                "graphs": result.graph_count,
                "graph_breaks": result.graph_break_count,
                "break_reasons": [str(b.reason)[:300] for b in result.break_reasons],
                "ops": result.op_count,
            }
        except Exception as err:  # noqa: BLE001 - an explain failure is a finding, not a crash
            out[key] = {"methods": [method], "error": f"{type(err).__name__}: {str(err)[:300]}"}
    torch._dynamo.reset()
    return out


class _Batch:
    """``args`` with another batch size (for the explain inputs)."""

    def __init__(self, args, batch: int):
        self._args, self.batch = args, batch

    def __getattr__(self, name):
        return getattr(self._args, name)


def case_result(built: Built, summary: dict, args) -> dict:
    """The row fields of a timed case: median (headline) and the full summary."""
    out = dict(built.info)
    ms = summary["median_ms"]
    if built.case.mode == "train":
        out |= {
            "train_ms": ms,
            "train_timing": summary,
            "samples_per_s": args.batch / (ms / 1e3),
            "train_tflops_per_s": out["train_flops"] / (ms / 1e3) / 1e12,
        }
    else:
        out |= {"infer_ms": ms, "infer_timing": summary}
    return out


def run_group(cases: list[Case], args) -> dict[Case, dict | Exception]:
    """Build every case of a group, time them in interleaved rounds; a case's result or the error it raised."""
    results: dict[Case, dict | Exception] = {}
    built: list[Built] = []
    for case in cases:
        try:
            built.append(build_case(case, args))
        except Exception as err:  # noqa: BLE001 - any failure is an error row
            results[case] = err
            _cleanup(args.device)
    if built:
        try:
            summaries = timing.interleave([b.timer for b in built], args.steps, args.rounds)
        except Exception as err:  # noqa: BLE001
            for b in built:
                results[b.case] = err
        else:
            for b, summary in zip(built, summaries, strict=True):
                results[b.case] = summary if isinstance(summary, Exception) else case_result(b, summary, args)
            for b in built:
                result = results[b.case]
                if wants_profile(b.case, args) and isinstance(result, dict):
                    result["profile"] = profile_built(b, result, args)
    del built
    _cleanup(args.device)
    return results


def profile_built(b: Built, result: dict, args) -> dict:
    """`deepprompt.bench.profile` of a built, timed case; an error becomes ``{"error": ...}``."""
    trace = None
    if args.profile_trace:
        args.profile_trace.mkdir(parents=True, exist_ok=True)
        trace = str(args.profile_trace / f"{case_id(b.case).replace(':', '_')}.json.gz")
    try:
        out = P.profile_step(b.timer.step, args.device, args.profile_steps, result.get("train_ms"), trace)
    except Exception as err:  # noqa: BLE001 - a failed profile must not lose the timed row
        out = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
    print(P.format_profile(case_id(b.case), out), file=sys.stderr)
    return out


def run_case(case: Case, args) -> dict:
    """Measure one case alone (a group of one); raises on failure."""
    result = run_group([case], args)[case]
    if isinstance(result, Exception):
        raise result
    return result


def _cleanup(device) -> None:
    gc.collect()
    if timing.is_cuda(device):
        torch.cuda.empty_cache()


def environment(args, argv: list[str]) -> dict:
    import peft
    import transformers

    cuda = timing.is_cuda(args.device)
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["deepprompt-bench", *argv]),
        "device": args.device,
        "gpu": torch.cuda.get_device_name(args.device) if cuda else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _sdpa_cell(probe: dict | None) -> str:
    if not probe:
        return "—"
    return "+".join(name for name, ok in probe.items() if ok) or "math"


def iqr_cell(row: dict) -> str:
    """IQR / median of the row's timing in percent (train, else inference); ``!`` marks a noisy case, ``h`` a
    host-bound one."""
    timing_ = row.get("train_timing") or row.get("infer_timing")
    if not timing_ or "iqr_rel" not in timing_:
        return "—"
    marks = ("!" if timing_.get("noisy") else "") + ("h" if timing_.get("host_bound") else "")
    return f"{100 * timing_['iqr_rel']:.0f}{marks}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rows:
        head = [r["method"], r["shape"], str(r["T"]), str(r["m"])]
        pad = _fmt(r.get("pad") or None, ".2f")
        if r.get("error") or r.get("skipped"):
            text = f"error: {r['error'][:60]}" if r.get("error") else f"skipped: {r['skipped']}"
            cells = [*head, text, "", "", "", "", "", "", pad, ""]
        else:
            peak = r.get("train_peak_gib")
            peak_cell = _fmt(peak, ".2f")
            if peak is None and r.get("infer_peak_gib") is not None:
                peak_cell = f"{r['infer_peak_gib']:.2f} (inf)"
            mfu = r.get("mfu")
            cells = [
                *head,
                _fmt(r.get("train_ms"), ".1f"),
                _fmt(r.get("samples_per_s"), ".0f"),
                peak_cell,
                _fmt(None if mfu is None else 100 * mfu, ".1f"),
                _fmt(r.get("infer_ms"), ".1f"),
                _fmt(r.get("infer_vs_bare"), ".3f"),
                iqr_cell(r),
                pad,
                _sdpa_cell(r.get("sdpa")),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_SAME_ATTENTION = (
    "sdpa_calls",
    "dtype",
    "kv_dtype",
    "mask",
    "is_causal",
    "dropout_p",
    "inference_mode",
    "grad",
)


def same_attention(a: dict | None, b: dict | None) -> bool | None:
    """Do two inference rows' SDPA calls agree on everything but the key length? (None: not recorded)"""
    if not a or not b:
        return None
    return all(a.get(k) == b.get(k) for k in _SAME_ATTENTION) and a.get("q_len") == b.get("q_len")


def add_inference_ratios(rows: list[dict]) -> None:
    """``infer_vs_bare``: a prompted inference row over the bare row with the same weights, shape, T, padding;
    ``infer_like_for_like``: whether both made the same SDPA calls (dtype, mask, causal flag, inference mode)."""
    bare = {
        (r["method"], r["shape"], r["T"], r.get("pad", 0.0)): r
        for r in rows
        if r["method"] in M.INFERENCE_ONLY and r.get("infer_ms")
    }
    for r in rows:
        if r["method"] in M.PTUNING_VARIANTS and r.get("infer_ms"):
            reference = "bare_bf16" if r["method"] in M.BF16_ONLY else "bare"
            base = bare.get((reference, r["shape"], r["T"], r.get("pad", 0.0)))
            if base:
                r["infer_vs_bare"] = r["infer_ms"] / base["infer_ms"]
                r["infer_bare_method"] = reference
                r["infer_like_for_like"] = same_attention(r.get("attention"), base.get("attention"))


def _find(rows, method, shape, seq, m=None, pad=0.0, key="train_ms"):
    for r in rows:
        same = (r["method"], r["shape"], r["T"], r.get("pad", 0.0)) == (method, shape, seq, pad)
        if same and (m is None or r["m"] == m) and r.get(key) is not None:
            return r
    return None


def issue5_targets(rows: list[dict], shape: str = "roberta-large") -> dict:
    """Issue 5's targets, read off the rows (None where a row is missing): value, target, met."""
    out: dict = {}
    best = [m for m in ("ptuning_v2_bf16", "ptuning_v2") if _find(rows, m, shape, 128)]
    ours = best[0] if best else "ptuning_v2"
    out["ours"] = ours
    for seq, m in ((128, 16), (256, 64), (128, 64), (256, 16), (128, 128), (256, 128)):
        a, b = _find(rows, ours, shape, seq, m), _find(rows, "peft_prefix", shape, seq, m)
        if a and b:
            speedup = b["train_ms"] / a["train_ms"]
            entry = {"value": speedup, "target": ">= 1.5", "met": speedup >= 1.5}
            if a.get("train_peak_gib") is not None and b.get("train_peak_gib") is not None:
                entry["peak_gib"] = [a["train_peak_gib"], b["train_peak_gib"]]
                entry["memory_met"] = a["train_peak_gib"] <= b["train_peak_gib"]
            out[f"speedup_vs_peft_prefix_T{seq}_m{m}"] = entry
    mfus = [
        r["mfu"]
        for r in rows
        if r["method"] == ours and r["shape"] == shape and r["T"] == 256 and r.get("mfu") and not r.get("pad")
    ]
    if mfus:
        out["mfu_T256_best"] = {"value": max(mfus), "target": ">= 0.40", "met": max(mfus) >= 0.40}
    infer = _find(rows, ours, shape, 128, key="infer_vs_bare")
    if infer:
        ratio = infer["infer_vs_bare"]
        out["inference_vs_bare_T128"] = {
            "value": ratio,
            "m": infer["m"],
            "like_for_like": infer.get("infer_like_for_like"),
            "target": "<= 1.10",
            "met": ratio <= 1.10,
        }
    return out


def lever_speedups(rows: list[dict], shape: str) -> dict:
    """Every ``ptuning_v2*`` train row against ``peft_prefix`` and ``ptuning_v2_bf16`` at the same (T, m, pad):
    ``{method: {"T128_m16": {"vs_peft_prefix": x, "vs_ptuning_v2_bf16": y, "mfu": z, "build_s": s}}}``."""
    out: dict = {}
    for r in rows:
        lever = r["method"] in M.PTUNING_VARIANTS or r["method"] in M.PEFT_COMPILED
        if r["shape"] != shape or not lever or r.get("train_ms") is None:
            continue
        pad = r.get("pad", 0.0)
        entry = {"train_ms": r["train_ms"], "mfu": r.get("mfu"), "build_s": r.get("build_s")}
        for ref in ("peft_prefix", "ptuning_v2_bf16"):
            other = _find(rows, ref, shape, r["T"], r["m"], pad)
            entry[f"vs_{ref}"] = other["train_ms"] / r["train_ms"] if other else None
        label = f"T{r['T']}_m{r['m']}" + (f"_pad{pad:g}" if pad else "")
        out.setdefault(r["method"], {})[label] = entry
    return out


def _case_seconds_left(start: float, budget: float | None) -> bool:
    return not budget or time.perf_counter() - start < budget


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "epoch":  # deepprompt-bench epoch ...: one real training epoch
        from deepprompt.bench import epoch

        return epoch.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset:  # preset defaults, unless the option was given explicitly
        given = {a.split("=")[0] for a in argv if a.startswith("--")}
        for name, value in PRESETS[args.preset]["defaults"].items():
            if f"--{name.replace('_', '-')}" not in given:
                setattr(args, name, value)
    names = [m for g in grids(args) for m in g.methods]
    shapes = [s for g in grids(args) for s in g.shapes]
    unknown = [m for m in names if m not in M.METHODS] + [s for s in shapes if s not in M.SHAPES]
    if unknown:
        print(f"deepprompt-bench: unknown method/shape {unknown}", file=sys.stderr)
        return 2
    if timing.is_cuda(args.device) and not torch.cuda.is_available():
        print("deepprompt-bench: --device cuda but no GPU is visible (use --device cpu)", file=sys.stderr)
        return 2

    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment(args, argv)
    env["gpu_warmup_s"] = timing.gpu_warmup(args.device, args.gpu_warmup_s)
    env["matmul_tflops"] = {"bf16": timing.matmul_tflops(args.device, "bf16")}
    if args.dtype != "bf16":
        env["matmul_tflops"][args.dtype] = timing.matmul_tflops(args.device, args.dtype)
    reference = args.peak_tflops or env["matmul_tflops"][args.dtype]
    env["mfu_reference_tflops"] = reference
    env["protocol"] = {
        "warmup_steps_per_case": args.warmup,
        "timed_steps_per_case": args.steps,
        "rounds": args.rounds,
        "round_order": "alternating (A B C, C B A, ...)",
        "grouping": "(shape, T, pad)",
        "train": "CUDA events per step, steps queued back to back",
        "infer": "CUDA events per step, GPU idle at each step's start (synchronize before and after)",
        "gc": "disabled while timing",
        "noisy_iqr_rel": timing.NOISY_IQR,
    }
    print(
        f"# {env['gpu'] or env['cpu']}: {args.dtype} matmul {env['matmul_tflops'][args.dtype]:.4g} TFLOP/s",
        file=sys.stderr,
    )

    cases = plan(args)
    if args.explain and any(c.method in M.COMPILED for c in cases):
        explain_started = time.perf_counter()
        env["explain"] = explain_compiled(cases, args)
        env["explain_s"] = time.perf_counter() - explain_started
        for key, value in env["explain"].items():
            print(f"# explain {key}: {value}", file=sys.stderr)
    rows: dict[tuple, dict] = {
        case.key: {
            "method": case.method,
            "shape": case.shape,
            "T": case.seq,
            "m": case.prompt,
            "pad": case.pad,
            "batch": args.batch,
            "dtype": args.dtype,
        }
        for case in cases
    }
    for group in plan_groups(cases, args.group_size):
        if not _case_seconds_left(started, args.budget_s):
            for case in group:
                rows[case.key]["skipped"] = f"budget {args.budget_s:g} s"
            continue
        for case, result in run_group(group, args).items():
            row = rows[case.key]
            if isinstance(result, Exception):
                message = f"{type(result).__name__}: {str(result).splitlines()[0] if str(result) else ''}"[
                    :300
                ]
                row["error"] = (row["error"] + "; " if row.get("error") else "") + f"{case.mode}: {message}"
                print(f"# {case.mode} {case.key}: FAILED {message}", file=sys.stderr)
                continue
            row.update(result)
            if "train_flops" in result:
                row["mfu"] = F.mfu(result["train_flops"], result["train_ms"] / 1e3, reference)
            t = result.get("train_timing") or result["infer_timing"]
            flags = " NOISY" if t["noisy"] else ""
            flags += " host-bound" if t.get("host_bound") else ""
            print(
                f"# {case.mode} {case.key}: median {t['median_ms']:.2f} ms, IQR {t['p25_ms']:.2f}-{t['p75_ms']:.2f}"
                f" ({100 * t['iqr_rel']:.0f} %), p10-p90 {t['p10_ms']:.2f}-{t['p90_ms']:.2f}{flags}",
                file=sys.stderr,
            )
        write_payload(args, env, list(rows.values()), started, final=False)  # a timeout still leaves results

    payload = write_payload(args, env, list(rows.values()), started, final=True)
    for name, prof in payload["profiles"].items():
        print(P.format_profile(name, prof))
    print(payload["table"])
    for shape, values in payload["targets"].items():
        for method, cells in values.get("levers", {}).items():
            for label, e in cells.items():
                ratios = ", ".join(
                    f"{k} {e[k]:.3f}x"
                    for k in ("vs_peft_prefix", "vs_ptuning_v2_bf16")
                    if e.get(k) is not None
                )
                build = f", build {e['build_s']:.1f} s" if e.get("build_s") is not None else ""
                print(f"# lever {shape} {method} {label}: {e['train_ms']:.2f} ms, {ratios}{build}")
        for name, value in values.items():
            if isinstance(value, dict) and "value" in value:
                print(
                    f"# target {shape} {name}: {value['value']:.3f} ({value['target']}, met={value['met']})"
                )
    print(f"# wrote {args.out} ({env['wall_s']:.0f} s)", file=sys.stderr)
    return 0


def write_payload(args, env: dict, rows: list[dict], started: float, final: bool) -> dict:
    """Ratios, table and targets of the rows so far, written to ``--out`` (after every group, and at the end)."""
    add_inference_ratios(rows)
    table = markdown_table(rows)
    targets = {shape: issue5_targets(rows, shape) for shape in dict.fromkeys(r["shape"] for r in rows)}
    for shape, block in targets.items():
        levers = lever_speedups(rows, shape)
        if levers:
            block["levers"] = levers
    env["wall_s"] = time.perf_counter() - started
    payload = {
        "environment": env,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "complete": final,
        "rows": rows,
        "targets": targets,
        "noisy": [
            [r["method"], r["shape"], r["T"], r["m"], r.get("pad", 0.0)]
            for r in rows
            if (r.get("train_timing") or r.get("infer_timing") or {}).get("noisy")
        ],
        "table": table,
        "profiles": {
            f"{r['method']}:{r['shape']}:{r['T']}:{r['m']}" + (f":{r['pad']:g}" if r.get("pad") else ""): r[
                "profile"
            ]
            for r in rows
            if r.get("profile")
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    return payload


if __name__ == "__main__":
    raise SystemExit(main())
