"""The server's parts in process: padded shapes give the same answers, and the batcher's two modes."""

from __future__ import annotations

import pytest

from deepprompt.inference.engine import predict
from deepprompt.inference.inputs import example_from_fields
from deepprompt.serve.batcher import Batcher

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
