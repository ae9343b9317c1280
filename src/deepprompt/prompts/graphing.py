"""CUDA graphs of the prompted backbone's training forward and backward, captured per batch shape without a
compiler (``method.cuda_graphs``; the speed switch for a run's first epoch, docs/performance.md).

torch.compile's CUDA graphs (``method.compile=reduce-overhead``) make a host-bound step 2-4x faster, but every new
process pays dynamo's tracing, inductor's code generation and one recording per shape first: 60-130 s measured,
as long as an SST-2 epoch. Here `torch.cuda.make_graphed_callables` records the eager kernels of one forward and
one backward per batch shape (three eager warm-up steps and two captures: 0.15-0.55 s a shape on an H200) and
replays them: the kernels are the eager ones (no fusion), the host's launch cost per kernel is gone.

What a replay needs, and how it is met:

- fixed shapes: one pair of graphs per (input names, shapes and dtypes, autocast dtype), at most ``max_shapes``;
  a batch past that runs eager (``data.pad_to_multiple_of`` keeps the shapes few);
- no host reads inside: the captures run under ``attention.static_masks()``, which always builds the key-padding
  mask instead of asking ``padding_mask.all()`` (a graph serves the padded and unpadded batches of its shape);
- autocast without its weight cache (make_graphed_callables refuses the cache): captured under
  ``torch.autocast(cache_enabled=False)`` with the caller's dtype (the frozen weights are bf16 already with
  ``frozen_dtype``, so the cache had nothing to save);
- one forward per backward: a replay overwrites the activations of the previous one, so a second training forward
  before the first one's backward runs eager (``pending``);
- gradients: a backward replay writes the prompts' gradients into static buffers, which autograd would adopt as
  ``.grad`` and the next replay would overwrite (wrong sums under gradient accumulation), so they reach the
  parameters through a copy (`_CopyGrad`).

Training only: eval-mode and no-grad forwards (validation, inference) run eager, as does a model off the GPU.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
from transformers.utils import ModelOutput

from deepprompt.prompts import attention


class _CopyGrad(torch.autograd.Function):
    """Identity forward on the same storage (the graph reads the parameter in place); the gradient is copied on its
    way back, so a parameter's ``.grad`` never aliases a graph's static buffer."""

    @staticmethod
    def forward(ctx, tensor):
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        return grad.clone()


class _Graphed(NamedTuple):
    run: Callable  # make_graphed_callables' function: (*inputs, *params) -> output tensors
    params: tuple[torch.nn.Parameter, ...]  # the trainable parameters, in the order the graph takes them
    output_type: type  # the backbone's ModelOutput class
    output_names: tuple[str, ...]  # its tensor fields, in the order the graph returns them


class ShapeGraphs:
    """Captures and replays ``forward`` (a `DeepPromptModel`'s eager forward) per batch shape.

    ``model``: the module whose trainable parameters get gradients and whose ``training`` flag decides whether a
    call is a training forward. Call it with the forward's keyword arguments; it returns the backbone's output, or
    None where the caller should run eager (eval, no grad, CPU, too many shapes, a pending backward).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        forward: Callable,
        max_shapes: int = 16,
        warmup: int = 3,
        device_type: str = "cuda",  # tests run the plumbing on "cpu" with a stand-in for the capture
    ):
        if max_shapes < 1:
            raise ValueError(f"max_shapes must be at least 1, got {max_shapes}")
        self.model = model
        self.device_type = device_type
        self.forward = forward
        self.max_shapes = max_shapes
        self.warmup = warmup
        self.graphs: dict[tuple, _Graphed] = {}
        self.pool = None  # one memory pool for every shape: forward/backward pairs never interleave (pending)
        self.pending = False
        self.captures = self.replays = self.eager_calls = 0  # counts since creation (clear() keeps them)
        self._warned: set[str] = set()

    # -- state -------------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Drop every graph (the weights moved or changed dtype: the graphs point at the old storage)."""
        self.graphs.clear()
        self.pool = None
        self.pending = False

    def counts(self) -> dict[str, int]:
        """Shape captures, replayed forwards and forwards that ran eager since creation (what a benchmark row
        reports: a row that never replayed measured the eager path, e.g. on the CPU)."""
        return {"captures": self.captures, "replays": self.replays, "eager_calls": self.eager_calls}

    def new_step(self) -> None:
        """A new training step: a forward whose backward never ran (a skipped loss) no longer blocks replays."""
        self.pending = False

    # -- calls -------------------------------------------------------------------------------------------
    def __call__(self, kwargs: dict) -> ModelOutput | None:
        if not (self.model.training and torch.is_grad_enabled()):
            return None
        inputs = {k: v for k, v in kwargs.items() if v is not None}
        device = self.device_type
        if not inputs or not all(
            isinstance(v, torch.Tensor) and v.device.type == device for v in inputs.values()
        ):
            return None
        if device == "cuda" and torch.cuda.is_current_stream_capturing():
            return None  # inside somebody else's capture
        if self.pending:
            self._warn(
                "pending",
                "cuda_graphs: a second training forward before the first one's backward runs eager (a replay "
                "would overwrite the first one's activations)",
            )
            self.eager_calls += 1
            return None
        names = tuple(sorted(inputs))
        tensors = tuple(inputs[k] for k in names)
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        key = (names, tuple((tuple(t.shape), t.dtype) for t in tensors), dtype)
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.graphs) >= self.max_shapes:
                self._warn(
                    "shapes",
                    f"cuda_graphs: more than {self.max_shapes} batch shapes; the others run eager (pad to a "
                    "multiple, data.pad_to_multiple_of, to keep the shapes few)",
                )
                self.eager_calls += 1
                return None
            entry = self.graphs[key] = self._capture(names, tensors, dtype)
            self.captures += 1
        outputs = entry.run(*tensors, *(_CopyGrad.apply(p) for p in entry.params))
        self.replays += 1
        self.pending = True
        for out in outputs:
            if out.requires_grad:
                out.register_hook(self._release)
        return entry.output_type(**dict(zip(entry.output_names, outputs, strict=True)))

    def _release(self, grad: torch.Tensor) -> None:
        self.pending = False  # the backward of the pending forward is running

    # -- capture -----------------------------------------------------------------------------------------
    def _capture(self, names: tuple[str, ...], tensors: tuple[torch.Tensor, ...], dtype: torch.dtype | None):
        params = tuple(p for p in self.model.parameters() if p.requires_grad)
        if not params:
            raise RuntimeError("cuda_graphs: nothing to train (no parameter requires grad)")
        forward = self.forward
        seen: dict = {}

        def step(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
            inputs = dict(zip(names, args[: len(names)], strict=True))  # the trailing args are `params`
            out = forward(**inputs)
            # a ModelOutput holds its non-None fields; a graph returns the tensors among them (not the tuples
            # of per-layer states, which nobody asks for in training)
            fields = [name for name, value in out.items() if isinstance(value, torch.Tensor)]
            seen.update(output_type=type(out), output_names=tuple(fields))
            return tuple(out[name] for name in fields)

        sample = tuple(t.clone() for t in tensors)  # the graph's static inputs; each replay copies a batch in
        device = self.device_type
        autocast = (
            torch.autocast(device, dtype=dtype, cache_enabled=False)
            if dtype is not None
            else torch.autocast(device, enabled=False)
        )
        shared = {}
        if "pool" in inspect.signature(torch.cuda.make_graphed_callables).parameters:  # torch >= 2.6
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            shared["pool"] = self.pool
        with autocast, attention.static_masks():
            graphed = torch.cuda.make_graphed_callables(
                step,
                (*sample, *params),
                num_warmup_iters=self.warmup,
                allow_unused_input=True,  # e.g. a prompt of a layer the detach hook cuts off: no gradient
                **shared,
            )
        return _Graphed(graphed, params, seen["output_type"], seen["output_names"])

    def _warn(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, stacklevel=3)
