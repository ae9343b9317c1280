"""How long a run takes to start: seconds from the process start to named moments of the start-up.

The clock counts from the start of the process itself (``/proc/self/stat``), so the interpreter's own start
and every import are in; where ``/proc`` is missing it counts from the first import of this module (by the entry
point). Each mark ends a phase and is named for it; a training run passes them in order::

    python     the interpreter starts and imports deepprompt's entry point (hydra, omegaconf, deepprompt.runs)
    config     hydra composes the config; the run folder is locked and checked
    imports    torch, transformers and Lightning are imported; the config is checked
    tokenizer  the data module is built (its tokenizer loaded)
    backbone   the model is built (pretrained weights loaded, prompts added)
    trainer    the trainer is built
    data       the data module is set up (the splits read and tokenized, or read from the cache)
    sanity     Lightning's sanity check: its validation batches (``trainer.num_sanity_val_steps``; only when
               one ran)
    loop       the rest of Lightning's start of fit: the model to its device, the optimizer, the loaders'
               first batch

``sanity`` is a span (:meth:`StartupClock.begin` and :meth:`StartupClock.end`) inside the ``loop`` phase: its
seconds are its own phase, listed before the phase it falls in and taken out of it, so the phases still add up to
the total.

``startup_s`` (``metrics.json``, and the ``start-up:`` line of the run) is the last mark: the process start to the
first training step.

A job of ``hydra/launcher=parallel`` is a process forked from a server that imported torch, transformers and
Lightning once for the whole sweep: its clock counts from the fork (``startup_from: forkserver``), it has no
``python`` phase (its ``config`` phase runs from the fork to the composed config), its ``imports`` are the
modules the server did not preload, and ``startup_inherited`` names the heavy packages it inherited.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

_IMPORTED_AT = time.time()
# the packages whose import is most of a new process's start-up: a forked job records which it inherited
INHERITABLE = ("torch", "transformers", "lightning", "torchmetrics")
_JOB_ENDED = False  # a job of this process ended (restore_collection): the next one collects before it holds


def process_start_time() -> float:
    """The Unix time at which this process started (to 10 ms), or the time this module was first imported."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        # field 22 (starttime, in clock ticks since boot); the command name (field 2) may hold spaces
        start_ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT
    return time.time() - age if 0 <= age < time.time() - _IMPORTED_AT + 3600 else _IMPORTED_AT


def hold_collection() -> None:
    """Pause Python's cyclic garbage collector for the start-up: the imports and the model make about a million
    long-lived objects, which it would walk again and again (a tenth of the import time). Reference counting
    still frees everything else at once.

    A job that starts after another ended in this process (a sweep run by Hydra's basic launcher) first collects
    once: the jobs before it left their trainer, model and data in reference cycles, which the freeze at its
    first step would otherwise keep alive through the whole job. The first job of a process skips it."""
    if _JOB_ENDED:
        gc.collect()
    gc.disable()


def release_collection() -> None:
    """At the first training step: freeze what exists now (modules, model, data) out of the collector's walks
    for the training, and turn the collector back on."""
    gc.freeze()
    gc.enable()


def restore_collection() -> None:
    """At the end of a job: the frozen objects go back to the collector and it runs again; the next job's
    :func:`hold_collection` collects this job's model, trainer and data before anything is frozen again."""
    global _JOB_ENDED
    _JOB_ENDED = True
    gc.unfreeze()
    gc.enable()


def quick_exit_collection() -> None:
    """Before the process exits: freeze everything, so that the interpreter's teardown does not walk it (a few
    seconds for the million objects of torch, transformers and Lightning)."""
    gc.freeze()


class StartupClock:
    """Seconds since the process start at named marks; the first time a name is marked counts.

    The first job of a process counts from the process start (its ``python`` phase ends where this module was
    imported); a later job of the same process (a sweep run by Hydra's basic launcher) counts from its own start;
    a job forked from a preloaded server (``hydra/launcher=parallel``) counts from its fork (:meth:`forked`).
    """

    def __init__(self, started: float | None = None) -> None:
        self.started = process_start_time() if started is None else started
        self.origin = "process"
        self.marks: dict[str, float] = {}
        self.spans: dict[str, tuple[float, float]] = {}  # name: (begin, end), both since the clock's start
        self._begun: dict[str, float] = {}
        if started is None:
            self.marks["python"] = round(max(0.0, _IMPORTED_AT - self.started), 3)
        self._jobs = 0
        self.inherited: list[str] = []

    def forked(self, origin: str = "fork") -> None:
        """This process was forked from one that had already imported its modules (``hydra/launcher=parallel``
        forks every job from a preloaded server): count from the fork, this process's own start, and record
        which of the heavy packages it inherited instead of importing them."""
        self.started, self.origin, self.marks, self._jobs = process_start_time(), origin, {}, 0
        self.spans, self._begun = {}, {}
        self.inherited = [name for name in INHERITABLE if name in sys.modules]

    def start_job(self) -> None:
        """A job begins: the process's first keeps the process clock, later ones restart it here."""
        self._jobs += 1
        if self._jobs > 1:
            self.started, self.origin, self.marks = time.time(), "job", {}
            self.spans, self._begun = {}, {}

    def now(self) -> float:
        return time.time() - self.started

    def mark(self, name: str) -> float:
        return self.marks.setdefault(name, round(self.now(), 3))

    def begin(self, name: str) -> None:
        """A span starts (the first begin of a name counts): its seconds become a phase of their own at
        :meth:`end`, taken out of the phase of the marks it falls in."""
        self._begun.setdefault(name, round(self.now(), 3))

    def end(self, name: str) -> None:
        """The span begun as ``name`` ends (the first end counts; without a begin, nothing)."""
        if name in self._begun and name not in self.spans:
            self.spans[name] = (self._begun[name], round(self.now(), 3))

    def phases(self) -> dict[str, float]:
        """Each mark's share: seconds from the mark before it (the clock's start for the first), less the spans
        inside it; each span that ended by the last mark is a phase of its own, listed before the phase in which
        it ended."""
        spans = {name: (begin, end) for name, (begin, end) in self.spans.items() if end <= self.total}
        out, previous = {}, 0.0
        for name, at in self.marks.items():
            inside = 0.0
            for span, (begin, end) in spans.items():
                inside += max(0.0, min(at, end) - max(previous, begin))
                if previous < end <= at:
                    out[span] = round(end - begin, 3)
            out[name] = round(at - previous - inside, 3)
            previous = at
        return out

    @property
    def total(self) -> float:
        return max(self.marks.values(), default=0.0)

    def line(self) -> str:
        """``start-up: 9.8 s from the process start to the first training step (python 0.9 s, config 0.4 s, ...)``."""
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.phases().items())
        since = {"forkserver": "the job's fork from the preloaded server"}.get(
            self.origin, f"the {self.origin} start"
        )
        return f"start-up: {self.total:.1f} s from {since} to the first training step ({parts})"

    def summary(self) -> dict[str, Any]:
        """What ``metrics.json`` records: ``startup_s``, its phases and what it counts from."""
        if "loop" not in self.marks:  # no training step ran in this process (e.g. a finished run resumed)
            return {}
        summary = {"startup_s": self.total, "startup_phases_s": self.phases(), "startup_from": self.origin}
        if self.inherited:
            summary["startup_inherited"] = self.inherited
        return summary


clock = StartupClock()
