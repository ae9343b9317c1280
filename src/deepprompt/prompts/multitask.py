"""Several tasks' deep prompts on one frozen backbone, mixed in one batch.

`MultiTaskDeepPromptModel(backbone, {task: DeepPromptConfig})` holds one `PromptEncoder` per task (the caller
holds the task heads). ``forward(task_ids, **backbone_inputs)`` builds per-row prefixes: at every layer that
some task prompts, the keys/values of the tasks in the batch are zero-padded to the longest length there,
``(B, kv_heads, m_max, head_dim)``, and gathered by row, with a prefix mask ``(B, m_max)`` (True = a real
prompt position) that the attention merges into the ``(B, 1, q, m_max + n)`` mask. Padded positions are
masked, so each row sees exactly its own task's prompt: row by row the output equals that task's single-task
`DeepPromptModel` (tests/prompts/test_multitask.py). A batch of one task only goes through the single-task path
(prompts broadcast over the batch, no gather and no prefix mask).

Each task's prompts export alone in the single-task format (`save_task_prompts`, read by `load_prompts`,
``deepprompt-eval checkpoint=<dir>`` and `load_task_prompts`), so tasks trained separately or jointly can be
put together on one backbone, and a jointly trained task can be served alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel

from deepprompt.prompts import attention
from deepprompt.prompts.config import DeepPromptConfig
from deepprompt.prompts.encoder import PromptEncoder
from deepprompt.prompts.geometry import BackboneGeometry
from deepprompt.prompts.io import (
    check_geometry,
    extra_tensors,
    fill_encoder,
    read_saved_prompts,
    save_prompts,
    saved_prompt_config,
)
from deepprompt.prompts.model import check_supported


class MultiTaskDeepPromptModel(nn.Module):
    def __init__(self, model: PreTrainedModel, configs: Mapping[str, DeepPromptConfig]):
        super().__init__()
        check_supported(model)
        if not configs:
            raise ValueError("MultiTaskDeepPromptModel needs at least one task")
        self.model = model
        self.tasks = list(configs)
        self.configs = dict(configs)
        self.geometry = BackboneGeometry.from_config(model.config)
        self.encoders = nn.ModuleDict(
            {task: PromptEncoder(cfg, self.geometry) for task, cfg in configs.items()}
        )
        model.set_attn_implementation(attention.prompted_name(model.config._attn_implementation))
        model.requires_grad_(False)

    def task_index(self, task_ids) -> torch.Tensor:
        """``task_ids`` as a (B,) long tensor of task indices; task names are accepted too."""
        if isinstance(task_ids, torch.Tensor):
            return task_ids.long()
        if isinstance(task_ids, Sequence) and task_ids and isinstance(task_ids[0], str):
            return torch.tensor([self.tasks.index(t) for t in task_ids], dtype=torch.long)
        return torch.as_tensor(task_ids, dtype=torch.long)

    def build_prompts(self, task_ids) -> dict[int, tuple[torch.Tensor, ...]]:
        """``{layer: (key, value[, prefix_mask])}`` for a batch whose row b belongs to task ``task_ids[b]``."""
        index = self.task_index(task_ids)
        present = sorted(set(index.tolist()))
        if len(present) == 1:  # one task: its prompts broadcast over the batch
            return self.encoders[self.tasks[present[0]]]()
        per_task = {t: self.encoders[self.tasks[t]]() for t in present}
        layers = sorted({layer for prompts in per_task.values() for layer in prompts})
        slot = torch.full((len(self.tasks),), -1, dtype=torch.long)
        slot[torch.tensor(present)] = torch.arange(len(present))
        device = next(iter(per_task[present[0]].values()))[0].device
        rows = slot.to(index.device)[index].to(device)  # (B,) row -> stacked task (index may be on the GPU)
        g = self.geometry
        out = {}
        masks: dict[tuple[int, ...], torch.Tensor] = {}  # the present tasks' lengths -> their (B, m_max) mask
        for layer in layers:
            m_max = max(p[layer][0].shape[2] for p in per_task.values() if layer in p)
            keys, values, lengths = [], [], []
            for t in present:
                prompt = per_task[t].get(layer)
                m = 0 if prompt is None else prompt[0].shape[2]
                ref = next(p[layer][0] for p in per_task.values() if layer in p)
                pad = ref.new_zeros(1, g.num_kv_heads, m_max - m, g.head_dim)
                keys.append(pad if prompt is None else torch.cat([prompt[0], pad], dim=2))
                values.append(pad if prompt is None else torch.cat([prompt[1], pad], dim=2))
                lengths.append(m)
            key = torch.cat(keys)[rows]  # (B, kv_heads, m_max, head_dim)
            value = torch.cat(values)[rows]
            if all(m == m_max for m in lengths):  # every row sees every position: no prefix mask
                out[layer] = (key, value)
                continue
            # layers with the same lengths share one mask object: the attention extends it once per forward
            if tuple(lengths) not in masks:
                columns = torch.arange(m_max, device=ref.device)
                masks[tuple(lengths)] = torch.stack([columns < m for m in lengths])[rows]
            out[layer] = (key, value, masks[tuple(lengths)])  # mask (B, m_max), True = a real position
        return out

    def forward(self, task_ids, *args, **kwargs):
        return self.model(*args, deep_prompts=self.build_prompts(task_ids), **kwargs)

    def fold(self) -> None:
        for encoder in self.encoders.values():
            encoder.fold()

    def num_parameters(self) -> dict[str, int]:
        return {
            **{
                f"prompt/{task}": sum(p.numel() for p in enc.parameters())
                for task, enc in self.encoders.items()
            },
            "backbone": sum(p.numel() for p in self.model.base_model.parameters()),
        }


class _TaskPrompts:
    """One task's prompts seen as a single-task `DeepPromptModel` by `save_prompts` (no head inside)."""

    head_names: list[str] = []

    def __init__(self, multi: MultiTaskDeepPromptModel, task: str) -> None:
        self.prompt_encoder = multi.encoders[task]
        self.config = self.prompt_encoder.config
        self.geometry = multi.geometry

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        return {}


