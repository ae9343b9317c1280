"""The server's backbone call: every task's cached prefix keys/values, batches padded to shape buckets, and
(on a GPU) one captured CUDA graph per bucket.

`PrefixTable` stacks each served task's prompt keys/values, computed once when the task is loaded (the
reparameterization MLP folded away, `CachedPrompts`), into one tensor ``(layers, 2, capacity, m, kv_heads,
head_dim)``; a batch gathers its rows' prefixes from it with one ``index_select`` (tasks of different prompt
lengths or layers are zero-padded to the longest, with a per-row visibility mask, as `MultiTaskDeepPromptModel`
does). That layout makes each layer's gathered prefix contiguous in the projection's (B, m, H, d) layout, the one
`prompts.attention.with_prefix` concatenates in, so the prompted layers copy nothing but the concatenation. The
gather is part of the captured forward: a replay reads the table's storage, so a task added or removed is updated
in place, and the graphs are dropped only when the table has to grow or change its layout.

`BucketedForward` pads a batch to its bucket (rows to a power of two, by repeating the last row; lengths to a
multiple of ``pad_to_multiple_of``, with padding tokens the attention mask hides), runs it (a graph replay, a
compiled or an eager forward) and cuts the outputs back: padding changes no row's output. `BucketedForward.warm`
runs every bucket once before serving (a graph's capture, or an eager forward's first use of its shape) and times
it, for the split planner (`serve.planning`).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from deepprompt.inference.graphs import Capture, InferenceGraphs
from deepprompt.serve.planning import plan_chunks

LayerPrompts = dict[int, tuple[torch.Tensor, torch.Tensor]]


def bucket(size: int, multiple: int | None, cap: int | None = None) -> int:
    """``size`` rounded up to a multiple of ``multiple`` (no more than ``cap``, no less than ``size``)."""
    if not multiple:
        return size
    up = -(-size // multiple) * multiple
    return max(size, min(up, cap)) if cap else up


def row_bucket(rows: int) -> int:
    """The power of two at or above ``rows``."""
    return 1 << (rows - 1).bit_length()


class PrefixTable:
    """Every task's prefix keys/values, stacked for a per-row gather (rows follow the registry's task order)."""

    def __init__(self, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.kv: torch.Tensor | None = None  # (layers, 2, capacity, m, kv_heads, head_dim)
        self.visible: torch.Tensor | None = None  # (capacity, layers, m) bool
        self.layers: tuple[int, ...] = ()
        self.masked = (
            False  # some task leaves a prefix position of some layer empty: the gather adds the mask
        )
        self.uniform = True  # every task's visibility is the same in all layers: one prefix mask for all

    def rebuild(self, prompts: list[LayerPrompts]) -> bool:
        """Refill from each task's ``{layer: (key, value)}`` (each ``(1, kv_heads, m, head_dim)``); True when the
        storage or layout changed (graphs that read the old table must be dropped)."""
        if not prompts:
            changed = self.kv is not None
            self.kv, self.visible, self.layers, self.masked, self.uniform = None, None, (), False, True
            return changed
        layers = tuple(sorted({layer for p in prompts for layer in p}))
        ref = next(kv[0] for p in prompts for kv in p.values())
        m = max(k.shape[2] for p in prompts for k, _ in p.values())
        capacity = max(8, row_bucket(len(prompts)))
        kv = torch.zeros(
            (len(layers), 2, capacity, m, ref.shape[1], ref.shape[3]), dtype=self.dtype, device=self.device
        )
        visible = torch.zeros((capacity, len(layers), m), dtype=torch.bool, device=self.device)
        for t, task in enumerate(prompts):
            for i, layer in enumerate(layers):
                if layer in task:
                    key, value = task[layer]
                    kv[i, 0, t, : key.shape[2]] = key[0].transpose(0, 1)  # (m, kv_heads, head_dim)
                    kv[i, 1, t, : value.shape[2]] = value[0].transpose(0, 1)
                    visible[t, i, : key.shape[2]] = True
        masked = not bool(visible[: len(prompts)].all())
        uniform = bool((visible == visible[:, :1]).all())
        if (
            self.kv is not None
            and self.kv.shape[:2] == kv.shape[:2]
            and self.kv.shape[3:] == kv.shape[3:]
            and self.kv.shape[2] >= capacity
            and (self.layers, self.masked, self.uniform) == (layers, masked, uniform)
        ):
            self.kv.zero_()
            self.kv[:, :, :capacity].copy_(kv)
            self.visible.zero_()
            self.visible[:capacity].copy_(visible)
            return False
        self.kv, self.visible, self.layers, self.masked, self.uniform = kv, visible, layers, masked, uniform
        return True

    def tensors(self) -> dict[str, torch.Tensor]:
        """The stacked tensors, as `gather` takes them (a captured forward reads their storage)."""
        return {"prefix_kv": self.kv, "prefix_visible": self.visible}

    def gather(
        self, task_ids: torch.Tensor, prefix_kv: torch.Tensor, prefix_visible: torch.Tensor
    ) -> dict[int, tuple[torch.Tensor, ...]]:
        """``deep_prompts`` for a batch whose row b belongs to task ``task_ids[b]`` (on the table's device).

        Where each task's visibility is the same in every layer (each prompts all layers, with its own length),
        every layer gets the same prefix-mask object, so the attention builds the extended mask once per forward;
        otherwise each layer its own."""
        rows = prefix_kv.index_select(2, task_ids)  # (layers, 2, B, m, kv_heads, head_dim)
        # [i, j]: (B, kv_heads, m, head_dim), stored as (B, m, kv_heads, head_dim)
        rows = rows.transpose(3, 4)
        if not self.masked:
            return {layer: (rows[i, 0], rows[i, 1]) for i, layer in enumerate(self.layers)}
        if self.uniform:
            shared = prefix_visible[:, 0].index_select(0, task_ids)  # (B, m), the same in every layer
            return {layer: (rows[i, 0], rows[i, 1], shared) for i, layer in enumerate(self.layers)}
        visible = prefix_visible.index_select(0, task_ids)  # (B, layers, m)
        return {layer: (rows[i, 0], rows[i, 1], visible[:, i]) for i, layer in enumerate(self.layers)}


class BucketedForward:
    """``forward(task_ids, batch)``: the backbone with each row's task prefix (``task_ids`` None: bare).

    ``pad_to_multiple_of`` / ``pad_rows``: pad to shape buckets (lengths, rows); ``graphs``: replay a CUDA graph
    per bucket (`InferenceGraphs`; padding is then always on). The output is cut back to the batch's own shape.
    ``max_shapes``: at most this many buckets captured (graphs) or run up front (`warm`, eager).
    """

    def __init__(
        self,
        model: nn.Module,
        table: PrefixTable,
        pad_to_multiple_of: int | None = None,
        pad_rows: bool = False,
        graphs: bool = False,
        max_shapes: int = 128,
        capture: Capture | None = None,
    ):
        self.model = model
        self.table = table
        self.pad_to_multiple_of = pad_to_multiple_of
        self.pad_rows = pad_rows
        self.pad_id = 0
        self.max_length = getattr(model.config, "max_position_embeddings", None)
        self.graphs = (
            InferenceGraphs(self.run, max_shapes=max_shapes, capture=capture, device=table.device)
            if graphs
            else None
        )
        self.max_shapes = max_shapes
        self.before_call = None  # e.g. torch.compiler.cudagraph_mark_step_begin for a reduce-overhead compile
        self.bucket_ms: dict[tuple[int, int], float] = {}  # (rows, length) bucket -> its timed call (`warm`)
        # the buckets `warm` ran (since the prefix table's last layout)
        self.warmed: set[tuple[int, int]] = set()
        self.calls = 0

    def run(
        self,
        input_ids: torch.Tensor,
        task_ids: torch.Tensor | None = None,
        prefix_kv: torch.Tensor | None = None,
        prefix_visible: torch.Tensor | None = None,
        **batch: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """The forward a graph captures: gather the rows' prefixes, run the backbone, return its tensors."""
        kwargs = {}
        if task_ids is not None:
            kwargs["deep_prompts"] = self.table.gather(task_ids, prefix_kv, prefix_visible)
        out = self.model(input_ids=input_ids, **batch, **kwargs)
        pooler = getattr(out, "pooler_output", None)
        return (out.last_hidden_state,) if pooler is None else (out.last_hidden_state, pooler)

    def pad(self, task_ids: torch.Tensor | None, batch: dict[str, torch.Tensor]):
        """The batch padded to its bucket: extra rows repeat the last one, extra columns are masked padding."""
        rows, length = batch["input_ids"].shape
        use = self.graphs is not None
        width = bucket(length, self.pad_to_multiple_of, self.max_length)
        height = row_bucket(rows) if (self.pad_rows or use) else rows
        if (height, width) == (rows, length):
            return task_ids, batch
        padded = {}
        for key, value in batch.items():
            out = value.new_full((height, width), self.pad_id if key == "input_ids" else 0)
            out[:rows, :length] = value
            out[rows:, :length] = value[-1:]
            padded[key] = out
        if task_ids is not None:
            task_ids = torch.cat([task_ids, task_ids[-1:].expand(height - rows)])
        return task_ids, padded

    def buckets(self, max_rows: int, max_length: int) -> list[tuple[int, int]]:
        """Every ``(rows, length)`` bucket a batch of up to ``max_rows`` rows of up to ``max_length`` tokens
        pads to (the padded batches that `graphs` captures), longest first."""
        cap = min(max_length, self.max_length) if self.max_length else max_length
        widths = sorted({bucket(n, self.pad_to_multiple_of, self.max_length) for n in range(1, cap + 1)})
        heights = sorted({row_bucket(n) for n in range(1, max_rows + 1)})
        return [(h, w) for w in reversed(widths) for h in reversed(heights)]

    def warm(self, example: dict[str, torch.Tensor], max_rows: int, max_length: int, task_id: int = 0) -> int:
        """Run every bucket up to ``max_rows`` x ``max_length`` (with prompts) once before serving, and time it
        into `bucket_ms` (what `plan` splits batches by). With graphs, each bucket not captured yet is captured,
        so that no capture happens while serving. Eager, with ``pad_rows`` (served batches are padded to these
        buckets), each bucket not run yet runs once: the first use of a shape (the GPU libraries' choice of
        kernels, the allocator's new blocks) is paid here, not by a request. ``example``: a collated batch of
        one row (its keys and dtypes are the served batches'). Returns the number of buckets newly captured
        (graphs) or run (eager); none for an eager forward on the batches' own shapes (they are not known up
        front) or without tasks. At most ``max_shapes`` buckets, the longest first: a batch of a bucket past
        them runs eager (graphs) or meets its shape while serving (eager), and `plan` leaves it unsplit (it was
        not timed)."""
        if self.table.kv is None or (self.graphs is None and not self.pad_rows):
            return 0
        graphs, ran = self.graphs, 0
        before = graphs.captures if graphs is not None else 0
        for rows, length in self.buckets(max_rows, max_length):
            if graphs is not None and len(graphs.graphs) >= graphs.max_shapes:
                break
            if graphs is None and (rows, length) in self.warmed:
                continue
            if graphs is None and len(self.warmed) >= self.max_shapes:
                break
            batch = {k: v[:1, :1].expand(rows, length).contiguous() for k, v in example.items()}
            task_ids = torch.full((rows,), task_id, dtype=torch.long)
            self(task_ids, batch)  # graphs: the capture (or a replay); eager: the shape's first use
            self.bucket_ms[(rows, length)] = self._time(task_ids, batch)
            self.warmed.add((rows, length))
            ran += 1
        return graphs.captures - before if graphs is not None else ran

    def reset(self) -> None:
        """Forget what `warm` did for the prefix table's old layout (its graphs, the buckets it ran): the table
        was reallocated, and the prefix length is part of every shape, so their timings go too (`plan` splits
        by none until `warm` times the new layout's buckets)."""
        if self.graphs is not None:
            self.graphs.clear()
        self.warmed.clear()
        self.bucket_ms.clear()

    def counts(self) -> dict[str, Any]:
        """The shape buckets (``GET /health``): whether rows are padded to powers of two, the length multiple,
        the buckets `warm` ran (captured or run once) and those timed (what `plan` splits by)."""
        return {
            "pad_rows": self.pad_rows or self.graphs is not None,
            "pad_to_multiple_of": self.pad_to_multiple_of,
            "warmed": len(self.warmed),
            "timed": len(self.bucket_ms),
        }

    def _time(self, task_ids: torch.Tensor, batch: dict[str, torch.Tensor], calls: int = 3) -> float:
        """Milliseconds of one call on this padded batch (its replay with the host's part), the least of ``calls``."""
        device = batch["input_ids"].device
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)
        best = float("inf")
        for _ in range(calls):
            sync(device)
            start = time.perf_counter()
            self(task_ids, batch, copy_outputs=False)
            sync(device)
            best = min(best, time.perf_counter() - start)
        return best * 1000

    def plan(self, lengths: list[int], max_rows: int) -> list[int] | None:
        """The chunk sizes for rows of ``lengths`` (longest first) with the least timed forward time
        (`serve.planning`); None before `warm` timed the buckets, or for a shape it did not time."""
        if not self.bucket_ms or len(lengths) < 2:
            return None
        times = self.bucket_ms
        widths = [bucket(n, self.pad_to_multiple_of, self.max_length) for n in lengths]
        return plan_chunks(widths, max_rows, lambda rows, width: times.get((row_bucket(rows), width)))

    def __call__(
        self, task_ids: torch.Tensor | None, batch: dict[str, torch.Tensor], copy_outputs: bool = True
    ) -> SimpleNamespace:
        """The batch's ``last_hidden_state`` (and ``pooler_output``), cut back to its rows and length.

        ``copy_outputs`` false: the outputs of a replay are views of the graph's static outputs, valid until the
        next call (the server's forward: its answers are read before the next batch runs), so no copy of the
        hidden states is made that the head would only read one row of. ``task_ids`` may stay on the host: a
        replay copies them into the graph's buffer without waiting for the GPU.
        """
        self.calls += 1
        rows, length = batch["input_ids"].shape
        device = batch["input_ids"].device
        task_ids, padded = self.pad(task_ids, batch)
        if task_ids is not None and task_ids.dtype != torch.long:
            task_ids = task_ids.long()
        inputs, bound = dict(padded), {}
        if task_ids is not None:
            inputs["task_ids"] = task_ids
            bound = self.table.tensors()
        outputs = None
        if self.graphs is not None:
            outputs = self.graphs(inputs, bound)
        static = outputs is not None or self.before_call is not None  # outputs the next call overwrites
        if outputs is None:
            if task_ids is not None:
                inputs["task_ids"] = task_ids.to(device, non_blocking=True)  # no host wait (pageable: staged)
            if self.before_call is not None:
                self.before_call()
            outputs = self.run(**inputs, **bound)
        cut = [outputs[0][:rows, :length]] + [t[:rows] for t in outputs[1:]]
        if static and copy_outputs:
            cut = [t.clone() for t in cut]
        return SimpleNamespace(last_hidden_state=cut[0], pooler_output=cut[1] if len(cut) > 1 else None)
