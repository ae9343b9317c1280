"""Dynamic batching: requests that arrive together run in one backbone call, whatever their tasks.

Request handlers `submit_async` a job (a task and its examples, not yet tokenized) and await its future. One
worker thread runs the batches; the event loop only parses requests and answers them. The worker hands a batch's
answers back to the event loop in one call (``call_soon_threadsafe``) for all its requests, not one per request:
each such call wakes the loop through its self-pipe and contends for the GIL. The policy (continuous batching):

- when the worker finishes a batch and jobs are queued (they arrived while it ran), it takes them at once, the
  oldest first, up to ``max_batch`` rows: no added wait under load;
- when the worker is idle, the job that wakes it waits up to ``max_wait_ms`` for others, until as many rows are
  queued as the last batch had (at most ``max_batch``; ``max_batch`` before the first batch): clients that wait
  for their answers before they ask again (4 clients: 4 rows a batch) are not held the full ``max_wait_ms`` for
  company that is not coming (``max_wait_ms=0``: it runs alone at once).

A batch's examples are tokenized in one tokenizer call per task (by the tokenizer thread while the batch before
runs, ``tokenize_ahead``, or else by the worker) and run in one forward pass of the `MultiTaskDeepPromptModel`
(each row with its own task's prompts), or, where the server timed its shape buckets at start-up (warm-up of CUDA
graphs or of an eager forward padded to the buckets), in the consecutive runs of rows, longest first, with the
least measured time (`serve.planning`: a few long passages no longer pad a batch of short sentences to their
length). With ``mixed=False`` a batch takes jobs of the oldest job's task only (one task per batch: the baseline
the load benchmark compares against). A job bigger than ``max_batch`` rows runs alone, in ``max_batch`` chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from deepprompt.inference.engine import predict, tokenize
from deepprompt.inference.families import Example
from deepprompt.serve.registry import TaskRegistry

log = logging.getLogger("deepprompt.serve")


@dataclass
class Job:
    task: str
    examples: list[Example]
    rows: int
    future: Future | asyncio.Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.perf_counter)
    loop: asyncio.AbstractEventLoop | None = None  # the loop of an asyncio future (`submit_async`)
    tokenizing: bool = False  # the tokenizer thread has it: the worker waits for its rows


def _settle(future: Future | asyncio.Future, outcome: Any) -> None:
    if future.done():  # cancelled: its client went away
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _untokenized(job: Job) -> bool:
    return any("_rows" not in e for e in job.examples)


def _settle_all(settled: list[tuple[asyncio.Future, Any]]) -> None:
    for future, outcome in settled:
        _settle(future, outcome)


class Batcher:
    def __init__(
        self,
        registry: TaskRegistry,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        mixed: bool = True,
        tokenize_ahead: bool = True,
    ):
        self.registry = registry
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.mixed = mixed
        self.queue: deque[Job] = deque()
        lock = threading.Lock()
        self.cond = threading.Condition(lock)  # the worker's: a job queued, a job's rows ready, stop
        self.ahead = threading.Condition(lock)  # the tokenizer thread's: a job queued, stop
        self.tokenized_ahead = 0  # examples the tokenizer thread tokenized (the worker did the others)
        self.stopped = False
        self.batches = 0
        self.rows = 0
        self.mixed_batches = 0  # batches that held more than one task
        # backbone calls: a batch of short and long rows may run as several (serve.planning)
        self.forwards = 0
        self.busy_s = 0.0  # the worker's time in batches (tokenizing, forward, decoding)
        self.queued_s = 0.0  # the jobs' summed time from submit to their batch's start
        self.jobs = 0
        self.last_rows = 0  # rows of the last batch: how much company an idle worker waits for
        self.thread = threading.Thread(target=self._loop, name="deepprompt-batcher", daemon=True)
        self.thread.start()
        self.tokenizer = None
        if tokenize_ahead:
            self.tokenizer = threading.Thread(
                target=self._tokenize_loop, name="deepprompt-tokenizer", daemon=True
            )
            self.tokenizer.start()

    def submit(self, task: str, examples: list[Example]) -> Future:
        """Queue ``examples`` of ``task``; the future gets their answers (in order) or the batch's error."""
        return self._queue(self._job(task, examples, Future()))

    def submit_async(self, task: str, examples: list[Example]) -> asyncio.Future:
        """`submit` from a running event loop: an asyncio future of that loop, which the worker settles together
        with the batch's other futures of the loop, in one call onto the loop per batch (not one per request)."""
        loop = asyncio.get_running_loop()
        job = self._job(task, examples, loop.create_future())
        job.loop = loop
        return self._queue(job)

    def _job(self, task: str, examples: list[Example], future) -> Job:
        runner = self.registry.tasks[task].runner
        return Job(task, examples, sum(runner.count_rows(e) for e in examples), future)

    def _queue(self, job: Job):
        with self.cond:
            self.queue.append(job)
            self.cond.notify()
            self.ahead.notify()
        return job.future

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()
            self.ahead.notify()
        self.thread.join(timeout=5)
        if self.tokenizer is not None:
            self.tokenizer.join(timeout=5)

    def stats(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "forwards": self.forwards,
            "mixed_batches": self.mixed_batches,
            "rows": self.rows,
            "jobs": self.jobs,
            "busy_s": round(self.busy_s, 6),
            "queued_s": round(self.queued_s, 6),
            "max_batch": self.max_batch,
            "max_wait_ms": self.max_wait * 1000,
            "mixed": self.mixed,
            "tokenized_ahead": self.tokenized_ahead,
        }

    # -- worker --------------------------------------------------------------------------------------------
    def _take(self) -> list[Job]:
        """Jobs for the next batch (the oldest first; with ``mixed=False`` only its task's): at once when jobs
        queued up while the last batch ran, else after up to ``max_wait`` for more to arrive."""
        with self.cond:
            waited = not self.queue  # an idle worker: the first job may wait for company
            while not self.queue and not self.stopped:
                self.cond.wait()
            if self.stopped:
                return []
            first = self.queue[0]
            deadline = first.arrived + self.max_wait
            enough = min(self.max_batch, self.last_rows or self.max_batch)  # the company the last batch had
            while waited and not self.stopped:
                ready = sum(j.rows for j in self.queue if self.mixed or j.task == first.task)
                left = deadline - time.perf_counter()
                if ready >= enough or left <= 0:
                    break
                self.cond.wait(timeout=left)
            taken, rows = [], 0
            for job in list(self.queue):
                if not self.mixed and job.task != first.task:
                    continue
                if taken and rows + job.rows > self.max_batch:
                    break
                taken.append(job)
                rows += job.rows
                self.queue.remove(job)
            self.last_rows = rows
            while any(j.tokenizing for j in taken) and not self.stopped:  # the tokenizer thread is on them
                self.cond.wait()
            return taken

    def _tokenize_loop(self) -> None:
        """Tokenize queued jobs while the worker runs the batch before them (the tokenizer's Rust code releases
        the GIL, so it runs beside the worker's forward on another core): one tokenizer call per task for all
        jobs queued meanwhile. A job the worker takes before this thread got to it is tokenized by the worker;
        one this thread has begun, the worker waits for."""
        while True:
            with self.cond:
                while not self.stopped and not any(not j.tokenizing and _untokenized(j) for j in self.queue):
                    self.ahead.wait()
                if self.stopped:
                    return
                todo = [j for j in self.queue if not j.tokenizing and _untokenized(j)]
                for job in todo:
                    job.tokenizing = True
            runners = {job.task: self.registry.tasks.get(job.task) for job in todo}
            work = [(0, runners[j.task].runner, e) for j in todo if runners[j.task] for e in j.examples]
            try:
                tokenize(work)
                self.tokenized_ahead += len(work)
            except Exception:  # the worker tokenizes what is left, and answers its error
                log.debug("tokenizing ahead failed", exc_info=True)
            with self.cond:
                for job in todo:
                    job.tokenizing = False
                self.cond.notify()

    def _loop(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                return
            start = time.perf_counter()
            self.jobs += len(jobs)
            self.queued_s += sum(start - j.arrived for j in jobs)
            try:
                outcomes = self._run(jobs)
            except Exception as err:  # a failed batch answers its requests with the error, the worker goes on
                log.exception("batch failed")
                outcomes = [err] * len(jobs)
            self._answer(jobs, outcomes)
            self.busy_s += time.perf_counter() - start

    @staticmethod
    def _answer(jobs: list[Job], outcomes: list[Any]) -> None:
        """Each job's answers (or error): a concurrent future at once; the asyncio futures of each event loop in
        one ``call_soon_threadsafe`` (one wake-up of the loop per batch)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
        for job, outcome in zip(jobs, outcomes, strict=True):
            if job.loop is not None:
                by_loop.setdefault(job.loop, []).append((job.future, outcome))
            else:
                _settle(job.future, outcome)
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these answers
                loop.call_soon_threadsafe(_settle_all, settled)

    @torch.inference_mode()
    def _run(self, jobs: list[Job]) -> list[Any]:
        """Each job's answers (a list, in order), or a KeyError for a job whose task was removed meanwhile."""
        registry = self.registry
        with registry.lock:
            live = [j for j in jobs if j.task in registry.tasks]
            if not live:
                return [KeyError(j.task) for j in jobs]
            work = [
                (registry.index(job.task), registry.tasks[job.task].runner, example)
                for job in live
                for example in job.examples
            ]
            calls = registry.engine.calls
            answers = predict(
                registry.forward, work, self.max_batch, registry.device, plan=registry.engine.plan
            )
            self.forwards += registry.engine.calls - calls
        self.batches += 1
        self.mixed_batches += len({j.task for j in live}) > 1
        self.rows += sum(len(e["_rows"]) for j in live for e in j.examples)  # tokenized: QA's windows too
        outcomes, at, ran = [], 0, {id(j) for j in live}
        for job in jobs:
            if id(job) in ran:
                outcomes.append(answers[at : at + len(job.examples)])
                at += len(job.examples)
            else:
                outcomes.append(KeyError(job.task))
        return outcomes
