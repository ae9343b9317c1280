"""Where a training step's time goes: ``deepprompt-bench --profile``.

For each chosen case (already built, warmed up and timed in its group, so compiled variants are not compiled
again) three measurements are taken:

1. **host pass** (no profiler): ``--profile-steps`` steps, each started on an idle GPU (synchronize before and
   after): the host time to enqueue a step (``host_ms``) against its CUDA-event time (``idle_step_ms``).
2. **profiled pass**: ``--profile-steps`` steps back to back under ``torch.profiler`` (CPU + CUDA activities,
   no shapes, no stacks), then one synchronize. From the trace: GPU busy time per step (the union of kernel and
   memcpy/memset intervals), kernels and launch calls per step (``cudaLaunchKernel``/``cuLaunchKernel*``/
   ``cudaGraphLaunch``), time in the launch API, the GPU time by category (attention = SDPA kernels, GEMMs,
   inductor's fused triton kernels, layernorm, dropout, copies/casts, softmax/loss, optimizer, other elementwise,
   memcpy), the top kernels by GPU time, the top ops by self GPU and by self CPU time, and the casts
   (``aten::_to_copy``: calls, CPU time, GPU time of the kernels they launch).
3. **verdict**: ``gpu_busy_ms`` (kernel time, which the profiler does not inflate) against the case's
   unprofiled back-to-back median ``step_ms``: ``busy_frac`` near 1 means kernel-bound (the categories say
   which kernels); well below 1 means the GPU waits for the host (launch-bound: fewer, larger kernels,
   CUDA graphs). The profiled wall time is inflated by the profiler's own host overhead, so it is reported but
   not used for the verdict.

On CPU the CUDA fields are None / empty (the CPU-op tables still fill), so the test suite runs it on the tiny
shape. The summary is computed from plain records (`summarize`), tested with synthetic kernels.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from deepprompt.bench import timing

TOP = 15
NAME_CHARS = 160
# runtime/driver calls that launch work on the GPU
LAUNCH_CALLS = (
    "cudaLaunchKernel",
    "cudaLaunchKernelExC",
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cudaLaunchCooperativeKernel",
    "cudaGraphLaunch",
)
CAST_OPS = ("aten::_to_copy",)  # aten::to is a no-op unless it calls _to_copy; counting both would double

# (category, substrings of the lower-cased name), first match wins; used for kernels and for aten ops
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("memcpy", ("memcpy", "memset")),
    ("attention", ("flash", "fmha", "attention", "sdpa", "attn")),
    (
        "gemm",
        (
            "gemm",
            "nvjet",
            "xmma",
            "cublas",
            "cutlass",
            "splitk",
            "triton_tem",
            "aten::mm",
            "aten::addmm",
            "aten::bmm",
            "aten::linear",
            "aten::matmul",
            "aten::baddbmm",
        ),
    ),
    ("triton", ("triton",)),  # inductor's fused kernels (their names list the fused ops)
    ("layernorm", ("layer_norm", "layernorm", "gammabeta")),
    ("dropout", ("dropout", "bernoulli", "masked_scale")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("softmax_loss", ("softmax", "nll_loss", "cross_entropy")),
    ("copy_cast", ("copy_kernel", "_to_copy", "aten::copy_", "bfloat16_copy", "aten::to")),
    (
        "elementwise",
        (
            "elementwise",
            "vectorized",
            "unrolled",
            "reduce",
            "gelu",
            "catarray",
            "fill",
            "index",
            "embedding",
            "aten::",
        ),
    ),
)


def classify(name: str) -> str:
    """The category of a kernel or op name (see `CATEGORIES`), ``other`` if none matches."""
    lower = name.lower()
    for category, keys in CATEGORIES:
        if any(k in lower for k in keys):
            return category
    return "other"


def union_us(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length of the union of ``(start, end)`` intervals (overlapping kernels count once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


@dataclass
class Kernel:
    """One GPU activity: a kernel, memcpy or memset (microseconds from the trace start)."""

    name: str
    start_us: float
    dur_us: float


@dataclass
class Op:
    """One aggregated CPU-side event name (an aten op, a runtime call, a user range)."""

    name: str
    count: int
    self_cpu_us: float
    cpu_us: float
    self_gpu_us: float = 0.0
    gpu_us: float = 0.0


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 3] + "..."


def summarize(kernels: list[Kernel], ops: list[Op], steps: int, wall_ms: float, cuda: bool) -> dict:
    """The per-step breakdown of a profiled window of ``steps`` steps (see the module docstring)."""
    per = 1.0 / steps
    busy_us = union_us((k.start_us, k.start_us + k.dur_us) for k in kernels)
    kernel_us = sum(k.dur_us for k in kernels)
    launches = [o for o in ops if o.name in LAUNCH_CALLS]
    aten = [o for o in ops if o.name.startswith("aten::")]
    out: dict = {
        "steps": steps,
        "profiled_wall_ms": wall_ms / steps,
        "cpu_ops_per_step": sum(o.count for o in aten) * per,
        "cpu_aten_self_ms": sum(o.self_cpu_us for o in aten) * per / 1e3,
        "gpu_busy_ms": busy_us * per / 1e3 if cuda else None,
        "gpu_kernel_ms": kernel_us * per / 1e3 if cuda else None,
        "kernels_per_step": sum(1 for k in kernels if classify(k.name) != "memcpy") * per if cuda else None,
        "memcpy_per_step": sum(1 for k in kernels if classify(k.name) == "memcpy") * per if cuda else None,
        "launch_calls_per_step": sum(o.count for o in launches) * per if cuda else None,
        "launch_api_ms": sum(o.self_cpu_us for o in launches) * per / 1e3 if cuda else None,
        "profiled_busy_frac": (busy_us / 1e3) / wall_ms if cuda and wall_ms > 0 else None,
    }
    # GPU time by category (kernels), CPU self time by category (aten ops)
    categories: dict[str, dict] = {}
    by_cat_gpu: dict[str, list[Kernel]] = defaultdict(list)
    for k in kernels:
        by_cat_gpu[classify(k.name)].append(k)
    for cat, members in by_cat_gpu.items():
        gpu = sum(k.dur_us for k in members)
        categories[cat] = {
            "gpu_ms": gpu * per / 1e3,
            "gpu_share": gpu / kernel_us if kernel_us else None,
            "kernels_per_step": len(members) * per,
        }
    cpu_total = sum(o.self_cpu_us for o in aten)
    for o in aten:
        entry = categories.setdefault(classify(o.name), {"gpu_ms": None, "gpu_share": None})
        entry["cpu_self_ms"] = entry.get("cpu_self_ms", 0.0) + o.self_cpu_us * per / 1e3
        entry["ops_per_step"] = entry.get("ops_per_step", 0.0) + o.count * per
    for entry in categories.values():
        if "cpu_self_ms" in entry:
            entry["cpu_share"] = entry["cpu_self_ms"] * 1e3 / (cpu_total * per) if cpu_total else None
    out["categories"] = dict(
        sorted(categories.items(), key=lambda kv: (-(kv[1].get("gpu_ms") or 0), -kv[1].get("cpu_self_ms", 0)))
    )
    # top kernels by GPU time
    by_name: dict[str, list[float]] = defaultdict(list)
    for k in kernels:
        by_name[k.name].append(k.dur_us)
    out["top_kernels_gpu"] = [
        {
            "name": _short(name),
            "category": classify(name),
            "gpu_ms": sum(durs) * per / 1e3,
            "share": sum(durs) / kernel_us if kernel_us else None,
            "calls_per_step": len(durs) * per,
        }
        for name, durs in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:TOP]
    ]
    cpu_events = [o for o in ops if not o.name.startswith("deepprompt_")]
    by_self_gpu = sorted((o for o in cpu_events if o.self_gpu_us > 0), key=lambda o: -o.self_gpu_us)
    out["top_ops_gpu"] = (
        [  # the ops whose own kernels take the most GPU time (self: children not included)
            {
                "name": _short(o.name),
                "category": classify(o.name),
                "self_gpu_ms": o.self_gpu_us * per / 1e3,
                "gpu_ms": o.gpu_us * per / 1e3,
                "calls_per_step": o.count * per,
            }
            for o in by_self_gpu[:TOP]
        ]
        if cuda
        else []
    )
    out["top_ops_cpu"] = [
        {
            "name": _short(o.name),
            "category": classify(o.name),
            "self_cpu_ms": o.self_cpu_us * per / 1e3,
            "cpu_ms": o.cpu_us * per / 1e3,
            "calls_per_step": o.count * per,
        }
        for o in sorted(cpu_events, key=lambda o: -o.self_cpu_us)[:TOP]
    ]
    casts = [o for o in ops if o.name in CAST_OPS]
    cast_cpu = sum(o.cpu_us for o in casts)
    cast_gpu = sum(o.gpu_us for o in casts)
    out["casts"] = {
        "ops": list(CAST_OPS),
        "calls_per_step": sum(o.count for o in casts) * per,
        "cpu_ms": cast_cpu * per / 1e3,
        "cpu_share_of_aten": cast_cpu / cpu_total if cpu_total else None,
        "gpu_ms": cast_gpu * per / 1e3 if cuda else None,
        "gpu_share": cast_gpu / kernel_us if cuda and kernel_us else None,
    }
    return out


def verdict(
    busy_ms: float | None, step_ms: float | None, host_ms: float | None, idle_ms: float | None
) -> dict:
    """Kernel-bound or host-bound, from the unprofiled step time and the profiled GPU busy time."""
    out: dict = {"busy_frac": None, "gpu_idle_ms": None, "host_frac": None}
    if host_ms is not None and idle_ms:
        out["host_frac"] = host_ms / idle_ms
    if busy_ms is None or not step_ms:
        out["bound"] = "unknown (no GPU trace)"
        return out
    frac = busy_ms / step_ms
    out["busy_frac"], out["gpu_idle_ms"] = frac, max(step_ms - busy_ms, 0.0)
    if frac >= 0.9:
        out["bound"] = "kernel-bound: the GPU is busy; the categories say which kernels to shrink"
    elif frac >= 0.6:
        out["bound"] = f"mixed: the GPU idles {100 * (1 - frac):.0f} % of the step waiting for the host"
    else:
        out["bound"] = f"host-bound: the GPU idles {100 * (1 - frac):.0f} % of the step (launches, Python)"
    return out


def _ops_from(prof) -> list[Op]:
    ops = []
    for evt in prof.key_averages():
        device_type = getattr(evt, "device_type", None)
        if device_type is not None and device_type != torch.autograd.DeviceType.CPU:
            continue
        self_gpu = getattr(evt, "self_device_time_total", None)
        gpu = getattr(evt, "device_time_total", None)
        if self_gpu is None:
            self_gpu = getattr(evt, "self_cuda_time_total", 0.0)
            gpu = getattr(evt, "cuda_time_total", 0.0)
        ops.append(
            Op(
                evt.key,
                evt.count,
                float(evt.self_cpu_time_total),
                float(evt.cpu_time_total),
                float(self_gpu),
                float(gpu),
            )
        )
    return ops


def _kernels_from(prof) -> list[Kernel]:
    kernels = []
    for evt in prof.events():
        if getattr(evt, "device_type", None) != torch.autograd.DeviceType.CUDA:
            continue
        if not getattr(evt, "is_user_annotation", False):  # record_function ranges mirrored on the GPU
            start, end = evt.time_range.start, evt.time_range.end
            kernels.append(Kernel(evt.name, float(start), float(end - start)))
    return kernels


def profile_step(
    step: Callable[[], object], device, steps: int, step_ms: float | None = None, trace: str | None = None
) -> dict:
    """Host pass, profiled pass and verdict of one built case's ``step`` (see the module docstring)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    cuda = timing.is_cuda(device)
    host = timing.StepTimer(step, device, sync_each=True)
    with timing.no_gc():
        host.run(steps)
    idle_ms = statistics.median(host.times)
    host_ms = statistics.median(host.host) if host.host else idle_ms  # CPU: the step is all host
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    timing.synchronize(device)
    with timing.no_gc(), profile(activities=activities, record_shapes=False, with_stack=False) as prof:
        start = time.perf_counter()
        for i in range(steps):
            with record_function(f"deepprompt_step_{i}"):
                step()
        timing.synchronize(device)
        wall_ms = (time.perf_counter() - start) * 1e3
    out = {"host_ms": host_ms, "idle_step_ms": idle_ms, "step_ms": step_ms}
    out |= summarize(_kernels_from(prof), _ops_from(prof), steps, wall_ms, cuda)
    out["verdict"] = verdict(out["gpu_busy_ms"], step_ms, host_ms, idle_ms)
    if trace:
        with contextlib.suppress(Exception):  # a trace is a bonus; never fail the run for it
            prof.export_chrome_trace(trace)
            out["trace"] = trace
    return out


