"""What the server does under load: continuous batching, tokenizing in the worker, shape buckets captured
up front, and the load benchmark's client processes (against a real server process over its socket)."""

from __future__ import annotations

import time

import httpx
import pytest
import torch

from deepprompt.inference.engine import predict
from deepprompt.inference.inputs import example_from_fields
from deepprompt.runs.restore import load_run_config
from deepprompt.serve.batcher import Batcher
from deepprompt.serve.registry import TaskRegistry
from tests.serve.test_serve_graphs import emulated
from tests.serve.test_serve_http import INPUTS

pytestmark = pytest.mark.usefixtures("one_thread")

ITEMS = {
    "rte": [
        {"premise": "good warm", "hypothesis": "it is good"},
        {"premise": "slow", "hypothesis": "fast loud calm happy sad bright"},
        {"premise": "dark dull day", "hypothesis": "bad"},
    ],
    "sst2": [
        {"sentence": "bad dull awful day"},
        {"sentence": "fine"},
        {"sentence": "a bright good day good"},
    ],
}


@pytest.fixture(scope="module")
def runs(serve_runs):
    return serve_runs


def _examples(registry, task):
    runner = registry.tasks[task].runner
    return [example_from_fields(runner, fields, "x:1") for fields in ITEMS[task]]


def _until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _assert_the_predictions_of(registry, answers):
    """``answers`` are `predict`'s for the SST-2 then the RTE test examples, one request each."""
    work = [
        (registry.index(t), registry.tasks[t].runner, e)
        for t in ("sst2", "rte")
        for e in _examples(registry, t)
    ]
    expected = predict(registry.forward, work, 8, registry.device)
    assert [a["label"] for a in answers] == [e["label"] for e in expected]
    for got, want in zip(answers, expected, strict=True):
        for name, p in want["probabilities"].items():
            assert got["probabilities"][name] == pytest.approx(p, abs=1e-5)


def test_requests_queued_while_a_batch_runs_go_in_one_forward_without_waiting(registry):
    """The worker is held inside a full batch; the requests that queue meanwhile run together as soon as it
    is free, not after ``max_wait_ms`` (here a minute). Without the tokenizer thread, the worker tokenizes them."""
    batcher = Batcher(registry, max_batch=8, max_wait_ms=60_000, mixed=True, tokenize_ahead=False)
    try:
        registry.lock.acquire()  # the worker blocks in its batch until released
        try:
            rte = _examples(registry, "rte")
            full = batcher.submit("rte", rte + rte + rte[:2])  # 8 rows: a full batch
            _until(lambda: not batcher.queue)  # taken at once: the batch was full
            queued = [
                batcher.submit(t, [e]) for t in ("sst2", "rte") for e in _examples(registry, t)
            ]  # 6 rows
            assert all("_rows" not in job.examples[0] for job in batcher.queue)  # not tokenized on submit
        finally:
            registry.lock.release()
        started = time.monotonic()
        answers = [f.result(timeout=20)[0] for f in queued]
        assert time.monotonic() - started < 20
        assert len(full.result(timeout=20)) == 8
    finally:
        batcher.stop()
    assert batcher.stats()["batches"] == 2 and batcher.stats()["mixed_batches"] == 1
    assert batcher.stats()["rows"] == 14
    _assert_the_predictions_of(registry, answers)


def test_requests_queued_while_a_batch_runs_are_tokenized_meanwhile_with_the_same_answers(registry):
    """The tokenizer thread tokenizes the requests that queue while the worker is held inside a batch (one
    tokenizer call per task), so the worker's next batch only runs them; the answers are the same."""
    batcher = Batcher(registry, max_batch=8, max_wait_ms=60_000, mixed=True)
    try:
        registry.lock.acquire()  # the worker blocks in its batch until released
        try:
            rte = _examples(registry, "rte")
            full = batcher.submit("rte", rte + rte + rte[:2])
            _until(lambda: not batcher.queue)
            queued = [batcher.submit(t, [e]) for t in ("sst2", "rte") for e in _examples(registry, t)]
            _until(lambda: all("_rows" in job.examples[0] for job in batcher.queue))  # while the worker waits
            assert len(batcher.queue) == 6
        finally:
            registry.lock.release()
        answers = [f.result(timeout=20)[0] for f in queued]
        assert len(full.result(timeout=20)) == 8
    finally:
        batcher.stop()
    assert batcher.stats()["tokenized_ahead"] >= 6 and batcher.stats()["batches"] == 2
    _assert_the_predictions_of(registry, answers)


