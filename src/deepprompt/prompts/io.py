"""Prompt-only checkpoints: the folded prefix (and the task head, if any) in safetensors plus a JSON config.

Uniform prompts in the joint layout are stored as one tensor ``prefix`` ``(m, L_p * 2 * kv_width)`` (format
v1, as before); the split layout (per-layer lengths or ``split_layers``) as ``prefix.<layer>`` tensors
``(m_l, 2 * kv_width)`` (format v2), with the per-layer lengths in ``prompt_config.json`` (``lengths``).
Either file loads into either layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from deepprompt.errors import PromptMismatchError
from deepprompt.prompts.config import DeepPromptConfig
from deepprompt.prompts.encoder import PromptEncoder
from deepprompt.prompts.geometry import BackboneGeometry
from deepprompt.prompts.model import DeepPromptModel, add_deep_prompts
from deepprompt.utils.atomic import atomic_write

WEIGHTS = "prompts.safetensors"
CONFIG = "prompt_config.json"
# hidden_size too: prompts (and a head) trained on one width mean nothing on another, even where the prefix
# shape num_kv_heads * head_dim happens to agree (GQA models, explicit head_dim).
_GEOMETRY_CHECKED = ("num_layers", "hidden_size", "num_kv_heads", "head_dim")


def save_prompts(
    model: DeepPromptModel, directory: str | os.PathLike, extra: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write the prompts (MLP folded away), the model's head and ``extra`` tensors into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    encoder = model.prompt_encoder
    with torch.no_grad():
        if encoder.split:
            tensors = {
                f"prefix.{layer}": t.detach().float().contiguous()
                for layer, t in encoder.layer_tensors().items()
            }
        else:
            tensors = {"prefix": encoder.flat().detach().float().contiguous()}
    tensors |= {f"head.{k}": v.detach().contiguous() for k, v in model.head_state_dict().items()}
    tensors |= {f"extra.{k}": v.detach().contiguous() for k, v in (extra or {}).items()}
    meta = {
        "prompt": model.config.to_dict(),
        "layer_ids": model.prompt_encoder.layer_ids,
        "geometry": model.geometry.to_dict(),
        "head_names": model.head_names,
        "lengths": {str(layer): m for layer, m in encoder.lengths.items()},
        "format": "deepprompt-prompts-v2" if encoder.split else "deepprompt-prompts-v1",
    }
    atomic_write(directory / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    atomic_write(directory / CONFIG, lambda p: p.write_text(json.dumps(meta, indent=2)))
    return directory


def read_prompt_config(directory: str | os.PathLike) -> dict:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"no saved prompts in {directory}: {CONFIG} is missing")
    return json.loads(path.read_text())


def read_saved_prompts(directory: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(prompt_config.json, tensors)`` of an export."""
    meta = read_prompt_config(directory)
    try:
        tensors = load_file(str(Path(directory) / WEIGHTS))
    except Exception as err:  # safetensors raises its own error types for truncated/corrupt files
        raise PromptMismatchError(
            f"cannot read {Path(directory) / WEIGHTS}: {err} (truncated or corrupt file?)"
        ) from err
    return meta, tensors


def saved_prompt_config(meta: dict) -> DeepPromptConfig:
    """The config of the saved prompts (already folded: ``reparam`` none)."""
    return DeepPromptConfig(**{**meta["prompt"], "reparam": "none"})


def check_geometry(meta: dict, backbone_config, directory) -> None:
    have = BackboneGeometry.from_config(backbone_config)
    saved = meta["geometry"]
    diffs = [
        f"{k}: saved {saved[k]}, backbone {getattr(have, k)}"
        for k in _GEOMETRY_CHECKED
        if saved[k] != getattr(have, k)
    ]
    if diffs:
        raise PromptMismatchError(
            f"prompts in {directory} were trained for a {saved['model_type']} backbone of another shape ("
            + "; ".join(diffs)
            + f"); this backbone is a {have.model_type}"
        )


def fill_encoder(encoder: PromptEncoder, meta: dict, tensors: dict[str, torch.Tensor], directory) -> None:
    """Put saved prefixes into a folded ``encoder`` of the same layers and lengths, or fail naming the difference."""
    if encoder.layer_ids != meta["layer_ids"]:
        # Same count of layers gives the same tensor shape: without this check the prompts would silently
        # land on the wrong layers.
        raise PromptMismatchError(
            f"prompts in {directory} are for layers {meta['layer_ids']}, the model prompts layers "
            f"{encoder.layer_ids}"
        )
    if (
        "prefix" in tensors
        and not encoder.split
        and tuple(encoder.prefix.shape) != tuple(tensors["prefix"].shape)
    ):
        raise PromptMismatchError(
            f"prompt tensor in {directory} has shape {tuple(tensors['prefix'].shape)}, the model expects "
            f"{tuple(encoder.prefix.shape)} (different length or layers)"
        )
    saved_layers = _saved_layer_tensors(tensors, meta, encoder.geometry.kv_width)
    expected = {layer: tuple(t.shape) for layer, t in encoder.layer_tensors().items()}
    got = {layer: tuple(t.shape) for layer, t in saved_layers.items()}
    if got != expected:
        raise PromptMismatchError(
            f"prompt tensors in {directory} have per-layer shapes {got}, the model expects {expected} "
            "(different length or layers)"
        )
    encoder.set_layer_tensors(saved_layers)


def extra_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("extra."): v for k, v in tensors.items() if k.startswith("extra.")}


def load_prompts(model, directory: str | os.PathLike) -> tuple[DeepPromptModel, dict[str, torch.Tensor]]:
    """Put saved prompts (and head) onto ``model``: a fresh backbone, or a `DeepPromptModel` to fill.

    Returns the prompted model (MLP already folded) and the ``extra`` tensors saved beside the prompts.
    """
    meta, tensors = read_saved_prompts(directory)
    config = saved_prompt_config(meta)
    target = model.model if isinstance(model, DeepPromptModel) else model
    check_geometry(meta, target.config, directory)
    if not isinstance(model, DeepPromptModel):
        model = add_deep_prompts(model, config, train_head=bool(meta["head_names"]))
    model.fold()
    fill_encoder(model.prompt_encoder, meta, tensors, directory)
    head = {k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")}
    for name in meta["head_names"]:
        sub = {k.removeprefix(f"{name}."): v for k, v in head.items() if k.startswith(f"{name}.")}
        try:
            getattr(model.model, name).load_state_dict(sub)
        except (AttributeError, RuntimeError) as err:
            raise PromptMismatchError(
                f"head {name!r} saved in {directory} does not fit this model: {err}"
            ) from err
    return model, extra_tensors(tensors)


def _saved_layer_tensors(
    tensors: dict[str, torch.Tensor], meta: dict, kv_width: int
) -> dict[int, torch.Tensor]:
    """``{layer: (m_l, 2 * kv_width)}`` from either file format."""
    if "prefix" in tensors:  # v1: one joint tensor (m, L_p * 2 * kv_width)
        flat, w = tensors["prefix"], 2 * kv_width
        return {layer: flat[:, i * w : (i + 1) * w] for i, layer in enumerate(meta["layer_ids"])}
    return {int(k.removeprefix("prefix.")): v for k, v in tensors.items() if k.startswith("prefix.")}