def _ms(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def format_profile(name: str, p: dict) -> str:
    """A compact text block of one profile (printed, and kept short enough to read in a log)."""
    if "error" in p:
        return f"## profile {name}: error {p['error']}"
    v = p.get("verdict", {})
    lines = [
        f"## profile {name}: {v.get('bound', '')}",
        f"#   step {_ms(p.get('step_ms'))} ms (back to back) | GPU busy {_ms(p.get('gpu_busy_ms'))} ms"
        f" (busy frac {_ms(v.get('busy_frac'))}) | host enqueue {_ms(p.get('host_ms'))} ms of"
        f" {_ms(p.get('idle_step_ms'))} ms from idle | profiled wall {_ms(p.get('profiled_wall_ms'))} ms",
        f"#   per step: {p.get('kernels_per_step')} kernels, {p.get('launch_calls_per_step')} launch calls"
        f" ({_ms(p.get('launch_api_ms'))} ms in the launch API), {p.get('cpu_ops_per_step'):.0f} aten ops"
        f" ({_ms(p.get('cpu_aten_self_ms'))} ms self CPU)",
    ]
    cats = ", ".join(
        f"{c} {_ms(e.get('gpu_ms'))}/{_ms(e.get('cpu_self_ms'))}" for c, e in p.get("categories", {}).items()
    )
    lines.append(f"#   by category, GPU ms / CPU self ms: {cats}")
    casts = p.get("casts", {})
    lines.append(
        f"#   casts (_to_copy): {casts.get('calls_per_step', 0):.0f}/step, CPU {_ms(casts.get('cpu_ms'))} ms,"
        f" GPU {_ms(casts.get('gpu_ms'))} ms"
    )
    for k in p.get("top_kernels_gpu", [])[:5]:
        lines.append(
            f"#   kernel {_ms(k['gpu_ms'])} ms x{k['calls_per_step']:.0f} [{k['category']}] {k['name'][:90]}"
        )
    for o in p.get("top_ops_cpu", [])[:5]:
        lines.append(
            f"#   cpu op {_ms(o['self_cpu_ms'])} ms self x{o['calls_per_step']:.0f} {o['name'][:60]}"
        )
    return "\n".join(lines)
