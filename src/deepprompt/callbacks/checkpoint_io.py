"""Checkpoint files written atomically (temp file, then rename) and read safely, with a clear error when corrupt."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from deepprompt.errors import CheckpointError
from deepprompt.utils.atomic import atomic_write
from deepprompt.utils.checkpoint import load_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves go to ``.<name>.tmp<pid>`` first and are renamed onto the target.

    A kill (SIGKILL, out of memory, pre-emption) in the middle of a save leaves the previous ``last.ckpt``
    intact instead of half a file. Loading goes through :func:`deepprompt.utils.checkpoint.load_checkpoint`
    (weights only: a crafted file cannot run code); a truncated, foreign or unsafe file raises
    :class:`CheckpointError`.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote file systems: rename is not atomic there anyway
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_write(Path(path), lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(checkpoint, tmp))

    @override
    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None):
        if "://" in str(path):  # remote file systems: Lightning's own reader, still weights only
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        try:  # never unpickles code, whatever weights_only says
            return load_checkpoint(path, map_location=map_location)
        except CheckpointError as err:
            raise CheckpointError(
                f"{err}; delete it or pass another ckpt_path (resume=never starts over)"
            ) from None
