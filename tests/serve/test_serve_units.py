"""The server's parts in process: padded shapes give the same answers, and the batcher's two modes."""

from __future__ import annotations

import asyncio
import threading

import pytest

from deepprompt.errors import ConfigError
from deepprompt.inference.engine import predict
from deepprompt.inference.inputs import example_from_fields
from deepprompt.serve.batcher import Batcher
from deepprompt.serve.cli import eager_buckets

pytestmark = pytest.mark.usefixtures("one_thread")


def _work(registry):
    items = [
        ("rte", {"premise": "good warm", "hypothesis": "it is good"}),
        ("sst2", {"sentence": "bad dull awful day"}),
        ("rte", {"premise": "slow", "hypothesis": "fast loud calm happy sad bright"}),
    ]
    return [
        (registry.index(t), registry.tasks[t].runner, example_from_fields(registry.tasks[t].runner, f, "x:1"))
        for t, f in items
    ]


def test_padded_shapes_give_the_unpadded_answers(registry):
    plain = predict(registry.forward, _work(registry), 8, registry.device)
    registry.engine.pad_to_multiple_of, registry.engine.pad_rows = 16, True  # what graphs= sets up
    try:
        padded = predict(registry.forward, _work(registry), 8, registry.device)
    finally:
        registry.engine.pad_to_multiple_of, registry.engine.pad_rows = None, False
    for a, b in zip(plain, padded, strict=True):
        assert a["label"] == b["label"]
        for name, p in a["probabilities"].items():
            assert b["probabilities"][name] == pytest.approx(p, abs=1e-5)


def test_eager_buckets_takes_auto_true_or_false_and_names_the_key_otherwise():
    assert [eager_buckets(v) for v in ("auto", None, True, False)] == [None, None, True, False]
    with pytest.raises(ConfigError) as info:
        eager_buckets("on")
    assert (info.value.key, str(info.value)) == (
        "eager_buckets",
        "eager_buckets must be auto, true or false, got 'on': pass eager_buckets=auto (on a GPU), true or false",
    )


@pytest.mark.parametrize("mixed", [True, False])
def test_requests_of_two_tasks_share_a_batch_only_when_mixed(registry, mixed):
    batcher = Batcher(registry, max_batch=8, max_wait_ms=300, mixed=mixed)
    try:
        work = _work(registry)
        futures = [
            batcher.submit(registry.tasks[registry.multi.tasks[i]].runner.name, [e]) for i, _, e in work
        ]
        answers = [f.result(timeout=60)[0] for f in futures]
    finally:
        batcher.stop()
    expected = predict(registry.forward, _work(registry), 8, registry.device)
    assert [a["label"] for a in answers] == [e["label"] for e in expected]
    stats = batcher.stats()
    assert stats["rows"] == 3
    assert (stats["batches"], stats["mixed_batches"]) == ((1, 1) if mixed else (2, 0))


def _held(registry, batcher):
    """The worker held inside a full batch (8 rows) until the registry's lock is released."""
    registry.lock.acquire()
    runner = registry.tasks["rte"].runner
    items = [{"premise": f"day {i}", "hypothesis": "good"} for i in range(8)]
    return batcher.submit_async("rte", [example_from_fields(runner, f, "x:1") for f in items])


async def _until_taken(batcher):
    while batcher.queue:
        await asyncio.sleep(0.01)


def test_async_requests_are_answered_in_order_with_one_call_onto_the_loop_per_batch(registry):
    batcher = Batcher(registry, max_batch=8, max_wait_ms=60_000, mixed=True)
    calls = []

    async def main():
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe

        def counted(callback, *args, **kwargs):
            if threading.current_thread() is batcher.thread:
                calls.append(len(args[0]))  # the futures settled by this call
            return original(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counted
        try:
            full = _held(registry, batcher)
            await _until_taken(batcher)
            queued = [batcher.submit_async(registry.multi.tasks[t], [e]) for t, _, e in _work(registry)]
        finally:
            registry.lock.release()
        return await full, await asyncio.gather(*queued)

    try:
        full, answers = asyncio.run(main())
    finally:
        batcher.stop()
    assert len(full) == 8 and calls == [1, 3]  # two batches: one call each, however many requests
    expected = predict(registry.forward, _work(registry), 8, registry.device)
    assert [a[0] for a in answers] == expected


def test_async_requests_get_their_batch_error_and_a_cancelled_one_is_skipped(registry, monkeypatch):
    batcher = Batcher(registry, max_batch=8, max_wait_ms=60_000, mixed=True)

    async def main():
        try:
            full = _held(registry, batcher)
            await _until_taken(batcher)
            (_, _, first), (_, _, second), _ = _work(registry)
            gone = batcher.submit_async("rte", [first])
            kept = batcher.submit_async("sst2", [second])
            gone.cancel()  # its client went away while it was queued
        finally:
            registry.lock.release()
        await full
        answer = await kept

        def failing(*args):
            raise RuntimeError("boom")

        monkeypatch.setattr(registry, "forward", failing)
        # two rows, as many as the last batch (gone and kept): an idle worker starts it at once instead of waiting
        # max_wait_ms (60 s) for that much company, whether or not it went idle before this request arrived
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit_async("sst2", [_work(registry)[1][2] for _ in range(2)])
        return answer

    try:
        answer = asyncio.run(main())
    finally:
        batcher.stop()
        monkeypatch.undo()
    assert answer == [predict(registry.forward, [_work(registry)[1]], 8, registry.device)[0]]
