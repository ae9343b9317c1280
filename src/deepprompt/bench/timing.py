"""Timing primitives: per-step wall time (CUDA events on GPU, perf_counter on CPU), peak memory, matmul rate."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def synchronize(device: str | torch.device) -> None:
    if is_cuda(device):
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], object], warmup: int, steps: int, device: str | torch.device) -> dict:
    """Run ``step`` ``warmup`` times untimed, then ``steps`` times timed; milliseconds per step.

    On CUDA each step is bracketed by CUDA events (one synchronize at the end, so the host keeps queueing
    work as in a real loop); on CPU by ``perf_counter``. Returns median (the headline), mean, min, max.
    """
    if steps <= 0:
        raise ValueError("steps must be positive")
    for _ in range(warmup):
        step()
    synchronize(device)
    if is_cuda(device):
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(steps)
        ]
        for start, end in events:
            start.record()
            step()
            end.record()
        torch.cuda.synchronize(device)
        times = [start.elapsed_time(end) for start, end in events]
    else:
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            synchronize(device)
            times.append((time.perf_counter() - t0) * 1e3)
    return {
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "steps": steps,
        "warmup": warmup,
    }


def reset_peak_memory(device: str | torch.device) -> None:
    if is_cuda(device):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: str | torch.device) -> float | None:
    """Peak allocated GPU memory since the last `reset_peak_memory` (None on CPU)."""
    if not is_cuda(device):
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}


def matmul_tflops(
    device: str | torch.device, dtype: str = "bf16", size: int | None = None, reps: int | None = None
) -> float:
    """Measured rate of a square ``size``-matrix product in ``dtype`` on ``device``, TFLOP/s.

    This is the practical peak the MFU is measured against (on an H100 SXM about 700-800 bf16 TFLOP/s,
    against a 989 datasheet figure). Default sizes: 8192 on CUDA, 256 on CPU.
    """
    cuda = is_cuda(device)
    size = size or (8192 if cuda else 256)
    reps = reps or (20 if cuda else 3)
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=_DTYPES[dtype], generator=gen)
    b = torch.randn(size, size, device=device, dtype=_DTYPES[dtype], generator=gen)
    timing = time_steps(lambda: torch.mm(a, b), warmup=3 if cuda else 1, steps=reps, device=device)
    return 2 * size**3 / (timing["median_ms"] / 1e3) / 1e12
