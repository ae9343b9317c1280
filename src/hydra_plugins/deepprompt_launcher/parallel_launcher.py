"""``hydra/launcher=parallel``: every job of a sweep in its own new process, forked from a server that has
imported torch, transformers and Lightning once, several jobs at once, each on its own GPUs.

Hydra's basic launcher runs a sweep's jobs one after another in one process; the submitit launchers start a
new Python for every job, which imports everything again (seconds per job). Here a job is still a new process
(its own globals, CUDA context and crash) but starts from the server's preloaded modules (Python's
``forkserver``). Jobs beyond ``n_jobs`` wait for a free slot; the returns come back in job order.

Hydra imports this module at every start of every app (it scans the plugins): it imports no torch, and it
defines no dataclass (Hydra's scan executes it outside ``sys.modules``): the settings are in :mod:`._config`.
"""

import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.deepprompt_launcher import _slots
from hydra_plugins.deepprompt_launcher._config import DEFAULT_PRELOAD

log = logging.getLogger(__name__)


class ParallelLauncher(Launcher):
    def __init__(
        self, n_jobs: int | None = None, gpus_per_job: int = 1, preload: Any = DEFAULT_PRELOAD
    ) -> None:
        self.n_jobs, self.gpus_per_job = n_jobs, int(gpus_per_job)
        self.preload = [str(name) for name in preload]
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        from hydra_plugins.deepprompt_launcher import _job, _pool  # not at Hydra's plugin scan of every app

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        slots = _slots.plan_slots(_slots.visible_gpus(), self.gpus_per_job, self.n_jobs)
        trainer = self.config.get("trainer") if isinstance(self.config.get("trainer"), DictConfig) else {}
        # before any job starts (a job that sweeps trainer.devices is checked again in its process)
        _slots.check_job(trainer, slots[0], self.gpus_per_job)
        task = _job.task_reference(self.task_function)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        # the jobs run elsewhere: this process's Hydra config is the sweep's (e.g. for a table of its jobs)
        HydraConfig.instance().set_config(self.config)
        log.info(
            "Launching %d jobs, %d at a time, each in a new process forked from a preloaded server%s",
            len(job_overrides),
            len(slots),
            _slots.describe_slots(slots),
        )
        specs = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            specs.append((idx, list(overrides)))
        ctx = _pool.start_server(self.preload)
        pool = _pool.Pool(self, ctx, slots, task)
        returns = pool.run(specs)
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns

    def job_spec(self, idx: int, overrides: list[str], slot: list[str] | None, task: tuple[str, str]):
        from hydra_plugins.deepprompt_launcher import _job

        return _job.JobSpec(
            idx=idx,
            overrides=overrides,
            slot=slot,
            gpus_per_job=self.gpus_per_job,
            env=dict(os.environ),
            start_method=multiprocessing.get_start_method(),
            task=task,
            hydra_context=self.hydra_context,
            config=self.config,
            singleton_state=Singleton.get_state(),
        )
