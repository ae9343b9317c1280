"""A small Hydra app for the tests of ``hydra/launcher=parallel``: no torch, so its server preloads in a blink.

``+action=`` says what a job does: ``ok`` (return ``value``), ``raise``, ``kill`` (SIGKILL itself), ``exit``
(``sys.exit(3)``) or ``sleep`` (wait to be stopped). Every job first writes ``job.json`` into its folder: its
pid, its parent's (the server), its ``CUDA_VISIBLE_DEVICES``, its multiprocessing start method and what the
server reported of its preload.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def app(cfg: DictConfig) -> float:
    server = sys.modules.get("hydra_plugins.deepprompt_launcher._server")
    record = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "marker": os.environ.get("PARALLEL_APP_MARKER"),
        "server": dict(server.INFO) if server else None,
        "start_method": multiprocessing.get_start_method(allow_none=True),
    }
    folder = Path(HydraConfig.get().runtime.output_dir)
    (folder / "job.json").write_text(json.dumps(record))
    action = cfg.get("action", "ok")
    if action == "raise":
        raise ValueError("this job was told to fail")
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "exit":
        sys.exit(3)
    if action == "sleep":
        time.sleep(120)
    return float(cfg.get("value", 0))


if __name__ == "__main__":
    app()
