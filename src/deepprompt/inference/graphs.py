"""CUDA graphs of an inference forward, captured once per input shape and replayed (``deepprompt-serve graphs``).

An eval forward of a small model at a small batch is bound by kernel launches: the GPU finishes each kernel
before the host has issued the next. A CUDA graph records the forward's kernels once and replays them with
one launch. `ShapeGraphs` in ``prompts/graphing.py`` does this for training (a forward and its backward,
through ``make_graphed_callables``); here there is no backward, so a plain `torch.cuda.CUDAGraph` per shape
suffices, with what a replay needs:

- fixed shapes: one graph per signature of the fed inputs (names, shapes, dtypes); the caller pads its batches to
  a few buckets (`serve/forward.py`), and past ``max_shapes`` signatures a call runs eager;
- static inputs: the capture reads preallocated buffers; a call copies its tensors into them (from the host too:
  an asynchronous copy, no wait for the GPU), then replays;
- no host reads inside: captured under ``attention.static_masks()`` (the padding mask is always built, never
  skipped after asking ``mask.all()``), so one graph serves the padded and the unpadded batches of its shape;
- static outputs: every replay overwrites the same output tensors, so the caller copies out what it keeps
  before the next call (the graphs share one memory pool and never run concurrently);
- tensors the forward reads but the call does not copy in (``bound``: the cached prompt keys/values) are
  passed at capture and read from their storage at every replay: their owner updates them in place, or calls
  `clear()` when it reallocates them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from deepprompt.prompts import attention

Outputs = tuple[torch.Tensor, ...]


class Capture(Protocol):
    def __call__(
        self, fn: Callable[..., Outputs], inputs: dict[str, torch.Tensor], warmup: int, pool
    ) -> tuple[Callable[[], None], Outputs]: ...


def cuda_capture(
    fn, inputs: dict[str, torch.Tensor], warmup: int, pool
) -> tuple[Callable[[], None], Outputs]:
    """``fn(**inputs)`` recorded into a `torch.cuda.CUDAGraph` (after ``warmup`` eager calls on a side stream,
    as torch's own capture recipe does); returns the graph's replay and its static outputs."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn(**inputs)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    # thread_local: the server's other threads (HTTP, a task loading) may use CUDA while the batcher captures
    with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
        outputs = fn(**inputs)
    return graph.replay, outputs


class InferenceGraphs:
    """``fn(**inputs, **bound) -> tuple of tensors`` captured per input signature, at first use, and replayed.

    ``graphs(inputs, bound)`` returns the static outputs of a replay (valid until the next call), or None where the
    caller runs eager (more than ``max_shapes`` signatures). ``capture`` stands in for `cuda_capture` in the CPU
    tests (same contract: static inputs read at replay, static outputs overwritten by it). ``device``: where the
    static inputs live; a call's tensors on another device (the host) are copied in without a wait.
    """

    def __init__(
        self,
        fn: Callable[..., Outputs],
        max_shapes: int = 128,
        warmup: int = 2,
        capture: Capture | None = None,
        device: torch.device | None = None,
    ):
        if max_shapes < 1:
            raise ValueError(f"max_shapes must be at least 1, got {max_shapes}")
        self.fn = fn
        self.max_shapes = max_shapes
        self.warmup = warmup
        self.capture = capture or cuda_capture
        self.device = device  # where the static inputs live (None: where the first call's tensors are)
        self.graphs: dict[tuple, tuple[dict[str, torch.Tensor], Callable[[], None], Outputs]] = {}
        self.pool = None
        self.captures = self.replays = self.eager_calls = 0

    def clear(self) -> None:
        """Drop every graph (a tensor they read was reallocated, or the weights moved)."""
        self.graphs.clear()
        self.pool = None

    def counts(self) -> dict[str, int]:
        return {
            "shapes": len(self.graphs),
            "captures": self.captures,
            "replays": self.replays,
            "eager_calls": self.eager_calls,
        }

    def __call__(
        self, inputs: dict[str, torch.Tensor], bound: dict[str, torch.Tensor] | None = None
    ) -> Outputs | None:
        """Copy ``inputs`` into the static buffers of their signature's graph (captured now if new) and replay;
        ``bound`` tensors are only passed at capture (the graph keeps reading their storage)."""
        key = tuple((name, tuple(t.shape), t.dtype) for name, t in sorted(inputs.items()))
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.graphs) >= self.max_shapes:
                self.eager_calls += 1
                return None
            entry = self.graphs[key] = self._capture(inputs, bound or {})
            self.captures += 1
        static, replay, outputs = entry
        for name, tensor in inputs.items():
            static[name].copy_(tensor, non_blocking=True)
        replay()
        self.replays += 1
        return outputs

    def _capture(self, inputs: dict[str, torch.Tensor], bound: dict[str, torch.Tensor]):
        device = self.device
        static = {name: t.detach().to(device or t.device, copy=True) for name, t in inputs.items()}
        if self.pool is None and self.capture is cuda_capture:
            self.pool = torch.cuda.graph_pool_handle()  # one pool: the graphs never run at the same time
        with torch.no_grad(), attention.static_masks():
            replay, outputs = self.capture(self.fn, {**static, **bound}, self.warmup, self.pool)
        return static, replay, outputs
