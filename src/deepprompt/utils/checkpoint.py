"""Read a Lightning checkpoint file without running code from it: the one loader every command uses.

``torch.load`` unpickles, and a pickle can call any function it names (a crafted ``.ckpt`` runs code on load).
Checkpoints are therefore read with ``weights_only=True``: tensors, containers and numbers only, plus the few
types allow-listed in :data:`SAFE_GLOBALS`. A file asking for anything else is refused, naming what it asked
for; a truncated or foreign file is reported as unreadable. Both are :class:`CheckpointError` naming the path.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Any

import torch

from deepprompt.errors import CheckpointError

# Types beyond torch's own weights-only set (tensors, storages, OrderedDict, numbers, str, containers) that a
# deepprompt checkpoint holds. None so far: the modules save their hyper-parameters as plain dicts and lists, and
# the loops', optimizer's, scheduler's and callbacks' states are tensors and numbers. A type added here must not
# run code when rebuilt (no callables, no classes with side effects in __setstate__/__reduce__).
SAFE_GLOBALS: tuple[Any, ...] = ()

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path`` as a dict; :class:`CheckpointError` (one line, naming ``path``) otherwise."""
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except pickle.UnpicklingError as err:
        asked = _GLOBAL.search(str(err))
        what = f" (it asks to load {asked.group(1)})" if asked else ""
        raise CheckpointError(
            f"{path}: not a deepprompt checkpoint or unsafe content{what}; only files written by "
            "deepprompt-train are read"
        ) from None
    except Exception as err:  # truncated or foreign bytes; weights-only unpickling raises many types for them
        size = os.path.getsize(path) if os.path.exists(path) else 0
        first = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({size} bytes; truncated or corrupt: {type(err).__name__}"
            f"{': ' + first if first else ''})"
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise CheckpointError(f"{path}: not a deepprompt checkpoint (no 'state_dict' in it)")
    return state