def test_a_job_the_tokenizer_thread_has_begun_is_waited_for_not_tokenized_twice(registry, monkeypatch):
    """The worker takes a job the tokenizer thread is still tokenizing: it waits for its rows and tokenizes
    nothing itself."""
    import threading

    import deepprompt.inference.engine as engine

    release, inside = threading.Event(), threading.Event()
    real, sst2 = engine.tokenize, registry.tasks["sst2"].runner
    calls = []  # (thread, examples without rows) of each call with SST-2 examples

    def slow_tokenize(work):
        mine = [example for _, runner, example in work if runner is sst2]
        if mine:
            calls.append((threading.current_thread().name, sum("_rows" not in e for e in mine)))
            if threading.current_thread().name == "deepprompt-tokenizer":
                inside.set()
                release.wait(timeout=20)
        return real(work)

    monkeypatch.setattr("deepprompt.serve.batcher.tokenize", slow_tokenize)
    monkeypatch.setattr("deepprompt.inference.engine.tokenize", slow_tokenize)
    batcher = Batcher(registry, max_batch=8, max_wait_ms=0, mixed=True)
    try:
        registry.lock.acquire()  # the worker blocks in a full RTE batch until released
        try:
            rte = _examples(registry, "rte")
            full = batcher.submit("rte", rte + rte + rte[:2])
            _until(lambda: not batcher.queue)
            future = batcher.submit("sst2", _examples(registry, "sst2")[:2])
            assert inside.wait(timeout=20)  # the tokenizer thread has the SST-2 job ...
        finally:
            registry.lock.release()
        _until(lambda: not batcher.queue)  # ... and the worker, done with RTE, has taken it and waits
        time.sleep(0.2)
        assert not future.done()
        release.set()
        assert len(future.result(timeout=20)) == 2 and len(full.result(timeout=20)) == 8
    finally:
        release.set()
        batcher.stop()
    assert calls[0] == ("deepprompt-tokenizer", 2)
    assert all(todo == 0 for _, todo in calls[1:])  # the worker found the rows there


def test_an_idle_worker_still_waits_for_company_up_to_max_wait(registry):
    batcher = Batcher(registry, max_batch=8, max_wait_ms=400, mixed=True)
    try:
        first = batcher.submit("rte", _examples(registry, "rte")[:1])
        time.sleep(0.05)
        second = batcher.submit("sst2", _examples(registry, "sst2")[:1])
        first.result(timeout=30), second.result(timeout=30)
    finally:
        batcher.stop()
    assert (batcher.stats()["batches"], batcher.stats()["rows"]) == (1, 2)


def test_an_idle_worker_waits_only_for_as_many_rows_as_the_last_batch_had(registry):
    """Two clients that each wait for their answer before asking again: after a batch of 2 rows, the next 2 run as
    soon as both are queued, not after ``max_wait_ms`` (here raised to a minute once the first batch formed)."""
    batcher = Batcher(registry, max_batch=8, max_wait_ms=200, mixed=True)
    try:
        ask = lambda: [batcher.submit(t, _examples(registry, t)[:1]) for t in ("rte", "sst2")]  # noqa: E731
        for f in ask():  # no batch before: waits up to max_wait for company, gets both
            f.result(timeout=30)
        assert (batcher.stats()["batches"], batcher.last_rows) == (1, 2)
        batcher.max_wait = 60.0
        started = time.monotonic()
        for f in ask():
            f.result(timeout=30)
        assert time.monotonic() - started < 30
    finally:
        batcher.stop()
    assert (batcher.stats()["batches"], batcher.stats()["rows"]) == (2, 4)


