"""Several tasks' deep prompts on one frozen backbone, mixed in one batch.

`MultiTaskDeepPromptModel(backbone, {task: DeepPromptConfig})` holds one `PromptEncoder` per task (the caller
holds the task heads). ``forward(task_ids, **backbone_inputs)`` builds per-row prefixes: at every layer that
some task prompts, the keys/values of the tasks in the batch are zero-padded to the longest length there,
``(B, kv_heads, m_max, head_dim)``, and gathered by row, with a prefix mask ``(B, m_max)`` (True = a real
prompt position) that the attention merges into the ``(B, 1, q, m_max + n)`` mask. Padded positions are
masked, so each row sees exactly its own task's prompt: row by row the output equals that task's single-task
`DeepPromptModel` (tests/knobs/test_multitask.py). A batch of one task only goes through the single-task path
(prompts broadcast over the batch, no gather and no prefix mask).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from transformers import PreTrainedModel

from deepprompt.prompts import attention
from deepprompt.prompts.config import DeepPromptConfig
from deepprompt.prompts.encoder import PromptEncoder
from deepprompt.prompts.geometry import BackboneGeometry
from deepprompt.prompts.model import check_supported


class MultiTaskDeepPromptModel(nn.Module):
    def __init__(self, model: PreTrainedModel, configs: Mapping[str, DeepPromptConfig]):
        super().__init__()
        check_supported(model)
        if not configs:
            raise ValueError("MultiTaskDeepPromptModel needs at least one task")
        self.model = model
        self.tasks = list(configs)
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
        rows = slot[index].to(next(iter(per_task[present[0]].values()))[0].device)  # (B,) row -> stacked task
        g = self.geometry
        out = {}
        for layer in layers:
            m_max = max(p[layer][0].shape[2] for p in per_task.values() if layer in p)
            keys, values, masks = [], [], []
            for t in present:
                prompt = per_task[t].get(layer)
                m = 0 if prompt is None else prompt[0].shape[2]
                ref = next(p[layer][0] for p in per_task.values() if layer in p)
                pad = ref.new_zeros(1, g.num_kv_heads, m_max - m, g.head_dim)
                keys.append(pad if prompt is None else torch.cat([prompt[0], pad], dim=2))
                values.append(pad if prompt is None else torch.cat([prompt[1], pad], dim=2))
                masks.append(torch.arange(m_max, device=ref.device) < m)
            key = torch.cat(keys)[rows]  # (B, kv_heads, m_max, head_dim)
            value = torch.cat(values)[rows]
            mask = torch.stack(masks)[rows]  # (B, m_max)
            out[layer] = (key, value) if bool(mask.all()) else (key, value, mask)
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
