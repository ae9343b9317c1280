"""Checkpoint files written atomically (temp file, then rename) and read with a clear error when corrupt."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from deepprompt.errors import CheckpointError
from deepprompt.utils.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves go to ``.<name>.tmp<pid>`` first and are renamed onto the target.

    A kill (SIGKILL, out of memory, pre-emption) in the middle of a save leaves the previous ``last.ckpt``
    intact instead of half a file. Loading a truncated or foreign file raises :class:`CheckpointError`.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote file systems: rename is not atomic there anyway
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_write(Path(path), lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(checkpoint, tmp))

    @override
    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None):
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except FileNotFoundError:
            raise
        except (
            RuntimeError,
            EOFError,
            pickle.UnpicklingError,
            zipfile.BadZipFile,
            OSError,
            ValueError,
        ) as err:
            size = os.path.getsize(path) if os.path.exists(path) else 0
            raise CheckpointError(
                f"{path}: not a readable checkpoint ({size} bytes; truncated or corrupt: {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); delete it or pass another ckpt_path "
                "(resume=never starts over)"
            ) from err
