"""Latency of the server's forward, side by side in one process: bare backbone vs with prompts, eager vs CUDA
graphs, per batch size and sequence length.

    python -m deepprompt.serve.latency "prompts={sst2: runs/sst2, rte: runs/rte}" \\
        batches=[1,32] lengths=[128,256] iters=200 out=latency.json

The tasks load into one `TaskRegistry` on the backbone their runs were trained on (as ``deepprompt-serve``
does: bf16 on a GPU, each task's prefix keys/values cached). A batch of ``B`` rows of exactly ``T`` random tokens
(rows cycle over the tasks: a mixed-task batch) goes through the registry's forward, which pads to the shape
bucket, gathers the rows' prefixes, runs the backbone and cuts the output back. Four variants share the weights
and the inputs: ``bare`` (no prompts) or ``prompts``, each ``eager`` or ``graphs`` (replays of a graph captured
per bucket; on a CPU the graph rows are left out). Variants alternate in ``rounds`` so that a drift of the machine hits all.

Per call, on the host: the wall time from the call to the end of its work on the GPU (synchronized): p50/p99.
On the GPU: the CUDA-event time around the call (``event_ms``: for an eager call it includes the GPU waiting
for the host's launches), and the time of the forward's kernels alone (``kernel_ms``: torch.profiler's sum of
the kernel times of an eager call; the GPU time of the forward; ``top_kernels``: its largest kernels, to tell
where a difference between variants goes). ``max_diff``: the largest difference between
the graph and eager outputs of a shape. Prints a markdown table; writes rows and ratios to ``out``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

DEFAULTS = {
    "prompts": None,
    "batches": [1, 32],
    "lengths": [128, 256],
    "iters": 200,
    "warmup": 10,
    "rounds": 4,
    "profile": True,
    "device": "auto",
    "dtype": "auto",
    "seed": 0,
    "out": None,
}
VARIANTS = [("bare", "eager"), ("prompts", "eager"), ("bare", "graphs"), ("prompts", "graphs")]


def build_registry(cfg):
    """A `TaskRegistry` of ``cfg.prompts`` on the backbone their runs were trained on (the first run's)."""
    from deepprompt.predict import pick_device
    from deepprompt.runs.restore import load_run_config
    from deepprompt.serve.registry import TaskRegistry, find_run

    run, _ = find_run(Path(next(iter(cfg.prompts.values()))))
    device = pick_device(str(cfg.device))
    dtype = str(cfg.dtype)
    if dtype == "auto":
        dtype = "bfloat16" if device.type == "cuda" else "float32"
    registry = TaskRegistry(load_run_config(run).backbone, str(device), dtype, graphs=True)
    for name, path in cfg.prompts.items():
        registry.load(name, path)
    return registry


def make_batch(registry, rows: int, length: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    tokenizer = next(iter(registry.tasks.values())).runner.tokenizer
    g = torch.Generator().manual_seed(seed)
    vocab = registry.model.config.vocab_size
    batch = {
        "input_ids": torch.randint(1000 if vocab > 2000 else 3, vocab, (rows, length), generator=g),
        "attention_mask": torch.ones(rows, length, dtype=torch.long),
    }
    if "token_type_ids" in tokenizer.model_input_names:
        batch["token_type_ids"] = torch.zeros(rows, length, dtype=torch.long)
    task_ids = torch.arange(rows) % len(registry.tasks)
    return task_ids, {k: v.to(registry.device) for k, v in batch.items()}


def kernel_ms(call, n: int = 5, top: int = 10, device: str = "cuda") -> tuple[float | None, list[dict]]:
    """The summed kernel time of one ``call()`` (torch.profiler, mean of ``n``) and its ``top`` kernels by time
    (name, ms per call, launches per call); (None, []) where it cannot tell. ``device="cpu"``: the CPU ops' self
    time instead (tests)."""
    try:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        cuda = device == "cuda"
        activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
        with profile(activities=activities) as prof:
            for _ in range(n):
                call()
            if cuda:
                torch.cuda.synchronize()

        def self_us(e) -> float:
            if not cuda:
                return e.self_cpu_time_total
            return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)

        kind = DeviceType.CUDA if cuda else DeviceType.CPU
        kernels = [(e.key, self_us(e), e.count) for e in prof.key_averages() if e.device_type == kind]
        total = sum(t for _, t, _ in kernels)
        ranked = sorted(kernels, key=lambda k: -k[1])[:top]
        breakdown = [{"name": k[:120], "ms": t / n / 1000, "calls": c / n} for k, t, c in ranked]
        return (total / n / 1000 if total else None), breakdown
    except Exception as err:  # a profiler without CUPTI: the event times remain
        print(f"latency: no kernel times ({err})", file=sys.stderr)
        return None, []


def measure(cfg) -> dict[str, Any]:
    from deepprompt.serve.forward import BucketedForward

    registry = build_registry(cfg)
    cuda = registry.device.type == "cuda"
    graphed = registry.engine
    eager = BucketedForward(
        registry.model, registry.table, graphed.pad_to_multiple_of, pad_rows=True, graphs=False
    )
    eager.pad_id = graphed.pad_id
    engines = {"eager": eager, "graphs": graphed if graphed.graphs is not None else None}
    variants = [v for v in VARIANTS if engines[v[1]] is not None]
    rows = []
    for b in cfg.batches:
        for t in cfg.lengths:
            task_ids, batch = make_batch(registry, int(b), int(t), int(cfg.seed))
            calls = {  # the server's call: outputs read before the next call, not copied
                (p, g): partial(engines[g], task_ids if p == "prompts" else None, batch, copy_outputs=False)
                for p, g in variants
            }
            with torch.inference_mode():
                # captures the graphs; a copy: each call's outputs are valid until the next one (as in the server)
                outs = {v: calls[v]().last_hidden_state.float().clone() for v in variants}
                for call in calls.values():
                    for _ in range(int(cfg.warmup)):
                        call()
                walls = {v: [] for v in variants}
                events = {v: [] for v in variants}
                per_round = max(1, int(cfg.iters) // int(cfg.rounds))
                for _ in range(int(cfg.rounds)):
                    for v in variants:
                        for _ in range(per_round):
                            wall, event = timed(calls[v], cuda)
                            walls[v].append(wall)
                            if event is not None:
                                events[v].append(event)
                kernels, breakdowns = {}, {}
                if cuda and cfg.profile:
                    for p in ("bare", "prompts"):
                        kernels[p], breakdowns[p] = kernel_ms(calls[(p, "eager")])
            for p, g in variants:
                ms = np.array(walls[(p, g)])
                diff = None
                if g == "graphs":
                    diff = float((outs[(p, g)] - outs[(p, "eager")]).abs().max())
                rows.append(
                    {
                        "batch": int(b),
                        "length": int(t),
                        "prompts": p == "prompts",
                        "graphs": g == "graphs",
                        "p50_ms": float(np.percentile(ms, 50)),
                        "p99_ms": float(np.percentile(ms, 99)),
                        "mean_ms": float(ms.mean()),
                        "event_ms": float(np.median(events[(p, g)])) if events[(p, g)] else None,
                        "kernel_ms": kernels.get(p),
                        "top_kernels": breakdowns.get(p, []) if g == "eager" else [],
                        "max_diff": diff,
                        "calls": len(ms),
                    }
                )
    graphs = registry.engine.graphs
    return {
        "meta": {
            "device": torch.cuda.get_device_name(registry.device) if cuda else platform.processor() or "cpu",
            "dtype": str(registry.dtype).removeprefix("torch."),
            "backbone": registry.backbone_name,
            "shape": {  # layers, hidden size, heads, FFN: what the time depends on (random or trained weights)
                k: getattr(registry.model.config, k, None)
                for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")
            },
            "tasks": {n: t.prompt.length for n, t in registry.tasks.items()},
            "torch": torch.__version__,
            "graphs": None if graphs is None else graphs.counts(),
            "command": " ".join(sys.argv),
        },
        "rows": rows,
        "ratios": ratios(rows),
    }


def timed(call, cuda: bool) -> tuple[float, float | None]:
    if not cuda:
        start = time.perf_counter()
        call()
        return (time.perf_counter() - start) * 1000, None
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start = time.perf_counter()
    begin.record()
    call()
    end.record()
    end.synchronize()
    return (time.perf_counter() - start) * 1000, begin.elapsed_time(end)


def ratios(rows: list[dict]) -> list[dict]:
    """Per shape: graphs' p50 over the forward's kernel time, and with prompts over bare (eager and graphs)."""
    by = {(r["batch"], r["length"], r["prompts"], r["graphs"]): r for r in rows}
    out = []
    for b, t in sorted({(r["batch"], r["length"]) for r in rows}):
        entry: dict[str, Any] = {"batch": b, "length": t}
        for g, name in ((False, "eager"), (True, "graphs")):
            bare, prompted = by.get((b, t, False, g)), by.get((b, t, True, g))
            if bare and prompted:
                entry[f"prompts_over_bare_{name}"] = prompted["p50_ms"] / bare["p50_ms"]
        prompted, eager = by.get((b, t, True, True)), by.get((b, t, True, False))
        if prompted and eager:
            entry["graphs_speedup"] = eager["p50_ms"] / prompted["p50_ms"]
            if eager["kernel_ms"]:
                entry["graphs_p50_over_kernel_time"] = prompted["p50_ms"] / eager["kernel_ms"]
        out.append(entry)
    return out


def render(result: dict) -> str:
    head = (
        "| batch | T | prompts | graphs | p50 ms | p99 ms | event ms | kernel ms | max diff |\n"
        "|---:|---:|---|---|---:|---:|---:|---:|---:|"
    )

    def f(x, d=3):
        return "-" if x is None else f"{x:.{d}f}"

    lines = [head]
    for r in result["rows"]:
        lines.append(
            f"| {r['batch']} | {r['length']} | {'yes' if r['prompts'] else 'no'} | "
            f"{'yes' if r['graphs'] else 'no'} | {f(r['p50_ms'])} | {f(r['p99_ms'])} | {f(r['event_ms'])} | "
            f"{f(r['kernel_ms'])} | {f(r['max_diff'], 4)} |"
        )
    lines += [
        "",
        "| batch | T | prompts/bare eager | prompts/bare graphs | graphs speed-up | graphs p50 / kernel time |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["ratios"]:
        lines.append(
            f"| {r['batch']} | {r['length']} | {f(r.get('prompts_over_bare_eager'), 2)} | "
            f"{f(r.get('prompts_over_bare_graphs'), 2)} | {f(r.get('graphs_speedup'), 2)} | "
            f"{f(r.get('graphs_p50_over_kernel_time'), 2)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    cfg = OmegaConf.merge(
        OmegaConf.create(DEFAULTS), OmegaConf.from_dotlist(argv if argv is not None else sys.argv[1:])
    )
    if not cfg.prompts:
        raise SystemExit('latency: pass prompts="{<task>: <run folder>, ...}"')
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.manual_seed(int(cfg.seed))
    result = measure(cfg)
    shape = ", ".join(f"{k} {v}" for k, v in result["meta"]["shape"].items())
    print(f"{result['meta']['device']}, {result['meta']['dtype']}, {result['meta']['backbone']} ({shape})")
    print(render(result))
    if cfg.out:
        Path(cfg.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
