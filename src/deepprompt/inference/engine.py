"""Batched inference over examples of one or several tasks: rows grouped by length, one backbone call a batch.

``forward(task_ids, batch)`` is the backbone call: the run's own encoder (`deepprompt-predict`) or the
server's `MultiTaskDeepPromptModel` (``task_ids``: each row's task index). Each task's `TaskRunner` turns its
examples into rows, reads its rows' head scores from the output and decodes them, so either caller gives the
same answers for the same inputs.

On a GPU the loop does not wait for it: a batch goes from the host collate to the device by an asynchronous copy
from pinned memory, and the heads' scores stay on the device until the end (or every `HOST_FLUSH_ROWS` rows),
when they come back in one transfer per dtype. The host meanwhile collates the next batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from deepprompt.data.base import SEQUENCE_KEYS, FeatureCollator, fill_value, pad_into
from deepprompt.inference.families import Example, Row, TaskRunner

Forward = Callable[[torch.Tensor, dict[str, torch.Tensor]], Any]

HOST_FLUSH_ROWS = 16384  # scores kept on the device at most (rows) before they are fetched: bounds its memory


def to_device(tensor: torch.Tensor, device) -> torch.Tensor:
    """A host ``tensor`` on a CUDA ``device`` without a host wait: copied into pinned memory, then asynchronously
    to the device (a copy from pageable memory waits for the device). The pinned copy is the copy's own, so the
    caller may change ``tensor`` at once, and PyTorch's host allocator reuses the block only once the transfer is
    done. Elsewhere a plain ``.to``."""
    device = torch.device(device)
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def to_host(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``tensors`` on the CPU, in one device-to-host transfer per dtype (each a wait for the device)."""
    out: list[torch.Tensor | None] = [t if t.device.type == "cpu" else None for t in tensors]
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        if out[i] is None:
            groups.setdefault((t.device, t.dtype), []).append(i)
    for members in groups.values():
        flat = torch.cat([tensors[i].reshape(-1) for i in members]).cpu()
        for i, part in zip(members, flat.split([tensors[i].numel() for i in members]), strict=True):
            out[i] = part.view(tensors[i].shape)
    return out  # type: ignore[return-value]


def collate(rows: Sequence[Row], pad_id: int, padding_side: str, device) -> dict[str, torch.Tensor]:
    """The rows' token keys padded to their longest, as the data modules' `FeatureCollator` pads them, on
    ``device``: views of one ``(keys, rows, width)`` tensor, so one host-to-device copy (without a host wait,
    `to_device`) carries them all."""
    keys = [k for k in SEQUENCE_KEYS if k in rows[0]]
    width = max([1] + [len(r[k]) for r in rows for k in keys])
    out = np.empty((len(keys), len(rows), width), dtype=np.int64)
    for i, key in enumerate(keys):
        pad_into(out[i], [r[key] for r in rows], fill_value(key, pad_id), padding_side)
    batch = to_device(torch.from_numpy(out), device)
    return {key: batch[i] for i, key in enumerate(keys)}


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def rows_of(runner: TaskRunner, example: Example) -> list[Row]:
    """The example's backbone rows, tokenized once (kept in the example under ``_rows``)."""
    if "_rows" not in example:
        example["_rows"] = runner.rows(example)
    return example["_rows"]


def tokenize(work: Sequence[tuple[int, TaskRunner, Example]]) -> None:
    """Tokenize the examples of ``work`` not tokenized yet, each task's in one call (`TaskRunner.rows_many`)."""
    todo: dict[int, tuple[TaskRunner, list[Example]]] = {}
    for _, runner, example in work:
        if "_rows" not in example:
            todo.setdefault(id(runner), (runner, []))[1].append(example)
    for runner, examples in todo.values():
        for example, rows in zip(examples, runner.rows_many(examples), strict=True):
            example["_rows"] = rows


