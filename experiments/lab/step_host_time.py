"""A Lightning callback for `deepprompt-train` that measures the host's time per training step and its share
outside the model's forward (the module's ``loss``) and ``backward``.

    PYTHONPATH=experiments/lab deepprompt-train backbone=tiny trainer=cpu +trainer.max_steps=400 \
        trainer.max_epochs=1 +trainer.limit_val_batches=2 data.num_workers=0 data.batch_size=2 \
        +callbacks.host_time._target_=step_host_time.StepHostTime

From optimizer step ``start`` (the first steps warm up) to the end of training it prints one line: wall time and
the main thread's CPU time (``time.thread_time``: less sensitive to other processes on a shared machine) per
step, each in total and outside forward and backward. With ``OMP_NUM_THREADS=1`` the forward and backward run
on the main thread too. ``STEP_HOST_PROFILE=<file>`` also writes a cProfile of those steps.
"""

from __future__ import annotations

import cProfile
import os
import time

from lightning.pytorch.callbacks import Callback


class StepHostTime(Callback):
    def __init__(self, start: int = 20) -> None:
        self.start = start
        self.on = False
        self.inside_wall = self.inside_cpu = 0.0
        self.t0 = self.c0 = None
        self.step0 = 0
        self.profile: cProfile.Profile | None = None

    def _time(self, obj, name: str) -> None:
        fn = getattr(obj, name)

        def timed(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.inside_wall += time.perf_counter() - wall
                self.inside_cpu += time.thread_time() - cpu

        setattr(obj, name, timed)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._time(pl_module, "loss")
        self._time(pl_module, "backward")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.t0 is None and trainer.global_step >= self.start:
            self.on, self.step0 = True, trainer.global_step
            self.t0, self.c0 = time.perf_counter(), time.thread_time()
            if os.environ.get("STEP_HOST_PROFILE"):
                self.profile = cProfile.Profile()
                self.profile.enable()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.t0 is None:
            return
        wall, cpu = time.perf_counter() - self.t0, time.thread_time() - self.c0
        self.on = False
        if self.profile is not None:
            self.profile.disable()
            self.profile.dump_stats(os.environ["STEP_HOST_PROFILE"])
        n = max(1, trainer.global_step - self.step0)
        print(
            f"host time per step ({n} steps): wall {1e3 * wall / n:.2f} ms, outside forward+backward "
            f"{1e3 * (wall - self.inside_wall) / n:.2f} ms; main-thread CPU {1e3 * cpu / n:.2f} ms, outside "
            f"forward+backward {1e3 * (cpu - self.inside_cpu) / n:.2f} ms",
            flush=True,
        )
