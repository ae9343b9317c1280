"""The served tasks: one frozen backbone, each task's prompts and head, added and removed at runtime.

A task comes from a P-Tuning v2 run folder (its ``prompts/best`` export, else ``prompts/last``) or from an
export folder inside one (``<run>/prompts/best``): the run's saved config gives the task's data module
(tokenizer, lengths, label names) and family, the export its prompts and ``classifier`` head. The prompts go
into one `MultiTaskDeepPromptModel` on the shared backbone. Each task's keys/values are computed once, with the
reparameterization MLP folded away, and cached (`CachedPrompts`), then stacked with the other tasks' into the
`PrefixTable` a forward gathers them from per row (`serve/forward.py`: shape buckets, CUDA graphs).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
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
from deepprompt.serve.forward import BucketedForward, PrefixTable
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
        graphs: bool = False,
        max_shapes: int = 128,
        capture=None,  # tests: a stand-in for the CUDA graph capture, so that the graph path runs on the CPU
        eager_buckets: bool | None = None,
    ):
        """``eager_buckets``: an eager forward (no graphs, no compile) pads its batches to the shape buckets too,
        so that `warm` runs and times each bucket up front (a new shape's first use is paid at start-up, and the
        split planner has the timings); None: on a GPU (on the CPU, warming every bucket takes a minute or more
        of start-up; docs/serving.md has the CPU measurement)."""
        self.backbone_cfg = structured(
            BackboneConfig, OmegaConf.to_container(OmegaConf.create(backbone), resolve=True), "backbone"
        )
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        graphs = graphs and compile == "none"  # a compiled forward brings its own (reduce-overhead: graphs)
        if graphs and self.device.type != "cuda" and capture is None:
            log.info("graphs: CUDA graphs need a GPU; the forward runs eager on %s", self.device)
            graphs = False
        torch.manual_seed(seed)  # a randomly initialised backbone (tests) is the one its runs trained on
        self.model = load_backbone(self.backbone_cfg).to(self.device, self.dtype).eval()
        # fixed shapes for graphs, a compiled forward or eager buckets: lengths padded to a multiple, rows to a
        # power of two
        self.compile = compile
        if eager_buckets is None:
            eager_buckets = self.device.type == "cuda"
        fixed = compile != "none" or graphs or eager_buckets
        self.table = PrefixTable(self.device, self.dtype)
        self.engine = BucketedForward(
            self.model,
            self.table,
            pad_to_multiple_of or (32 if fixed else None),
            pad_rows=fixed,
            graphs=graphs,
            max_shapes=max_shapes,
            capture=capture,
        )
        if compile != "none":
            from deepprompt.prompts.compiling import compile_backbone

            compile_backbone(self.model, compile, dynamic=None)  # symbolic sizes after the first new shape
            if compile == "reduce-overhead":
                self.engine.before_call = torch.compiler.cudagraph_mark_step_begin
        self.multi: MultiTaskDeepPromptModel | None = None
        self.tasks: dict[str, ServedTask] = {}
        self.lock = threading.RLock()
        self.warm_rows = 0  # warm(): each task load warms its new shape buckets up to this many rows

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
            self.engine.pad_id = runner.tokenizer.pad_token_id or 0
            if runner.family == "generation":
                self._drop(name)
                raise ConfigError(f"{run_dir} is a generation run: serve answers encoder tasks only")
            task = ServedTask(runner, str(export), cached)
            self.tasks[name] = task
            self._refresh()
        log.info("serving %s (%s) from %s", name, runner.family, export)
        if self.warm_rows:
            self.warm(self.warm_rows)
        return task

    def _drop(self, name: str) -> None:
        if self.multi is not None and name in self.multi.encoders:
            del self.multi.encoders[name]
            del self.multi.configs[name]
            self.multi.tasks.remove(name)

    def _refresh(self) -> bool:
        """Restack the prefix table after a task came or went (in place where it fits; else the engine forgets
        its graphs and warmed buckets, which the caller warms again: new graphs, new shapes). True when the
        table's layout changed."""
        tasks = self.multi.tasks if self.multi is not None else []
        changed = self.table.rebuild([self.multi.encoders[t]() for t in tasks])
        if changed:
            self.engine.reset()
        return changed

    def remove(self, name: str) -> None:
        """Drop ``name``; where the prefix table changed its layout (the task had the longest prompts, say), the
        buckets are warmed again as after a load, so that no request pays a capture or a shape's first use."""
        with self.lock:
            self.tasks.pop(name)
            self._drop(name)
            changed = self._refresh()
        if changed and self.warm_rows:
            self.warm(self.warm_rows)

    def forward(self, task_ids: torch.Tensor | None, batch: dict[str, torch.Tensor]):
        """The backbone with each row's task prompts (``task_ids``: indices into ``self.multi.tasks``; None: the
        bare backbone, a benchmark's baseline), padded to its shape bucket and cut back. The outputs may be views
        of a graph's static outputs: read them (the heads do) before the next forward, as `predict` does under
        ``lock``."""
        return self.engine(task_ids, batch, copy_outputs=False)

    def warm(self, max_rows: int) -> int:
        """Run every shape bucket a batch of up to ``max_rows`` rows of any served task can pad to once, and
        time it (``warmup_shapes``; `BucketedForward.warm`): with graphs each is captured, so that serving
        captures nothing; an eager forward with ``eager_buckets`` runs each once, so that no request pays a
        shape's first use. A no-op for an eager forward on the batches' own shapes and for a compiled one (it
        compiles its shapes as they come). Returns the number of buckets newly captured or run. Called after
        each task load (a longer task, or a table that had to grow, brings buckets of its own)."""
        from deepprompt.inference.engine import collate, pad_id_of

        self.warm_rows = max_rows
        if self.compile != "none":
            return 0
        captured = 0
        with self.lock, torch.inference_mode():
            seen = set()
            for task in self.tasks.values():
                runner = task.runner
                row = runner.token_keys(runner.tokenizer("warm up"))  # the token keys of the task's rows
                example = collate(
                    [row], pad_id_of(runner.tokenizer), runner.tokenizer.padding_side, self.device
                )
                key = (tuple(sorted(example)), runner.max_length)
                if key in seen:
                    continue
                seen.add(key)
                captured += self.engine.warm(example, max_rows, runner.max_length)
        if captured and self.engine.graphs is not None:
            log.info(
                "graphs: %d shape buckets captured up front (%d in all)",
                captured,
                len(self.engine.graphs.graphs),
            )
        elif captured:
            log.info(
                "eager: %d shape buckets run once and timed up front (%d in all)",
                captured,
                len(self.engine.warmed),
            )
        return captured

    def index(self, name: str) -> int:
        return self.multi.tasks.index(name)
