"""The fast path: the speed settings a GPU run takes unless its config says otherwise (docs/fast-path.md).

On a CUDA GPU under bf16-mixed (``trainer=gpu``) a run takes the measured speed levers of docs/performance.md:

- ``method.frozen_dtype=bf16``: the frozen backbone's weights stored in bf16 (prompts and head stay fp32);
- ``method.cuda_graphs=true``: the training forward and backward captured once per batch shape and replayed;
- ``data.pad_to_multiple_of=32``: with CUDA graphs, so that few batch shapes occur;
- ``data.num_workers=0``: with CUDA graphs, batches are collated in the training process (the tokenized splits
  are in memory: receiving a batch from a worker process costs the host more than collating it).

A key the config sets itself (command line, experiment, local config) is never changed. A key left at its
default reads ``${auto:<plain value>}`` in conf/ (the ``auto`` resolver gives the plain value to any other reader,
e.g. ``deepprompt-eval``), and only those are the fast path's to choose. ``fast_path=false`` keeps every plain value.

`decide` is a pure function of the facts (`Facts`: config + machine) and returns the settings and the one line the
run prints; `read_facts` reads the facts from a composed config, `apply` writes the settings into it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from deepprompt.runs.devices import requested_devices

FROZEN = "method.frozen_dtype"
GRAPHS = "method.cuda_graphs"
PAD = "data.pad_to_multiple_of"
WORKERS = "data.num_workers"
KEYS = (FROZEN, GRAPHS, PAD, WORKERS)
FAST = {FROZEN: "bf16", GRAPHS: True, PAD: 32, WORKERS: 0}

BF16_MIXED = ("bf16-mixed", "bf16")  # Lightning's name and its older alias
# The task modules each lever is known to work with. CUDA graphs: measured on the GPU (tests/prompts/
# test_cuda_graphs.py's Lightning fit, the SST-2 epoch bench) with the single-task classification module only.
# bf16 frozen weights: every module that builds its encoder through the method (the multi-task module builds its
# own and ignores the option; causal-LM generation is not measured).
FROZEN_MODULES = (
    "ClassificationModule",
    "MultiRCModule",
    "MultipleChoiceModule",
    "TokenClassificationModule",
    "QuestionAnsweringModule",
)
GRAPH_MODULES = ("ClassificationModule",)
SINGLE_DEVICE = (None, "auto", "single_device")
OFF_HINT = " (turn off: fast_path=false)"


@dataclass(frozen=True)
class Facts:
    """What the decision depends on: the composed config and the machine it runs on."""

    device: str  # what trainer.accelerator resolves to here: cuda, cpu, mps ...
    precision: str  # trainer.precision
    processes: int = 1  # trainer.devices x trainer.num_nodes
    strategy: str | None = None  # trainer.strategy (None, auto: one device)
    gradient_checkpointing: bool = False
    method: str = "ptuning_v2"
    method_keys: frozenset[str] = frozenset({"frozen_dtype", "cuda_graphs", "compile"})  # its schema's fields
    compile: str = "none"  # method.compile
    task_module: str = "ClassificationModule"  # class name of the Lightning module the data trains
    pads: bool = True  # the data config has data.pad_to_multiple_of
    workers: bool = True  # the data config has data.num_workers
    pooling: str = (
        "cls"  # head.pooling: 'last' is a decoder-only classifier (the head on the last real token)
    )
    explicit: Mapping[str, Any] = field(default_factory=dict)  # the KEYS the config sets itself, with values


@dataclass(frozen=True)
class FastPath:
    settings: dict[str, Any]  # key -> value the fast path chose (the other auto keys keep their plain values)
    line: str  # the one line the run prints


def decide(enabled: bool, facts: Facts) -> FastPath:
    """The fast path's settings for ``facts`` and the line that says what it chose, or why not."""
    if not enabled:
        return FastPath({}, "fast path: off (fast_path=false): eager path")
    if facts.device != "cuda":
        label = {"cpu": "CPU", "mps": "MPS"}.get(facts.device, facts.device)
        return FastPath({}, f"fast path: {label}: eager path (the fast path needs a CUDA GPU)")
    if str(facts.precision) not in BF16_MIXED:
        return FastPath(
            {},
            f"fast path: eager path: trainer.precision={facts.precision} (the fast path runs under "
            "bf16-mixed, as trainer=gpu sets)",
        )
    if not {"frozen_dtype", "cuda_graphs"} & facts.method_keys:
        return FastPath({}, f"fast path: eager path: method {facts.method} has no fast-path option")

    settings: dict[str, Any] = {}
    skipped: list[tuple[str, str]] = []
    for key, lever, modules in (
        (FROZEN, "bf16 frozen weights", FROZEN_MODULES),
        (GRAPHS, "CUDA graphs", GRAPH_MODULES),
    ):
        if facts.explicit.get(key) == FAST[key]:
            continue  # the config takes this lever itself
        why = _blocker(facts, key, modules)
        if why:
            skipped.append((lever, why))
        else:
            settings[key] = FAST[key]
    graphs_on = settings.get(GRAPHS) or facts.explicit.get(GRAPHS) is True
    if graphs_on and facts.pads and PAD not in facts.explicit:
        settings[PAD] = FAST[PAD]  # few batch shapes: each one is captured once
    if graphs_on and facts.workers and WORKERS not in facts.explicit:
        settings[WORKERS] = FAST[WORKERS]  # a replayed step is host-bound: the cheaper way to get a batch

    chosen = ", ".join(f"{key}={_show(value)}" for key, value in settings.items()) or "eager path"
    reasons = "".join(f"; no {lever}: {why}" for lever, why in skipped)
    return FastPath(settings, f"fast path: {chosen}{reasons}{OFF_HINT if settings else ''}")


