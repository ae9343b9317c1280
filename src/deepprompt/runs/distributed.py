"""Data-parallel training under Hydra: the DDP strategy of ``trainer=ddp``, rank-zero writes, clean multiruns.

``HydraDDPStrategy`` is Lightning's ``DDPStrategy`` with three corrections for this project:

1. **Children re-run the Hydra job, not the command line.** Lightning's subprocess launcher re-invokes
   ``sys.argv`` with ``hydra.run.dir=...``; under ``-m`` that argv is the whole sweep (each child would run
   every job of the sweep in a new sweep folder), and inside a submitit job ``__main__`` is submitit's own
   module. :func:`child_command` rebuilds the command from the running job instead: the entry module, the
   job's own overrides (``hydra.overrides.task``, e.g. ``method.prompt.length=8`` and not ``=2,8``),
   ``hydra.mode=RUN``, ``hydra.run.dir=<this job's folder>`` and ``hydra.output_subdir=null`` (``.hydra/``
   is the launching process's). Each child logs to ``train_rank<r>.log`` next to ``train.log``.
2. **Every validation example counts once.** Under DDP Lightning gives an evaluation loader a
   ``DistributedSampler``, which pads the set to a multiple of the world size by repeating examples
   (16 + 1 examples on 2 ranks: one is scored twice). :meth:`HydraDDPStrategy.process_dataloader` swaps
   that sampler for Lightning's ``UnrepeatedDistributedSampler`` (shards of ``ceil``/``floor`` size,
   no repeats) for validation and test, so torchmetrics' synchronised ``compute()`` sees each example
   exactly once: ``val/*`` equals the single-process value. Safe because evaluation runs without gradients
   (DDP syncs no buffers after the first batch, and our metrics sync only in ``compute()``); every rank
   must hold at least one evaluation example. Training keeps the (padded) ``DistributedSampler`` or our
   ``LengthGroupedSampler``: training needs equal step counts on every rank.
3. **One process, many DDP jobs.** Lightning leaves the process group and ``MASTER_PORT``/``LOCAL_RANK``/...
   set in the launching process after ``fit``; the next job of a basic-launcher multirun would then think
   its processes were created externally and reuse a dead group (a non-DDP job would sync its torchmetrics
   over it). In a multirun, :meth:`HydraDDPStrategy.teardown` destroys the group and restores the
   environment, and when the next job builds a DDP strategy :func:`release_previous_job` first waits for the
   previous job's children (their memory is free again).

Batch size semantics: ``data.batch_size`` is per device; the global batch is
``batch_size x devices x num_nodes`` (see ``conf/trainer/ddp.yaml`` for learning-rate scaling).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers import subprocess_script as _pl_launcher
from lightning.pytorch.trainer.states import RunningStage
from lightning.pytorch.utilities.data import _update_dataloader
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader, DistributedSampler

from deepprompt.errors import ConfigError

log = logging.getLogger(__name__)

# Environment variables Lightning's subprocess launcher sets in the launching process.
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
EVAL_STAGES = (RunningStage.SANITY_CHECKING, RunningStage.VALIDATING, RunningStage.TESTING)
_FILTERED_HYDRA_OVERRIDES = ("hydra.mode=", "hydra.run.dir=", "hydra.output_subdir=", "hydra.job.name=")


# -- ranks -----------------------------------------------------------------------------------------------
def global_rank() -> int:
    """This process's global rank: the process group's if one is up, else Lightning's view (env based:
    ``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID``; set to the true global rank once a strategy is set up)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def is_global_zero() -> bool:
    return global_rank() == 0


def rank_zero_writer(
    write: Callable[[Path, dict[str, Any]], Any],
) -> Callable[[Path, dict[str, Any]], Any]:
    """Wrap a ``metrics.json`` writer so that only global rank 0 records a run.

    Another rank records only a failure, and only where no finished record exists: Lightning kills the
    launching process when a child dies, so a child's failure would otherwise leave no trace.
    """

    def rank_zero_write(run_dir: Path, summary: dict[str, Any]) -> Any:
        if is_global_zero():
            return write(run_dir, summary)
        if summary.get("status") == "failed" and not _has_finished_record(Path(run_dir)):
            return write(run_dir, {**summary, "rank": global_rank()})
        return None

    return rank_zero_write


def _has_finished_record(run_dir: Path) -> bool:
    import json

    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status") == "finished"
    except (OSError, ValueError):
        return False


# -- the children's command line ------------------------------------------------------------------------
def _quote(value: str) -> str:
    """A Hydra override value quoted so that '=', ',', spaces ... in paths survive the override grammar."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _entry_command(entry_module: str | None, job_name: str) -> list[str]:
    """How to start this Hydra app again: the given module, else ``__main__``'s, else ``deepprompt.<job>``."""
    if entry_module:
        return [sys.executable, "-m", entry_module]
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and not spec.name.startswith("submitit"):
        return [sys.executable, "-m", spec.name]
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if spec is None and script is not None and script.is_file() and "submitit" not in script.parts:
        return [sys.executable, str(script)]  # a console script such as .venv/bin/deepprompt-train
    return [sys.executable, "-m", f"deepprompt.{job_name}"]  # e.g. inside a submitit job


