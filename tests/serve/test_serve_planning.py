"""A batch's rows split into backbone calls by the timed cost of their shape buckets (serve/planning.py)."""

from __future__ import annotations

import random

import pytest
import torch

from deepprompt.inference.engine import predict
from deepprompt.runs.restore import load_run_config
from deepprompt.serve.forward import bucket, row_bucket
from deepprompt.serve.planning import CALL_OVERHEAD_MS, plan_chunks
from deepprompt.serve.registry import TaskRegistry
from tests.serve.test_serve_graphs import emulated
from tests.serve.test_serve_load import _examples, runs  # noqa: F401  (the module's tiny runs)

pytestmark = pytest.mark.usefixtures("one_thread")


def compute_bound(rows: int, longest: int) -> float:
    """A forward whose time grows with its padded tokens (rows to a power of two, lengths to 32)."""
    return 1.0 + 1e-3 * row_bucket(rows) * bucket(longest, 32)


def launch_bound(rows: int, longest: int) -> float:
    """A forward whose time barely depends on its shape."""
    return 1.0 + 1e-6 * row_bucket(rows) * bucket(longest, 32)


def _total(plan, lengths, cost):
    total, start = 0.0, 0
    for size in plan:
        total += cost(size, lengths[start]) + CALL_OVERHEAD_MS
        start += size
    return total


def _least(lengths, max_rows, cost):
    """The least total over every split into consecutive chunks (exhaustive)."""
    n, best = len(lengths), [0.0] * (len(lengths) + 1)
    for i in range(n - 1, -1, -1):
        best[i] = min(
            cost(j - i, lengths[i]) + CALL_OVERHEAD_MS + best[j]
            for j in range(i + 1, min(n, i + max_rows) + 1)
        )
    return best[0]


@pytest.mark.parametrize("cost", [compute_bound, launch_bound])
def test_the_plan_is_the_least_timed_split(cost):
    rng = random.Random(0)
    for _ in range(200):
        lengths = sorted(
            (rng.choice([12, 30, 70, 120, 250]) for _ in range(rng.randint(1, 40))), reverse=True
        )
        max_rows = rng.choice([4, 16, 32, 64])
        plan = plan_chunks(lengths, max_rows, cost)
        assert sum(plan) == len(lengths) and all(0 < size <= max_rows for size in plan)
        assert _total(plan, lengths, cost) == pytest.approx(_least(lengths, max_rows, cost))


def test_long_and_short_rows_run_apart_only_where_the_forward_is_compute_bound():
    lengths = [256] * 6 + [30] * 16  # 6 BoolQ passages and 16 SST-2 sentences
    # one call: 32 rows x 256; apart: 8 x 256 (the 6 passages and 2 sentences) and 16 x 32
    assert plan_chunks(lengths, 64, compute_bound) == [8, 14]
    assert plan_chunks(lengths, 64, launch_bound) == [22]
    assert plan_chunks([40] * 9, 64, compute_bound) == [9]  # one length: one call (16 rows cost < 8 + 1)


def test_no_plan_for_a_shape_that_was_not_timed():
    assert plan_chunks([256, 30], 64, lambda rows, longest: None if longest > 128 else 1.0) is None
    assert plan_chunks([], 64, compute_bound) == []


def test_the_timed_buckets_split_the_server_batches_and_leave_the_answers_unchanged(runs):  # noqa: F811
    backbone = load_run_config(runs["rte"]).backbone
    graphed = TaskRegistry(backbone, "cpu", graphs=True, capture=emulated)
    for name in ("rte", "sst2"):
        graphed.load(name, runs[name])
    engine = graphed.engine
    assert engine.plan([20, 10], 8) is None  # nothing timed before warm-up
    graphed.warm(max_rows=8)
    longest = max(t.runner.max_length for t in graphed.tasks.values())
    assert set(engine.bucket_ms) == set(engine.buckets(8, longest))  # every captured bucket timed
    assert all(ms > 0 for ms in engine.bucket_ms.values())
    eager = TaskRegistry(backbone, "cpu")
    for name in ("rte", "sst2"):
        eager.load(name, runs[name])
    items = [(t, e) for t in ("rte", "sst2") for e in _examples(graphed, t)][:8]

    def work(reg):
        return [(reg.index(t), reg.tasks[t].runner, e) for t, e in items]

    # timings where every padded token costs: rows of different buckets run apart
    engine.bucket_ms = {(h, w): 0.01 * h * w for h, w in engine.bucket_ms}
    with torch.inference_mode():
        want = predict(eager.forward, work(eager), 8, "cpu")
        lengths = sorted((len(e["_rows"][0]["input_ids"]) for _, e in items), reverse=True)
        plan = engine.plan(lengths, 8)
        assert len(plan) > 1 and sum(plan) == len(items)
        calls = engine.calls
        got = predict(graphed.forward, work(graphed), 8, "cpu", plan=engine.plan)
        assert engine.calls - calls == len(plan)
    assert [a["label"] for a in got] == [b["label"] for b in want]
    for a, b in zip(got, want, strict=True):
        for name, p in a["probabilities"].items():
            assert b["probabilities"][name] == pytest.approx(p, abs=1e-5)