def _blocker(facts: Facts, key: str, modules: tuple[str, ...]) -> str | None:
    """Why the lever ``key`` (method.frozen_dtype or method.cuda_graphs) is not taken here (None: it is)."""
    name = key.split(".")[1]
    if name not in facts.method_keys:
        return f"method {facts.method} has no {name}"
    if key in facts.explicit:
        return f"{key}={_show(facts.explicit[key])} is set"
    if facts.task_module not in modules:
        return f"not verified with {facts.task_module}"
    return _graph_blocker(facts) if key == GRAPHS else None


def _graph_blocker(facts: Facts) -> str | None:
    if (
        facts.pooling == "last"
    ):  # captures checked against eager on encoders only (tests/prompts/test_cuda_graphs.py)
        return "not verified with a decoder-only backbone (head.pooling=last)"
    if facts.compile != "none":
        return f"method.compile={facts.compile} is set"
    if facts.gradient_checkpointing:
        return "gradient_checkpointing=true"
    if facts.processes > 1:
        return f"not verified with DDP, {facts.processes} processes"
    if facts.strategy not in SINGLE_DEVICE:
        return f"not verified with trainer.strategy={facts.strategy}"
    return None


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- reading a composed config ---------------------------------------------------------------------------------
def is_auto(node: DictConfig, name: str) -> bool:
    """Whether ``node.name`` is left at its default: absent, or the ``${auto:...}`` of conf/."""
    if name not in node:
        return True
    if not OmegaConf.is_interpolation(node, name):
        return False
    return str(node._get_node(name)._value()).replace(" ", "").startswith("${auto:")


def explicit_settings(cfg: DictConfig) -> dict[str, Any]:
    """The fast-path keys the config sets itself, with their (resolved) values."""
    out = {}
    for key in KEYS:
        section, name = key.split(".")
        node = cfg.get(section)
        if isinstance(node, DictConfig) and not is_auto(node, name):
            out[key] = node[name]
    return out


def read_facts(cfg: DictConfig, task_module: str, cuda_devices: int) -> Facts:
    """The facts of a composed train config; ``task_module``: the name of the Lightning module class its data trains;
    ``cuda_devices``: ``torch.cuda.device_count()`` here."""
    from deepprompt.methods import method_schema

    trainer = cfg.trainer
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda"):
        device = "cuda"
    elif accelerator == "auto":
        device = "cuda" if cuda_devices > 0 else "cpu"
    else:
        device = accelerator
    schema = method_schema(cfg.method.name)
    return Facts(
        device=device,
        precision=str(trainer.get("precision", "32-true")),
        processes=_device_count(trainer.get("devices", 1), cuda_devices)
        * int(trainer.get("num_nodes", 1) or 1),
        strategy=_strategy_name(trainer.get("strategy")),
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        method=str(cfg.method.name),
        method_keys=frozenset(f.name for f in dataclasses.fields(schema)),
        compile=str(cfg.method.get("compile", "none")),
        task_module=task_module.rsplit(".", 1)[-1],
        pads="pad_to_multiple_of" in cfg.data,
        workers="num_workers" in cfg.data,
        pooling=str((cfg.get("head") or {}).get("pooling", "cls")),
        explicit=explicit_settings(cfg),
    )


def _device_count(devices: Any, cuda_devices: int) -> int:
    if isinstance(devices, int) and not isinstance(devices, bool) and devices <= 0:
        return cuda_devices if devices == -1 else devices
    wanted = requested_devices(devices)  # a count, or "0,1"/[0, 1]: those GPUs
    return max(cuda_devices, 1) if wanted is None else wanted  # auto: the GPUs seen


def _strategy_name(strategy: Any) -> str | None:
    if strategy is None:
        return None
    if isinstance(strategy, DictConfig):
        return str(strategy.get("_target_", "custom")).rsplit(".", 1)[-1]
    return str(strategy)


def choose(cfg: DictConfig, task_module: str) -> FastPath:
    """`decide` for this machine (the number of CUDA devices is asked here; CUDA is not initialised)."""
    import torch

    return decide(bool(cfg.get("fast_path", True)), read_facts(cfg, task_module, torch.cuda.device_count()))


def apply(cfg: DictConfig, choice: FastPath) -> bool:
    """Write the chosen settings into ``cfg``; True when a data option changed (the data module is rebuilt)."""
    with open_dict(cfg):
        for key, value in choice.settings.items():
            section, name = key.split(".")
            cfg[section][name] = value
    return any(key.startswith("data.") for key in choice.settings)
