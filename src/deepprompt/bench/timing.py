"""Timing primitives: per-step times (CUDA events on GPU, perf_counter on CPU), interleaved rounds, peak memory,
matmul rate.

The protocol (docs/performance.md, "Timing protocol"): the GPU is warmed up once before the first case
(`gpu_warmup`, clocks and cuBLAS); each case runs its own warm-up steps when it is built; then the cases of a group
are timed in interleaved rounds (`interleave`: A B C, C B A, A B C ...), so a drift of the machine (clocks, another
process, the host) hits every case of the group alike instead of the few cases that happened to run at that moment.
Each step is bracketed by CUDA events; Python's garbage collector is off while steps are timed. Per case the
summary holds the median (the headline), the quartiles, p10/p90 and the IQR relative to the median (``iqr_rel``,
flagged ``noisy`` above `NOISY_IQR`).
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import torch

NOISY_IQR = 0.10  # a case whose (p75 - p25) / median exceeds this is flagged noisy


def is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def synchronize(device: str | torch.device) -> None:
    if is_cuda(device):
        torch.cuda.synchronize(device)


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of a non-empty sequence."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(times: Sequence[float], host: Sequence[float] | None = None) -> dict:
    """Median (the headline), mean, min, max, p10/p25/p75/p90, IQR and IQR/median of per-step milliseconds.

    ``host``: per-step host (CPU) milliseconds to enqueue the step, measured when each step starts on an idle
    GPU; where their median reaches 80 % of the step time the case is ``host_bound`` (the GPU waits for Python).
    """
    if not times:
        raise ValueError("no times to summarize")
    median = statistics.median(times)
    p25, p75 = quantile(times, 0.25), quantile(times, 0.75)
    out = {
        "median_ms": median,
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "p10_ms": quantile(times, 0.10),
        "p25_ms": p25,
        "p75_ms": p75,
        "p90_ms": quantile(times, 0.90),
        "iqr_ms": p75 - p25,
        "iqr_rel": (p75 - p25) / median if median > 0 else 0.0,
        "steps": len(times),
        "times_ms": [round(t, 4) for t in times],
    }
    out["noisy"] = out["iqr_rel"] > NOISY_IQR
    if host:
        out["host_ms"] = statistics.median(host)
        out["host_bound"] = out["host_ms"] >= 0.8 * median
    return out


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Collect once, then keep Python's garbage collector off (a gen-2 pass can take tens of ms mid-step)."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class StepTimer:
    """Times calls of one step function; their milliseconds accumulate in ``times`` (and ``host``).

    ``sync_each=False`` (training throughput): steps are queued back to back, each bracketed by CUDA events, one
    synchronize at the end of a run (the host keeps queueing work as in a real loop). ``sync_each=True``
    (inference latency): the GPU is idle when each step starts (synchronize before and after); the step time is
    still the CUDA-event time, and the host time to enqueue the step is recorded too. On CPU: ``perf_counter``.
    """

    def __init__(self, step: Callable[[], object], device: str | torch.device, sync_each: bool = False):
        self.step, self.device, self.sync_each = step, device, sync_each
        self.times: list[float] = []
        self.host: list[float] = []

    def warmup(self, n: int) -> None:
        for _ in range(n):
            self.step()
        synchronize(self.device)

    def run(self, n: int) -> None:
        if n <= 0:
            return
        if not is_cuda(self.device):
            for _ in range(n):
                t0 = time.perf_counter()
                self.step()
                self.times.append((time.perf_counter() - t0) * 1e3)
            return
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)
        ]
        torch.cuda.synchronize(self.device)
        for start, end in events:
            if self.sync_each:
                torch.cuda.synchronize(self.device)
            t0 = time.perf_counter()
            start.record()
            self.step()
            end.record()
            if self.sync_each:
                self.host.append((time.perf_counter() - t0) * 1e3)
        torch.cuda.synchronize(self.device)
        self.times += [start.elapsed_time(end) for start, end in events]

    def summary(self) -> dict:
        return summarize(self.times, self.host)


def round_orders(n: int, rounds: int) -> list[list[int]]:
    """Case orders of interleaved rounds: forward, backward, forward ... (A B C, C B A, ...): a linear drift
    costs every case the same on average, and no case always runs right after the same neighbour."""
    return [list(range(n)) if r % 2 == 0 else list(range(n - 1, -1, -1)) for r in range(rounds)]


def split_steps(steps: int, rounds: int) -> list[int]:
    """``steps`` timed steps split over ``rounds`` rounds as evenly as possible (every round at least one)."""
    rounds = max(1, min(rounds, steps))
    base, extra = divmod(steps, rounds)
    return [base + (1 if r < extra else 0) for r in range(rounds)]


def interleave(timers: Sequence[StepTimer], steps: int, rounds: int) -> list[dict | Exception]:
    """Time every timer for ``steps`` steps in ``rounds`` interleaved rounds; one summary per timer, or the
    exception its step raised (that timer leaves the rounds, the others go on)."""
    if steps <= 0:
        raise ValueError("steps must be positive")
    per_round = split_steps(steps, rounds)
    failed: dict[int, Exception] = {}
    with no_gc():
        for order, n in zip(round_orders(len(timers), len(per_round)), per_round, strict=True):
            for i in order:
                if i in failed:
                    continue
                try:
                    timers[i].run(n)
                except Exception as err:  # noqa: BLE001 - one failing case must not stop its group
                    failed[i] = err
    return [failed.get(i) or t.summary() for i, t in enumerate(timers)]


def time_steps(
    step: Callable[[], object],
    warmup: int,
    steps: int,
    device: str | torch.device,
    sync_each: bool = False,
) -> dict:
    """Run ``step`` ``warmup`` times untimed, then ``steps`` times timed (one case alone); milliseconds per step."""
    if steps <= 0:
        raise ValueError("steps must be positive")
    timer = StepTimer(step, device, sync_each)
    timer.warmup(warmup)
    with no_gc():
        timer.run(steps)
    return timer.summary() | {"warmup": warmup}


def gpu_warmup(device: str | torch.device, seconds: float) -> float:
    """Keep the GPU busy with bf16 matrix products for about ``seconds`` (clocks up, cuBLAS loaded) before the
    first case; returns the seconds spent. No-op on CPU or for ``seconds <= 0``."""
    if not is_cuda(device) or seconds <= 0:
        return 0.0
    start = time.perf_counter()
    a = torch.randn(4096, 4096, device=device, dtype=torch.bfloat16)
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            torch.mm(a, a)
        torch.cuda.synchronize(device)
    del a
    return time.perf_counter() - start


def reset_peak_memory(device: str | torch.device) -> None:
    if is_cuda(device):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def allocated_gib(device: str | torch.device) -> float:
    """Memory allocated now (0 on CPU): subtracted from a peak when other cases' models stay resident."""
    return torch.cuda.memory_allocated(device) / 2**30 if is_cuda(device) else 0.0


def peak_memory_gib(device: str | torch.device, baseline_gib: float = 0.0) -> float | None:
    """Peak allocated GPU memory since the last `reset_peak_memory`, less ``baseline_gib`` (None on CPU)."""
    if not is_cuda(device):
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30 - baseline_gib


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