def run_batch(
    forward: Forward,
    items: Sequence[tuple[int, TaskRunner, Row]],
    device,
) -> list[tuple[list[int], torch.Tensor]]:
    """One backbone call over ``(task index, runner, row)`` items: per task, ``(item positions, scores)`` with
    the scores of those rows stacked (one row each), left on the device (`to_host` fetches them)."""
    tokenizer = items[0][1].tokenizer
    batch = collate([row for _, _, row in items], pad_id_of(tokenizer), tokenizer.padding_side, device)
    task_ids = torch.tensor([t for t, _, _ in items], dtype=torch.long)  # on the host: the forward moves it
    out = forward(task_ids, batch)
    by_runner: dict[int, list[int]] = {}
    for i, (_, runner, _) in enumerate(items):
        by_runner.setdefault(id(runner), []).append(i)
    scored = []
    for positions in by_runner.values():
        runner = items[positions[0]][1]
        if len(positions) == len(items):
            index = slice(None)  # one task: every row, no index to copy
        else:
            index = to_device(torch.tensor(positions), batch["input_ids"].device)
        scored.append((positions, runner.scores(out, index, batch)))
    return scored


def predict(
    forward: Forward,
    work: Sequence[tuple[int, TaskRunner, Example]],
    batch_size: int,
    device,
    progress: Callable[[int], None] | None = None,
    plan: Callable[[list[int], int], list[int] | None] | None = None,
) -> list[dict[str, Any]]:
    """Answers for ``(task index, runner, example)`` in the given order; rows run longest first, in batches
    of ``batch_size`` rows of near-equal length (less padding). ``plan(lengths, batch_size)``, given the rows'
    lengths longest first, may choose the batch sizes instead (the server's timed split, `serve.planning`;
    None: batches of ``batch_size``)."""
    rows: list[tuple[int, int, TaskRunner, Row]] = []  # (example, task index, runner, row)
    per_example: list[list[int]] = []
    tokenize(work)
    for e, (task, runner, example) in enumerate(work):
        made = rows_of(runner, example)
        per_example.append(list(range(len(rows), len(rows) + len(made))))
        rows += [(e, task, runner, row) for row in made]
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][3]["input_ids"]))
    scores: list[Any] = [None] * len(rows)
    pending: list[tuple[list[int], torch.Tensor, bool]] = []  # (rows, their scores on the device, as lists)

    def fetch() -> None:
        for (which, _, listed), host in zip(pending, to_host([t for _, t, _ in pending]), strict=True):
            # a task whose rows decode from lists: one conversion for the block, not a tensor per row
            for i, s in zip(which, host.tolist() if listed else host.unbind(0), strict=True):
                scores[i] = s
        pending.clear()

    sizes = None
    if plan is not None:
        sizes = plan([len(rows[i][3]["input_ids"]) for i in order], batch_size)
    if sizes is None:
        sizes = [batch_size] * -(-len(order) // batch_size)
    start = 0
    for size in sizes:
        chunk = order[start : start + size]
        start += size
        items = [(rows[i][1], rows[i][2], rows[i][3]) for i in chunk]
        for positions, s in run_batch(forward, items, device):
            listed = items[positions[0]][1].decodes_lists
            pending.append(([chunk[p] for p in positions], s, listed))
        if sum(len(w) for w, _, _ in pending) >= HOST_FLUSH_ROWS:
            fetch()
        if progress is not None:
            progress(len(chunk))
    fetch()
    answers = []
    for (_, runner, example), positions in zip(work, per_example, strict=True):
        answers.append(
            runner.decode(example, [rows[i][3] for i in positions], [scores[i] for i in positions])
        )
    return answers


def count_rows(work: Sequence[tuple[int, TaskRunner, Example]]) -> int:
    return sum(len(rows_of(runner, example)) for _, runner, example in work)


@torch.no_grad()
def generate(module, runner: TaskRunner, examples: Sequence[Example], batch_size: int, device, progress=None):
    """Generated text per example (the run's decoding settings), prompts grouped by length, left-padded."""
    dm = runner.datamodule
    prompts = [dm._prompt(e["source"]) for e in examples]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    collator = FeatureCollator(dm.tokenizer.pad_token_id, None, "left")
    texts: list[str | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collator([{"input_ids": prompts[i], "attention_mask": [1] * len(prompts[i])} for i in chunk])
        new = module.generate(
            to_device(batch["input_ids"], device), to_device(batch["attention_mask"], device)
        )
        for i, text in zip(chunk, dm.decode(new.cpu()), strict=True):
            texts[i] = text
        if progress is not None:
            progress(len(chunk))
    return [{"generated": t} for t in texts]
