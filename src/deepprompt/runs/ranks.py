"""Is this process global rank 0? Asked at start-up (the run-folder lock, writing ``metrics.json``), where
importing Lightning just to know would cost seconds: the environment answers until Lightning is loaded."""

from __future__ import annotations

import os
import sys


def is_global_zero() -> bool:
    """Rank 0 of a DDP run (or no DDP). Before Lightning is imported the rank comes from the environment, as
    Lightning reads it (``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID``, ``JSM_NAMESPACE_RANK``): a run that fails its
    start-up checks never pays for the Lightning import."""
    if "lightning" in sys.modules:
        from deepprompt.runs.distributed import global_rank

        return global_rank() == 0
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key]) == 0
    return True
