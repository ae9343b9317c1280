"""``deepprompt-serve "prompts={rte: <dir>, sst2: <dir>}" backbone=minilm port=8080``: load, then serve."""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig, ListConfig

from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import ConfigError, DeepPromptError
from deepprompt.predict import pick_device
from deepprompt.runs.guard import debug_enabled

# torch and the serving stack are imported in build_server, after the settings are checked: a mistake on the
# command line is reported at once

log = logging.getLogger("deepprompt.serve")
register_resolvers()


def parse_prompts(node) -> dict[str, str]:
    """``{task: dir}`` from a mapping or from a list of ``task=dir`` strings (none: null)."""
    if node is None:
        return {}
    if isinstance(node, DictConfig | dict):
        return {str(k): str(v) for k, v in node.items()}
    if isinstance(node, ListConfig | list):
        out = {}
        for item in node:
            name, sep, path = str(item).partition("=")
            if not sep or not name or not path:
                raise ConfigError(f"prompts: {item!r} is not task=dir")
            out[name] = path
        return out
    raise ConfigError(f"prompts must map task names to run folders, got {node!r}")


def eager_buckets(value) -> bool | None:
    """The ``eager_buckets`` setting: true, false, or None for ``auto`` (on a GPU)."""
    if value is None or value == "auto":
        return None
    if isinstance(value, bool):
        return value
    raise ConfigError(
        f"eager_buckets must be auto, true or false, got {value!r}",
        key="eager_buckets",
        fix="pass eager_buckets=auto (on a GPU), true or false",
    )


def build_server(cfg: DictConfig):
    """``(registry, batcher, app)`` with every task of ``cfg.prompts`` loaded."""
    prompts = parse_prompts(cfg.prompts)
    if not prompts:
        raise ConfigError('no tasks to serve: pass prompts="{<task>: <run folder>, ...}"')
    eager = eager_buckets(cfg.get("eager_buckets", "auto"))
    from deepprompt.serve.app import create_app
    from deepprompt.serve.batcher import Batcher
    from deepprompt.serve.registry import TaskRegistry

    device = pick_device(str(cfg.device))
    dtype = str(cfg.dtype)
    if dtype == "auto":
        dtype = "bfloat16" if device.type == "cuda" else "float32"
    if cfg.get("threads"):
        import torch

        torch.set_num_threads(int(cfg.threads))
    registry = TaskRegistry(
        cfg.backbone,
        str(device),
        dtype,
        int(cfg.seed),
        str(cfg.compile),
        cfg.get("pad_to_multiple_of"),
        graphs=bool(cfg.graphs),
        max_shapes=int(cfg.max_shapes),
        eager_buckets=eager,
    )
    for name, path in prompts.items():
        registry.load(name, path)
    b = cfg.batching
    if cfg.get("warmup_shapes", True):
        registry.warm(int(b.max_batch))
    batcher = Batcher(
        registry, int(b.max_batch), float(b.max_wait_ms), bool(b.mixed), bool(b.get("tokenize_ahead", True))
    )
    return registry, batcher, create_app(registry, batcher, bool(cfg.allow_task_changes))


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
def hydra_main(cfg: DictConfig) -> None:
    import uvicorn

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        level=str(cfg.log_level).upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    if cfg.get("gil_switch_ms"):
        sys.setswitchinterval(float(cfg.gil_switch_ms) / 1000)
    try:
        _, batcher, app = build_server(cfg)
    except DeepPromptError as err:
        if debug_enabled():
            raise
        if isinstance(err, ConfigError):
            from deepprompt.config.sources import with_source

            err = with_source(err, cfg)  # where a refused value was set: the override, or the file and line
        print(f"deepprompt-serve: error: {err}", file=sys.stderr)
        sys.exit(1)
    try:
        uvicorn.run(app, host=str(cfg.host), port=int(cfg.port), log_level=str(cfg.log_level))
    finally:
        batcher.stop()


def main() -> None:
    """Console entry point; a mistake on the command line is one line (``deepprompt.config.cli_errors``)."""
    from deepprompt.config.cli_errors import install
    from deepprompt.utils.quiet import quiet_third_party

    install("deepprompt-serve")
    quiet_third_party()
    hydra_main()


if __name__ == "__main__":
    main()
