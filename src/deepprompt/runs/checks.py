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


def check_output_root(argv: list[str] | None = None) -> None:
    """Fail with one line when the run outputs cannot be written, before Hydra tries (it would raise a traceback).

    Checks the output root (``DEEPPROMPT_OUTPUT_DIR``) and a run or sweep folder given on the command line
    (``hydra.run.dir=...``, ``hydra.sweep.dir=...``; values with interpolations are left to Hydra).
    """
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
    for arg in sys.argv[1:] if argv is None else argv:
        key, sep, value = arg.partition("=")
        if (
            not sep
            or key.lstrip("+~") not in ("hydra.run.dir", "hydra.sweep.dir")
            or not value
            or "${" in value
        ):
            continue
        if reason := _unwritable(Path(value)):
            print(
                f"deepprompt: error: cannot write the run folder {value} ({key.lstrip('+~')}): {reason}; "
                "choose a writable folder",
                file=sys.stderr,
            )
            sys.exit(1)


def _unwritable(folder: Path) -> str | None:
    """Why ``folder`` could not be created or written (creating nothing), or None."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = getattr(os, "ST_RDONLY", 1) & os.statvfs(existing).f_flag
        return f"{existing} is on a read-only file system" if read_only else f"{existing} is not writable"
    return None
