"""Start-up checks of ``deepprompt-train`` that fail in one line before anything slow (training, downloads)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from deepprompt.errors import ConfigError


def check_positions(cfg: DictConfig, module: Any) -> None:
    """``data.max_seq_length`` must fit the backbone's position embeddings: fail now, not at the first long batch."""
    backbone = getattr(module, "_backbone", None)
    config = getattr(backbone(), "config", None) if callable(backbone) else None
    positions = getattr(config, "max_position_embeddings", None)
    length = cfg.data.get("max_seq_length")
    if positions is None or length is None:
        return
    # RoBERTa-style models number positions from padding_idx + 1 (514 embeddings for 512 tokens)
    offset = (
        (config.pad_token_id or 0) + 1 if config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
    )
    if length > positions - offset:
        raise ConfigError(
            f"data.max_seq_length={length} exceeds what backbone {cfg.backbone.name} ({config.model_type}) can "
            f"embed: max_position_embeddings={positions}{f' minus {offset}' if offset else ''}; "
            f"set data.max_seq_length<={positions - offset}"
        )


def check_output_root() -> None:
    """Fail with one line when the output root (``DEEPPROMPT_OUTPUT_DIR``) cannot be written, before Hydra tries."""
    root = Path(os.environ.get("DEEPPROMPT_OUTPUT_DIR") or "outputs")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as err:
        print(
            f"deepprompt: error: cannot write run outputs under {root} (DEEPPROMPT_OUTPUT_DIR): "
            f"{err.strerror or err}; point DEEPPROMPT_OUTPUT_DIR at a writable folder",
            file=sys.stderr,
        )
        sys.exit(1)