def save_task_prompts(
    multi: MultiTaskDeepPromptModel,
    task: str,
    directory: str | os.PathLike,
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """``task``'s prompts (MLP folded in the file, not in ``multi``) in the single-task export format;
    ``extra`` holds its head (``classifier.weight``/``classifier.bias``), as a single-task run writes it."""
    if task not in multi.encoders:
        raise KeyError(f"no task {task!r}; tasks: {multi.tasks}")
    return save_prompts(_TaskPrompts(multi, task), directory, extra=extra)  # type: ignore[arg-type]


def load_task_prompts(
    multi: MultiTaskDeepPromptModel, task: str, directory: str | os.PathLike
) -> dict[str, torch.Tensor]:
    """Fill ``task``'s prompts of ``multi`` from an export (single-task or `save_task_prompts`); returns the
    ``extra`` tensors (the head). The task's encoder is folded first (the export holds folded prompts)."""
    meta, tensors = read_saved_prompts(directory)
    check_geometry(meta, multi.model.config, directory)
    multi.encoders[task].fold()
    fill_encoder(multi.encoders[task], meta, tensors, directory)
    return extra_tensors(tensors)


def from_exports(model: PreTrainedModel, exports: Mapping[str, str | os.PathLike]):
    """A `MultiTaskDeepPromptModel` of ``{task: export dir}`` on ``model``, and ``{task: extra tensors}``."""
    configs = {task: saved_prompt_config(read_saved_prompts(d)[0]) for task, d in exports.items()}
    multi = MultiTaskDeepPromptModel(model, configs)
    extras = {task: load_task_prompts(multi, task, d) for task, d in exports.items()}
    return multi, extras
