"""The ``logger`` group: build each logger, start W&B early (falling back to offline mode), end its run.

W&B starts its run lazily (first ``log_hyperparams``): `build_loggers` starts it at once, so that a missing API
key, no network or a bad ``WANDB_BASE_URL`` costs a warning (the run syncs later with ``wandb sync``), not the
run. In a multirun the jobs of one sweep share a W&B group; `finish_wandb` closes a job's run so that the
next job of the sweep does not log into it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from deepprompt.utils.instantiate import build

log = logging.getLogger(__name__)


def build_loggers(cfg: DictConfig | None) -> list[Any]:
    """The ``logger`` group; a W&B logger that cannot start online falls back to offline mode with a warning."""
    if not cfg:
        return []
    loggers = []
    for name, node in cfg.items():
        if node is None:
            continue
        is_wandb = str(node.get("_target_", "")).endswith("WandbLogger")
        extra = {"group": sweep_group} if is_wandb and (sweep_group := _sweep_group()) else {}
        logger = build(node, f"logger.{name}", **extra)
        if type(logger).__name__ == "WandbLogger" and os.environ.get("WANDB_MODE") not in (
            "offline",
            "disabled",
        ):
            try:
                logger.experiment  # noqa: B018 - starts the W&B run
            except Exception as err:  # wandb raises many types (UsageError, CommError, timeouts)
                log.warning(
                    "W&B could not start online (%s: %s); falling back to offline mode "
                    "(sync later with `wandb sync %s`)",
                    type(err).__name__,
                    str(err).splitlines()[0] if str(err) else "",
                    node.get("save_dir", "."),
                )
                os.environ["WANDB_MODE"] = "offline"
                finish_wandb()
                logger = build(node, f"logger.{name}", offline=True, **extra)
        loggers.append(logger)
    return loggers


def _sweep_group() -> str | None:
    """The sweep folder relative to the outputs root (``<task_name>/multiruns/<time>``) in a multirun, so that
    a sweep's W&B runs share one group; None for a single run (the config's ``group`` stays)."""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return "/".join(Path(hc.sweep.dir).parts[-3:])


def finish_wandb(exit_code: int = 1) -> None:
    """End the W&B run of this job, if any: a multirun's next job would otherwise log into it."""
    if "wandb" not in sys.modules:
        return
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)
        wandb.teardown()  # forget the settings (mode=online) cached by the failed start
    except Exception:  # a half-started run: nothing more to clean
        pass