def test_a_batch_is_tokenized_in_one_call_per_task_with_the_same_rows(registry, monkeypatch):
    for task in ("rte", "sst2"):  # a sentence pair and a single sentence
        runner = registry.tasks[task].runner
        examples = _examples(registry, task)
        one_by_one = [runner.rows(e) for e in examples]
        calls = []
        cls = type(runner.tokenizer)
        monkeypatch.setattr(
            cls,
            "__call__",
            lambda self, *a, _f=cls.__call__, _c=calls, **k: _c.append(a) or _f(self, *a, **k),
        )
        together = runner.rows_many(examples)
        monkeypatch.undo()
        assert together == one_by_one
        assert len(calls) == 1


def test_every_shape_bucket_is_captured_at_start_up_and_none_while_serving(runs):
    backbone = load_run_config(runs["rte"]).backbone
    graphed = TaskRegistry(backbone, "cpu", graphs=True, capture=emulated)
    for name in ("rte", "sst2"):
        graphed.load(name, runs[name])
    captured = graphed.warm(max_rows=4)
    graphs = graphed.engine.graphs
    longest = max(t.runner.max_length for t in graphed.tasks.values())
    assert captured == len(graphed.engine.buckets(4, longest)) == graphs.counts()["shapes"]
    assert graphed.warm(max_rows=4) == 0  # nothing new
    eager = TaskRegistry(backbone, "cpu")
    for name in ("rte", "sst2"):
        eager.load(name, runs[name])
    with torch.inference_mode():
        for n in (1, 2, 3, 4):  # batches of 1 to 4 rows, of both tasks and several lengths
            items = [(t, e) for t in ("rte", "sst2") for e in _examples(graphed, t)][:n]
            got = predict(
                graphed.forward, [(graphed.index(t), graphed.tasks[t].runner, e) for t, e in items], 4, "cpu"
            )
            want = predict(
                eager.forward, [(eager.index(t), eager.tasks[t].runner, e) for t, e in items], 4, "cpu"
            )
            assert [a["label"] for a in got] == [b["label"] for b in want]
    assert graphs.counts()["captures"] == captured  # served from the captures made up front
    assert graphs.counts()["replays"] >= 4 and graphs.counts()["eager_calls"] == 0
    graphed.load("cb", runs["cb"])  # a task added later: its buckets are captured when it loads
    assert graphs.counts()["captures"] == len(
        graphed.engine.buckets(4, max(t.runner.max_length for t in graphed.tasks.values()))
    )


def test_the_load_benchmark_spreads_its_clients_over_processes(server):
    from deepprompt.serve.loadtest import client_processes, load

    inputs = {"rte": INPUTS["rte"][:2], "sst2": INPUTS["sst2"][:2]}
    before = httpx.get(f"{server}/health").json()["batcher"]
    result = load(server, inputs, clients=4, total=11, processes=2)
    after = httpx.get(f"{server}/health").json()["batcher"]
    assert result["requests"] == 11 and result["client_processes"] == 2
    assert after["rows"] - before["rows"] == 11 and after["jobs"] - before["jobs"] == 11
    assert result["requests_per_s"] > 0 and 0 < result["p50_ms"] <= result["p99_ms"]
    assert 0 < result["client_cpu_max_process"] <= result["client_cpu"]
    assert after["busy_s"] > before["busy_s"]
    assert client_processes("auto", 1) == 1 and client_processes(3, 64) == 3


def test_the_server_shortens_the_gil_switch_interval(server):
    """The worker gets the GIL back within half a millisecond of a torch call, not Python's 5 ms."""
    assert httpx.get(f"{server}/health").json()["gil_switch_ms"] == pytest.approx(0.5)
