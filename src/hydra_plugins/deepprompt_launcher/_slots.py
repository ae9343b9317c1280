"""Which GPUs each job of ``hydra/launcher=parallel`` gets: pure functions, no CUDA.

A slot is the list of GPU identifiers one running job sees (its ``CUDA_VISIBLE_DEVICES``); the slots of a
sweep are disjoint slices of the GPUs the launching process may use.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from deepprompt.errors import ConfigError
from deepprompt.runs.devices import requested_devices

_ENTRY = re.compile(r"^(\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+)$")


class SlotError(ConfigError):
    """The launcher's GPU settings cannot be met: the message names the keys and the fix."""


def parse_visible_devices(value: str) -> list[str]:
    """The GPUs a ``CUDA_VISIBLE_DEVICES`` value lets a process see, as CUDA reads it: comma-separated indices
    or ``GPU-``/``MIG-`` UUIDs, up to the first entry that is none of these (``-1`` or an empty value hides
    every GPU)."""
    gpus: list[str] = []
    for entry in value.split(","):
        entry = entry.strip()
        if not _ENTRY.match(entry):
            break
        gpus.append(entry)
    return gpus


def count_gpus() -> int:
    """The NVIDIA GPUs of this machine, without initialising CUDA: ``nvidia-smi -L`` (0 where it is absent or
    fails)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    if out.returncode != 0:
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def visible_gpus(environ: Mapping[str, str] | None = None, count=count_gpus) -> list[str]:
    """The GPUs this process may hand out: those of ``CUDA_VISIBLE_DEVICES`` where it is set, else ``0..n-1``
    for the ``n`` GPUs of the machine."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return parse_visible_devices(environ["CUDA_VISIBLE_DEVICES"])
    return [str(i) for i in range(count())]


def plan_slots(gpus: Sequence[str], gpus_per_job: int, n_jobs: int | None) -> list[list[str] | None]:
    """One entry per job that may run at once: its GPUs, ``[]`` for a CPU job (the GPUs hidden), or ``None``
    where there are no GPUs to hand out (the job's ``CUDA_VISIBLE_DEVICES`` is left as it is).

    ``n_jobs=None`` runs one job per slot of ``gpus_per_job`` GPUs (at least one job; one job for CPU jobs or
    on a machine without GPUs)."""
    if gpus_per_job < 0:
        raise SlotError(
            f"hydra.launcher.gpus_per_job={gpus_per_job}: set the GPUs of each job (0 for CPU jobs, 1 or more)"
        )
    if n_jobs is not None and n_jobs < 1:
        raise SlotError(f"hydra.launcher.n_jobs={n_jobs}: set 1 or more, or null for one job per GPU slot")
    if gpus_per_job == 0:
        return [[] for _ in range(n_jobs or 1)]
    if not gpus:
        if n_jobs not in (None, 1):
            raise SlotError(
                f"hydra.launcher.n_jobs={n_jobs} jobs of hydra.launcher.gpus_per_job={gpus_per_job} GPU(s) "
                "each, but this process sees no GPU: set hydra.launcher.gpus_per_job=0 to run CPU jobs side "
                "by side"
            )
        return [None]
    if gpus_per_job > len(gpus):
        raise SlotError(
            f"hydra.launcher.gpus_per_job={gpus_per_job}, but this process sees {len(gpus)} GPU(s) "
            f"({','.join(gpus)}): set hydra.launcher.gpus_per_job to at most {len(gpus)}"
        )
    fits = len(gpus) // gpus_per_job
    n = fits if n_jobs is None else n_jobs
    if n > fits:
        raise SlotError(
            f"hydra.launcher.n_jobs={n} jobs x hydra.launcher.gpus_per_job={gpus_per_job} GPU(s) need "
            f"{n * gpus_per_job} GPUs, but this process sees {len(gpus)} ({','.join(gpus)}): set "
            f"hydra.launcher.n_jobs to at most {fits} (or null), or hydra.launcher.gpus_per_job=0 for CPU jobs"
        )
    return [list(gpus[i * gpus_per_job : (i + 1) * gpus_per_job]) for i in range(n)]


def describe_slots(slots: Sequence[list[str] | None]) -> str:
    """The launch line's account of the slots: each slot's GPUs (``-`` for a CPU job), or ``""`` where none are
    handed out, e.g. ``" (GPUs of each slot: 0,1 | 2,3)"``."""
    if not slots or slots[0] is None:
        return ""
    return f" (GPUs of each slot: {' | '.join(','.join(s) or '-' for s in slots)})"


def check_job_devices(
    accelerator: object, devices: object, slot: list[str] | None, gpus_per_job: int
) -> None:
    """Refuse a job that would ask for more GPUs than its slot holds (e.g. ``trainer.devices=2`` with one GPU
    per job): it would see only its slot's GPUs."""
    kind = str(accelerator).lower()
    if slot is None or kind == "cpu" or (kind == "auto" and not slot):  # auto: the CPU where no GPU is seen
        return
    wanted = requested_devices(devices)
    if wanted is None or wanted <= len(slot):
        return
    if gpus_per_job == 0:
        raise SlotError(
            f"trainer.devices={devices} on GPUs, but hydra.launcher.gpus_per_job=0 runs CPU jobs (the GPUs "
            f"hidden): set hydra.launcher.gpus_per_job={wanted} or trainer=cpu"
        )
    raise SlotError(
        f"trainer.devices={devices}, but each job of hydra/launcher=parallel gets "
        f"hydra.launcher.gpus_per_job={gpus_per_job} GPU(s): set hydra.launcher.gpus_per_job={wanted} "
        f"(n_jobs then defaults to the GPUs seen // {wanted})"
    )


# Lightning strategies whose extra processes run the command line again (its subprocess script launcher): under a
# multirun that command line is the whole sweep
_ARGV_STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false")


def check_job_strategy(devices: object, num_nodes: object, strategy: object) -> None:
    """Refuse a multi-process job whose strategy would start its extra processes from the command line: each
    would run the whole sweep again. deepprompt's ``trainer=ddp`` (``HydraDDPStrategy``) re-runs the job."""
    processes = (requested_devices(devices) or 1) * (int(num_nodes) if str(num_nodes).isdigit() else 1)
    if processes <= 1:
        return
    name = "auto" if strategy is None else strategy if isinstance(strategy, str) else None
    if name not in _ARGV_STRATEGIES:
        return  # a configured strategy object (trainer=ddp's HydraDDPStrategy) or one that spawns/forks
    raise SlotError(
        f"trainer.devices={devices} with trainer.strategy={name}: Lightning would start the job's other "
        "processes from the command line, which runs the whole sweep again; use trainer=ddp (or ddp_cpu), whose "
        "strategy re-runs the job itself, or trainer.devices=1"
    )


def check_job(trainer: Mapping, slot: list[str] | None, gpus_per_job: int) -> None:
    """Both checks on a job's ``trainer`` section (an empty mapping where the app has none)."""
    check_job_devices(trainer.get("accelerator"), trainer.get("devices"), slot, gpus_per_job)
    check_job_strategy(trainer.get("devices"), trainer.get("num_nodes", 1), trainer.get("strategy"))