def child_command(local_rank: int, entry_module: str | None = None) -> tuple[list[str], str]:
    """``(command, cwd)`` that starts DDP process ``local_rank`` of the running Hydra job (see module doc)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hc = HydraConfig.get()
    run_dir = str(hc.runtime.output_dir)
    command = _entry_command(entry_module, hc.job.name)
    if hc.job.config_name:
        command.append(f"--config-name={hc.job.config_name}")
    for source in hc.runtime.config_sources:
        if source.provider == "command-line":
            command.append(f"--config-dir={source.path.removeprefix('file://')}")
    command += list(hc.overrides.task)
    command += [o for o in hc.overrides.hydra if not o.startswith(_FILTERED_HYDRA_OVERRIDES)]
    command += ["hydra.mode=RUN", f"hydra.run.dir={_quote(run_dir)}", "hydra.output_subdir=null"]
    handlers = hc.job_logging.get("handlers") if hc.job_logging else None
    if handlers and "file" in handlers and handlers.file.get("filename"):
        log_file = str(Path(run_dir) / f"train_rank{local_rank}.log")
        command.append(f"hydra.job_logging.handlers.file.filename={_quote(log_file)}")
    return command, get_original_cwd()


# -- launcher and strategy ---------------------------------------------------------------------------------
class _Launched:
    """What the last DDP launch in this process left behind (children, environment, Hydra job)."""

    procs: list = []
    env_before: dict[str, str | None] | None = None  # None: already restored
    job_dir: str | None = None


def _current_job_dir() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    return str(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def release_process_group() -> None:
    """Destroy this process's group and restore the launch environment (MASTER_PORT, LOCAL_RANK, ...)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    if _Launched.env_before is not None:
        for key, value in _Launched.env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _Launched.env_before = None
    rank_zero_only.rank = 0


def release_previous_job(timeout_s: float = 600.0) -> None:
    """Undo a previous Hydra job's DDP launch in this process (see module doc, point 3); a no-op otherwise.

    Waits for that job's children (their memory, GPU memory included, is then free for this job).
    """
    if not _Launched.procs or _Launched.job_dir == _current_job_dir():
        return
    for proc in _Launched.procs:
        try:
            proc.wait(timeout=timeout_s)
        except Exception:  # a hung child of a finished job must not block the sweep
            log.warning("DDP child %s of the previous job did not exit; killing it", proc.pid)
            proc.kill()
    release_process_group()
    _Launched.procs, _Launched.job_dir = [], None


class HydraJobLauncher(_pl_launcher._SubprocessScriptLauncher):
    """Lightning's subprocess launcher whose children run :func:`child_command`."""

    def __init__(self, *args: Any, entry_module: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entry_module = entry_module

    def _call_children_scripts(self) -> None:
        env_before = {key: os.environ.get(key) for key in LAUNCH_ENV}
        with mock.patch.object(
            _pl_launcher,
            "_hydra_subprocess_cmd",
            lambda local_rank: child_command(local_rank, self.entry_module),
        ):
            super()._call_children_scripts()
        _Launched.procs, _Launched.env_before, _Launched.job_dir = (
            list(self.procs),
            env_before,
            _current_job_dir(),
        )


class HydraDDPStrategy(DDPStrategy):
    """``DDPStrategy`` for Hydra jobs: correct children, exact evaluation, reusable process (module doc)."""

    def __init__(self, *args: Any, entry_module: str | None = None, **kwargs: Any) -> None:
        release_previous_job()
        super().__init__(*args, **kwargs)
        self.entry_module = entry_module

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _pl_launcher._SubprocessScriptLauncher:
            self._launcher = HydraJobLauncher(
                self.cluster_environment, self.num_processes, self.num_nodes, entry_module=self.entry_module
            )

    def teardown(self) -> None:
        super().teardown()
        # In a multirun the next job of this process may not be a DDP one (`trainer=ddp_cpu,cpu`): leave no
        # process group behind (torchmetrics would sync over it) and no LOCAL_RANK (Lightning would think its
        # processes were started externally). Single runs keep Lightning's behaviour (fit, then test, ...).
        if isinstance(self._launcher, HydraJobLauncher) and self._launcher.procs and _in_multirun():
            release_process_group()

    def process_dataloader(self, dataloader: object) -> object:
        dataloader = super().process_dataloader(dataloader)
        trainer = self.lightning_module.trainer if self.lightning_module is not None else None
        if trainer is None or trainer.state.stage not in EVAL_STAGES:
            return dataloader
        return unrepeated_eval_loader(dataloader, trainer.state.stage)


def unrepeated_eval_loader(dataloader: object, stage: RunningStage | None = None) -> object:
    """``dataloader`` with its padding ``DistributedSampler`` replaced by one that shards without repeats."""
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    sampler = getattr(dataloader, "sampler", None)
    if not isinstance(dataloader, DataLoader) or type(sampler) is not DistributedSampler:
        return dataloader
    if len(sampler.dataset) < sampler.num_replicas:
        raise ConfigError(
            f"the evaluation set has {len(sampler.dataset)} examples for {sampler.num_replicas} processes; "
            "every process needs at least one (use fewer devices or more evaluation examples)"
        )
    exact = UnrepeatedDistributedSampler(
        sampler.dataset,
        num_replicas=sampler.num_replicas,
        rank=sampler.rank,
        shuffle=sampler.shuffle,
        seed=sampler.seed,
    )
    return _update_dataloader(dataloader, exact, mode=stage)
