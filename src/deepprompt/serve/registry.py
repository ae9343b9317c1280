"""The served tasks: one frozen backbone, each task's prompts and head, added and removed at runtime.

A task comes from a P-Tuning v2 run folder (its ``prompts/best`` export, else ``prompts/last``) or from an
export folder inside one (``<run>/prompts/best``): the run's saved config gives the task's data module
(tokenizer, lengths, label names) and family, the export its prompts and ``classifier`` head. The prompts go
into one `MultiTaskDeepPromptModel` on the shared backbone. Each task's keys/values are computed once, with the
reparameterization MLP folded away, and cached (`CachedPrompts`): a forward only gathers them per row.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from deepprompt.backbones import BackboneConfig, load_backbone
from deepprompt.config import HeadConfig, structured
from deepprompt.errors import ConfigError
from deepprompt.inference.families import TaskRunner
from deepprompt.prompts.encoder import PromptEncoder
from deepprompt.prompts.io import read_saved_prompts, saved_prompt_config
from deepprompt.prompts.multitask import MultiTaskDeepPromptModel, load_task_prompts
from deepprompt.runs.restore import load_run_config
from deepprompt.utils.instantiate import build

log = logging.getLogger("deepprompt.serve")


class CachedPrompts(nn.Module):
    """A task's prompt keys/values, computed once from its (folded) `PromptEncoder` and returned as they are."""

    def __init__(self, encoder: PromptEncoder, dtype: torch.dtype, device: torch.device):
        super().__init__()
        encoder.fold()
        encoder.eval()
        with torch.no_grad():
            self.prompts = {
                layer: (k.detach().to(device, dtype), v.detach().to(device, dtype))
                for layer, (k, v) in encoder().items()
            }
        self.config = encoder.config
        self.num_parameters = sum(p.numel() for p in encoder.parameters())
        self.length = max((k.shape[2] for k, _ in self.prompts.values()), default=0)

    def forward(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        return self.prompts


def find_run(path: Path) -> tuple[Path, Path]:
    """``(run folder, export folder)`` of a run folder or of an export folder inside one."""
    if (path / ".hydra" / "config.yaml").is_file():
        for export in (path / "prompts" / "best", path / "prompts" / "last"):
            if (export / "prompt_config.json").is_file():
                return path, export
        raise ConfigError(
            f"{path} has no prompt export (prompts/best or prompts/last): serve needs a P-Tuning v2 run"
        )
    for parent in path.parents:
        if (parent / ".hydra" / "config.yaml").is_file():
            return parent, path
    raise ConfigError(
        f"{path} is neither a deepprompt run folder nor a prompt export inside one (no .hydra/config.yaml above it)"
    )


def same_backbone(a: BackboneConfig, b: Any) -> bool:
    return (
        str(a.name_or_path) == str(b.name_or_path)
        and dict(a.config_overrides or {}) == dict(b.get("config_overrides") or {})
        and bool(a.pretrained) == bool(b.get("pretrained", True))
    )


@dataclass
class ServedTask:
    runner: TaskRunner
    source: str
    prompt: CachedPrompts

    def info(self, backbone: str) -> dict[str, Any]:
        return {
            **self.runner.info(),
            "prompt_length": self.prompt.length,
            "prompt_parameters": self.prompt.num_parameters,
            "head_parameters": sum(p.numel() for p in self.runner.head.parameters()),
            "source": self.source,
            "backbone": backbone,
        }


class TaskRegistry:
    """The backbone, the `MultiTaskDeepPromptModel` over it and each task's runner; ``lock`` guards changes
    against a running batch."""

    def __init__(
        self,
        backbone: DictConfig | dict,
        device: str = "cpu",
        dtype: str = "float32",
        seed: int = 42,
        compile: str = "none",
        pad_to_multiple_of: int | None = None,
    ):
        self.backbone_cfg = structured(
            BackboneConfig, OmegaConf.to_container(OmegaConf.create(backbone), resolve=True), "backbone"
        )
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        torch.manual_seed(seed)  # a randomly initialised backbone (tests) is the one its runs trained on
        self.model = load_backbone(self.backbone_cfg).to(self.device, self.dtype).eval()
        # fixed shapes for a compiled forward: lengths padded to a multiple, rows to a power of two
        self.compile = compile
        self.pad_to_multiple_of = pad_to_multiple_of or (32 if compile != "none" else None)
        self.pad_rows = compile != "none"
        self.pad_id = 0
        if compile != "none":
            from deepprompt.prompts.compiling import compile_backbone

            compile_backbone(self.model, compile, dynamic=None)  # symbolic sizes after the first new shape
        self.multi: MultiTaskDeepPromptModel | None = None
        self.tasks: dict[str, ServedTask] = {}
        self.lock = threading.RLock()

    @property
    def backbone_name(self) -> str:
        return str(self.backbone_cfg.name_or_path)

    def load(self, name: str, path: str | Path) -> ServedTask:
        """Read ``path``'s task (config, tokenizer, prompts, head) and add it as ``name``; the backbone stays."""
        run_dir, export = find_run(Path(path))
        cfg = load_run_config(run_dir)
        if not same_backbone(self.backbone_cfg, cfg.backbone):
            raise ConfigError(
                f"{run_dir} was trained on backbone {cfg.backbone.name_or_path} "
                f"({dict(cfg.backbone.get('config_overrides') or {})}), not the served {self.backbone_name}"
            )
        datamodule = build(cfg.data, "data")
        meta, _ = read_saved_prompts(export)
        config = saved_prompt_config(meta)
        with self.lock:
            if name in self.tasks:
                raise ConfigError(f"task {name!r} is already served (DELETE /v1/tasks/{name} first)")
            if self.multi is None:
                self.multi = MultiTaskDeepPromptModel(self.model, {name: config})
            else:
                self.multi.configs[name] = config
                self.multi.encoders[name] = PromptEncoder(config, self.multi.geometry)
                self.multi.tasks.append(name)
            try:
                extra = load_task_prompts(self.multi, name, export)
                head_state = {
                    k.removeprefix("classifier."): v for k, v in extra.items() if k.startswith("classifier.")
                }
                if not head_state:
                    raise ConfigError(f"{export} holds no classifier head: serve answers with a task head")
                weight = head_state["weight"]
                head = nn.Linear(weight.shape[1], weight.shape[0])
                head.load_state_dict(head_state)
                head = head.to(self.device, self.dtype).eval()
                cached = CachedPrompts(self.multi.encoders[name], self.dtype, self.device)
            except Exception:
                self._drop(name)
                raise
            self.multi.encoders[name] = cached
            pooling = structured(
                HeadConfig, OmegaConf.to_container(cfg.get("head") or {}, resolve=True), "head"
            ).pooling
            runner = TaskRunner.from_datamodule(name, datamodule, head, pooling)
            self.pad_id = runner.tokenizer.pad_token_id or 0
            if runner.family == "generation":
                self._drop(name)
                raise ConfigError(f"{run_dir} is a generation run: serve answers encoder tasks only")
            task = ServedTask(runner, str(export), cached)
            self.tasks[name] = task
        log.info("serving %s (%s) from %s", name, runner.family, export)
        return task

    def _drop(self, name: str) -> None:
        if self.multi is not None and name in self.multi.encoders:
            del self.multi.encoders[name]
            del self.multi.configs[name]
            self.multi.tasks.remove(name)

    def remove(self, name: str) -> None:
        with self.lock:
            self.tasks.pop(name)
            self._drop(name)

    def forward(self, task_ids: torch.Tensor, batch: dict[str, torch.Tensor]):
        """The backbone with each row's task prompts (``task_ids``: indices into ``self.multi.tasks``).

        With padded shapes (a compiled forward), the batch is padded to the bucket and the output cut back.
        """
        if self.pad_to_multiple_of is None and not self.pad_rows:
            return self.multi(task_ids, **batch)
        rows, length = batch["input_ids"].shape
        width = length
        if self.pad_to_multiple_of:
            width = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        height = 1 << (rows - 1).bit_length() if self.pad_rows else rows
        padded = {}
        for key, value in batch.items():
            fill = self.pad_id if key == "input_ids" else 0
            out = value.new_full((height, width), fill)
            out[:rows, :length] = value
            out[rows:, :length] = value[-1:]  # extra rows repeat the last one; their outputs are dropped
            padded[key] = out
        ids = torch.cat([task_ids, task_ids[-1:].expand(height - rows)])
        if self.compile == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        out = self.multi(ids, **padded)
        pooler = getattr(out, "pooler_output", None)
        return SimpleNamespace(
            last_hidden_state=out.last_hidden_state[:rows, :length].clone(),
            pooler_output=None if pooler is None else pooler[:rows].clone(),
        )

    def index(self, name: str) -> int:
        return self.multi.tasks.index(name)
