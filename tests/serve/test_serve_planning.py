"""A batch's rows split into backbone calls by the timed cost of their shape buckets (serve/planning.py)."""

from __future__ import annotations

import logging
import random

import pytest
import torch

from deepprompt.inference.engine import predict
from deepprompt.runs.restore import load_run_config
from deepprompt.serve.forward import row_bucket
from deepprompt.serve.planning import CALL_OVERHEAD_MS, plan_chunks
from deepprompt.serve.registry import TaskRegistry
from tests.serve.test_serve_graphs import _recording, emulated
from tests.serve.test_serve_load import _examples, runs  # noqa: F401  (the module's tiny runs)

pytestmark = pytest.mark.usefixtures("one_thread")


def compute_bound(rows: int, width: int) -> float:
    """A forward whose time grows with its padded tokens (rows to a power of two)."""
    return 1.0 + 1e-3 * row_bucket(rows) * width


def launch_bound(rows: int, width: int) -> float:
    """A forward whose time barely depends on its shape."""
    return 1.0 + 1e-6 * row_bucket(rows) * width


def _total(plan, widths, max_rows, cost):
    total, start = 0.0, 0
    for size in plan:
        assert 0 < size <= max_rows
        total += cost(size, widths[start]) + CALL_OVERHEAD_MS
        start += size
    return total


def _least(widths, max_rows, cost):
    """The least total over every way to cut between length buckets (exhaustive; calls of at most max_rows)."""
    cuts = [i for i in range(1, len(widths)) if widths[i] != widths[i - 1]]
    best = float("inf")
    for mask in range(1 << len(cuts)):
        edges = [0] + [c for k, c in enumerate(cuts) if mask >> k & 1] + [len(widths)]
        plan = []
        for a, b in zip(edges, edges[1:], strict=False):
            rows = b - a
            plan += [max_rows] * (rows // max_rows) + ([rows % max_rows] if rows % max_rows else [])
        best = min(best, _total(plan, widths, max_rows, cost))
    return best


@pytest.mark.parametrize("cost", [compute_bound, launch_bound])
def test_the_plan_is_the_least_timed_split_between_length_buckets(cost):
    rng = random.Random(0)
    for _ in range(200):
        widths = sorted((rng.choice([32, 64, 96, 128, 256]) for _ in range(rng.randint(2, 40))), reverse=True)
        max_rows = rng.choice([4, 16, 32, 64])
        plan = plan_chunks(widths, max_rows, cost)
        if len(set(widths)) == 1:
            assert plan is None  # nothing to choose: the caller's own chunking
            continue
        assert sum(plan) == len(widths)
        assert _total(plan, widths, max_rows, cost) == pytest.approx(_least(widths, max_rows, cost))


def test_long_and_short_rows_run_apart_only_where_the_forward_is_compute_bound():
    widths = [256] * 6 + [32] * 16  # 6 BoolQ passages and 16 SST-2 sentences
    # one call: 32 rows x 256; apart: 8 x 256 and 16 x 32
    assert plan_chunks(widths, 64, compute_bound) == [6, 16]
    assert plan_chunks(widths, 64, launch_bound) == [22]
    assert plan_chunks([64] * 9, 64, compute_bound) is None  # one length bucket: nothing to choose


def test_no_plan_for_a_shape_that_was_not_timed():
    assert plan_chunks([256, 32], 64, lambda rows, width: None if width > 128 else 1.0) is None
    assert plan_chunks([], 64, compute_bound) is None


@pytest.mark.parametrize("forward", ["graphs", "eager"])
def test_the_timed_buckets_split_the_server_batches_and_leave_the_answers_unchanged(
    runs,  # noqa: F811
    forward,
    caplog,
):
    backbone = load_run_config(runs["rte"]).backbone
    # lengths in buckets of 8 tokens: the test's RTE pairs and SST-2 sentences fall in several
    options = {"graphs": True, "capture": emulated} if forward == "graphs" else {"eager_buckets": True}
    served = TaskRegistry(backbone, "cpu", pad_to_multiple_of=8, **options)
    for name in ("rte", "sst2"):
        served.load(name, runs[name])
    engine = served.engine
    assert (engine.graphs is None) == (forward == "eager") and engine.pad_rows
    assert engine.plan([20, 10], 8) is None  # nothing timed before warm-up
    with caplog.at_level(logging.INFO, logger="deepprompt.serve"):
        warmed = served.warm(max_rows=8)
    longest = max(t.runner.max_length for t in served.tasks.values())
    buckets = engine.buckets(8, longest)
    assert warmed == len(buckets) and served.warm(max_rows=8) == 0  # each bucket once
    assert set(engine.bucket_ms) == set(buckets)  # every bucket timed
    assert all(ms > 0 for ms in engine.bucket_ms.values())
    said = {"graphs": "captured up front", "eager": "run once and timed up front"}[forward]
    assert f"{forward}: {len(buckets)} shape buckets {said} ({len(buckets)} in all)" in caplog.messages
    assert engine.counts() == {"pad_rows": True, "pad_to_multiple_of": 8, "warmed": warmed, "timed": warmed}
    plain = TaskRegistry(backbone, "cpu")  # eager on each batch's own shape (on the CPU by default)
    for name in ("rte", "sst2"):
        plain.load(name, runs[name])
    assert not plain.engine.pad_rows and plain.warm(max_rows=8) == 0 and not plain.engine.bucket_ms
    items = [(t, e) for t in ("rte", "sst2") for e in _examples(served, t)][:8]

    def work(reg):
        return [(reg.index(t), reg.tasks[t].runner, e) for t, e in items]

    # timings where every padded token costs: rows of different buckets run apart
    engine.bucket_ms = {(h, w): 0.01 * h * w for h, w in engine.bucket_ms}
    with torch.inference_mode():
        want = predict(plain.forward, work(plain), 8, "cpu")
        lengths = sorted((len(e["_rows"][0]["input_ids"]) for _, e in items), reverse=True)
        plan = engine.plan(lengths, 8)
        assert len(set(lengths)) > 1 and len(plan) > 1 and sum(plan) == len(items), lengths
        calls = engine.calls
        shapes = []
        if forward == "eager":  # the shapes it ran on: warmed buckets only
            shapes = _recording(engine)
        got = predict(served.forward, work(served), 8, "cpu", plan=engine.plan)
        assert engine.calls - calls == len(plan)
        assert set(shapes) <= engine.warmed and len(shapes) == (len(plan) if forward == "eager" else 0)
    assert [a["label"] for a in got] == [b["label"] for b in want]
    for a, b in zip(got, want, strict=True):
        for name, p in a["probabilities"].items():
            assert b["probabilities"][name] == pytest.approx(p, abs=1e-5)
