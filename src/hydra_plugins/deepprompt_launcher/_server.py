"""The preload of ``hydra/launcher=parallel``'s server: the only module the forkserver is told to import.

It imports the modules named in ``DEEPPROMPT_LAUNCHER_PRELOAD`` (comma-separated) with Python's cyclic collector
paused, records how long that took from the server's own start and which names failed, checks that the imports
did not initialise CUDA, and freezes everything that exists then out of the collector's walks: every job is
forked from this state, and a frozen object's pages stay shared with the server (copy-on-write) where a
collection in the job would otherwise write to them. A forked job reads ``INFO`` and reports it.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
import time
import traceback
import warnings

PRELOAD_ENV = "DEEPPROMPT_LAUNCHER_PRELOAD"
INFO: dict = {}


def _process_start() -> float:
    try:
        from deepprompt.runs.startup import process_start_time
    except ImportError:
        return time.time()
    return process_start_time()


def preload(names: list[str]) -> dict:
    """Import ``names``; returns what a job reports of it (seconds, failures, CUDA state, module count)."""
    gc.disable()
    interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C for the launcher: it stops the jobs
    began = time.time()
    failed: dict[str, str] = {}
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as err:  # noqa: BLE001 - a broken module is reported, the server still serves
            failed[name] = "".join(traceback.format_exception_only(type(err), err)).strip()
    torch = sys.modules.get("torch")
    cuda_initialized = bool(torch is not None and torch.cuda.is_initialized())
    info = {
        "pid": os.getpid(),
        "preload_s": round(time.time() - began, 3),
        "since_start_s": round(time.time() - _process_start(), 3),
        "failed": failed,
        "cuda_initialized": cuda_initialized,
        "modules": len(sys.modules),
    }
    gc.freeze()
    gc.enable()
    signal.signal(signal.SIGINT, interrupt)  # the server ignores it from here on; its jobs do not
    return info


if PRELOAD_ENV in os.environ:
    # each job re-creates the launching process's __main__ (``python -m deepprompt.train``) from its module,
    # which the preload imported already: runpy's warning about it says nothing useful here
    warnings.filterwarnings(
        "ignore", message=".*found in sys.modules after import of package", category=RuntimeWarning
    )  # in the server (the launcher sets it for the server's start only)
    INFO.update(preload([n for n in os.environ.pop(PRELOAD_ENV).split(",") if n]))
