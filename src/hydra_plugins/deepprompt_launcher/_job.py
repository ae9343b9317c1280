"""One job of ``hydra/launcher=parallel``, in its own process forked from the preloaded server.

The launching process sends a :class:`JobSpec`; the job takes the launching process's environment with its own
``CUDA_VISIBLE_DEVICES`` before anything can touch CUDA, composes its config, runs Hydra's ``run_job`` and
sends back the ``JobReturn``. Messages on the pipe: ``("started", {...})`` once the job's folder is known, then
``("result", JobReturn)`` or ``("exit", code)`` when the task called ``sys.exit`` with that code.
"""

from __future__ import annotations

import ctypes
import gc
import inspect
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from dataclasses import dataclass
from typing import Any

import cloudpickle
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from deepprompt.errors import ConfigError
from hydra_plugins.deepprompt_launcher import _server
from hydra_plugins.deepprompt_launcher._slots import check_job

STARTUP_ORIGIN = "forkserver"  # metrics.json's startup_from for a job forked from the preloaded server


@dataclass
class JobSpec:
    idx: int
    overrides: list[str]
    # the job's GPUs ([] hides them; None: CUDA_VISIBLE_DEVICES as the launcher had it)
    slot: list[str] | None
    gpus_per_job: int
    env: dict[str, str]  # the launching process's environment
    start_method: str  # the launching process's multiprocessing start method, for the job's own processes
    task: tuple[str, str]  # (module, qualified name) of the task function
    hydra_context: Any
    config: DictConfig
    singleton_state: dict


_NOT_FOUND = (
    "hydra/launcher=parallel: {} is not the task function Hydra runs; decorate a function defined at the "
    "top of a module with @hydra.main"
)


class TaskReferenceError(ConfigError):
    """The task function cannot be found again by module and name in a job process."""


def task_reference(task_function: Any) -> tuple[str, str]:
    """``(module, qualname)`` under which a job process finds ``task_function`` again (checked here).

    ``@hydra.main`` hands the launcher the undecorated function, while its module holds the decorated one:
    :func:`resolve_task` unwraps ``__wrapped__``. An app run as ``python -m pkg.app`` has ``__main__`` as its
    module: the job imports ``pkg.app`` by name (preloaded: ``deepprompt.train``); a script's ``__main__`` is
    re-created in the job from the same file by multiprocessing's start-up."""
    module, qualname = getattr(task_function, "__module__", None), getattr(task_function, "__qualname__", "")
    if not module or "<" in qualname:
        raise TaskReferenceError(
            f"hydra/launcher=parallel needs a module-level task function; {task_function!r} is not one: "
            "decorate a function defined at the top of a module with @hydra.main"
        )
    if module == "__main__":
        main = sys.modules["__main__"]
        if _lookup(main, qualname) is not task_function:
            raise TaskReferenceError(_NOT_FOUND.format(f"__main__.{qualname}"))
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name  # `python -m pkg.app`: the job imports pkg.app (preloaded, or cheap to import)
    elif module not in sys.modules or _lookup(sys.modules[module], qualname) is not task_function:
        raise TaskReferenceError(_NOT_FOUND.format(f"{module}.{qualname}"))
    return module, qualname


def _lookup(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return inspect.unwrap(obj) if callable(obj) else obj


def resolve_task(ref: tuple[str, str]) -> Any:
    import importlib

    module, qualname = ref
    found = _lookup(importlib.import_module(module), qualname)
    if not callable(found):
        raise TaskReferenceError(f"hydra/launcher=parallel: no function {qualname} in module {module}")
    return found


def _die_with_parent() -> None:
    """SIGTERM this job when the server exits (it does when the launching process dies): no orphaned jobs."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


def _sendable(ret: JobReturn) -> bytes:
    """The job's return, cloudpickled (its configs hold classes that Hydra's plugin scan imported a second
    time, which plain pickle refuses); what still does not pickle is replaced by a description of it."""
    try:
        return cloudpickle.dumps(ret)
    except Exception:  # noqa: BLE001 - the configs or the value: send what can be sent
        pass
    ret.cfg = ret.hydra_cfg = None
    try:
        return cloudpickle.dumps(ret)
    except Exception as err:  # noqa: BLE001 - the task's return value or exception
        value = ret._return_value
        if ret.status == JobStatus.FAILED and isinstance(value, BaseException):
            ret.return_value = RuntimeError(f"{type(value).__name__}: {value}")
        else:
            ret.status = JobStatus.FAILED
            ret.return_value = RuntimeError(
                f"the job's return value {value!r} cannot be sent to the launcher ({type(err).__name__}: {err})"
            )
    return cloudpickle.dumps(ret)


def main(payload: bytes, conn: Any) -> None:
    """The job process's entry (multiprocessing's target): ``payload`` is the :class:`JobSpec`, cloudpickled."""
    spec: JobSpec = pickle.loads(payload)
    os.setpgid(0, 0)  # the launcher forwards Ctrl-C and SIGTERM itself, once
    _die_with_parent()
    os.environ.clear()
    os.environ.update(spec.env)
    if spec.slot is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(spec.slot)
    # multiprocessing made the forkserver this process's start method: its data loader workers would each come
    # from a new, bare server (importing torch again); they fork from the job, as in a process of its own
    multiprocessing.set_start_method(spec.start_method, force=True)
    startup = sys.modules.get("deepprompt.runs.startup")
    if startup is not None:
        startup.clock.forked(STARTUP_ORIGIN)
    try:
        ret = _run(spec, conn)
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
        conn.send(("exit", code))
        raise
    gc.freeze()  # the job is over: no collection walks the objects it shares with the server
    conn.send(("result", _sendable(ret)))
    conn.close()


def _run(spec: JobSpec, conn: Any) -> JobReturn:
    Singleton.set_state(spec.singleton_state)
    setup_globals()
    started = {
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "server": dict(_server.INFO),
        "output_dir": None,
    }
    try:
        config = spec.hydra_context.config_loader.load_sweep_config(spec.config, list(spec.overrides))
        with open_dict(config):
            config.hydra.job.id = f"{os.getpid()}_{spec.idx}"
            config.hydra.job.num = spec.idx
        started["output_dir"] = os.path.abspath(
            os.path.join(str(config.hydra.sweep.dir), str(OmegaConf.select(config, "hydra.sweep.subdir")))
        )
        trainer = config.get("trainer") if isinstance(config.get("trainer"), DictConfig) else {}
        check_job(trainer, spec.slot, spec.gpus_per_job)
    except Exception as err:  # noqa: BLE001 - a bad override or setting fails this job, as Hydra would
        conn.send(("started", started))
        return JobReturn(overrides=list(spec.overrides), status=JobStatus.FAILED, _return_value=err)
    conn.send(("started", started))
    ret = run_job(
        hydra_context=spec.hydra_context,
        task_function=resolve_task(spec.task),
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    if ret.status == JobStatus.FAILED and isinstance(ret._return_value, BaseException):
        _note_traceback(ret._return_value, spec.idx)
    return ret


def _note_traceback(err: BaseException, idx: int) -> None:
    """The job's traceback, as a note of the exception: the launching process re-raises it without its frames."""
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip()
    note = f"in job #{idx} (pid {os.getpid()}):\n{text}"
    if hasattr(err, "add_note"):  # Python 3.11+
        err.add_note(note)
