"""Test-only helpers loaded by the CLI under test (``+callbacks.slow._target_=tests.runs.helpers.SlowSteps``)."""

from __future__ import annotations

import json
import os
import sys
import time
import weakref
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

REPO = Path(__file__).resolve().parents[2]
TINY = ("backbone=tiny", "debug=limit", "extras.print_config=false")


class SlowSteps(Callback):
    """Sleep between two training batches: leaves time to kill the process between two checkpoints.

    The sleep comes at the start of every batch but the process's first, so after the checkpoints of the step
    before (Lightning runs checkpoint callbacks after all others at a batch's end: a sleep there would delay
    each step's checkpoint, and a test waiting for one, by the whole pause). ``DEEPPROMPT_TEST_SLOW_S``
    overrides ``seconds`` (the environment is not part of the run's config: a relaunch with another pace is the
    same run)."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = float(os.environ.get("DEEPPROMPT_TEST_SLOW_S", seconds))
        self.started = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.started:
            time.sleep(self.seconds)
        self.started = True


class PoisonLoss(Callback):
    """Turn the loss into NaN from optimizer step ``at_step`` on (the 'injected NaN' of the NaN-guard test)."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step + 1 >= self.at_step:
            with torch.no_grad():
                pl_module.classifier.bias.fill_(float("nan"))


class PoisonGrad(Callback):
    """Make one gradient infinite at optimizer step ``at_step`` while the loss stays finite (the NaN-guard test of
    non-finite gradients)."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_after_backward(self, trainer, pl_module) -> None:
        if trainer.global_step + 1 == self.at_step:
            pl_module.classifier.bias.grad.fill_(float("inf"))


class ModulesAtFirstStep(Callback):
    """Write the names of the modules loaded when the first training batch starts (the end of the start-up) to
    ``path``, one a line."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not os.path.exists(self.path):
            Path(self.path).write_text("\n".join(sorted(sys.modules)) + "\n")


class EarlierModulesAtFirstStep(Callback):
    """At each job's first training batch, append a line to ``path``: how many Lightning modules of earlier jobs
    of this process there were and how many of them are still alive (weak references; a sweep run in one process
    by Hydra's basic launcher builds a new callback for each job)."""

    modules: list[weakref.ref] = []  # every job's module in this process, in order

    def __init__(self, path: str) -> None:
        self.path = path
        self.started = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.started:
            return
        self.started = True
        earlier = type(self).modules
        record = {"earlier": len(earlier), "alive": sum(ref() is not None for ref in earlier)}
        earlier.append(weakref.ref(pl_module))
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def env_with_repo() -> dict[str, str]:
    """Let the subprocess import ``tests.runs.helpers``."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


class KillAt(Callback):
    """SIGKILL this very process at the end of optimizer step ``step`` (before that step's checkpoint).

    ``KILL_AT=off`` in the environment disarms it: a relaunch keeps the killed run's configuration (a relaunch
    with other values is refused) and runs to the end.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and os.environ.get("KILL_AT") != "off":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


class Trace(Callback):
    """Append one line per training batch (inputs, RNG, parameters, LR) to ``path``: resume debugging."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        params = sum(float(p.double().sum()) for p in pl_module.parameters() if p.requires_grad)
        rng = int(torch.random.get_rng_state().double().sum())
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        with open(self.path, "a") as f:
            f.write(
                f"e{trainer.current_epoch} b{batch_idx} s{trainer.global_step} ids{int(batch['input_ids'].sum())} "
                f"rng{rng} lr{lr:.8g} p{params:.10g}\n"
            )


class RecordProcess(Callback):
    """Write ``process.json`` into the run folder when training starts: the pid, the parent's pid, the
    ``CUDA_VISIBLE_DEVICES`` the run sees and whether CUDA is initialised (sweep launcher tests)."""

    def on_train_start(self, trainer, pl_module) -> None:
        record = {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "cuda_initialized": torch.cuda.is_initialized(),
        }
        (Path(trainer.default_root_dir) / "process.json").write_text(json.dumps(record))
