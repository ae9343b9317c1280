"""The server's forward (serve/forward.py): cached prefix keys/values, shape buckets and captured graphs.

CPU half: `emulated` stands in for the CUDA graph capture with its contract (the capture's inputs are static
buffers that a call copies into, tensors passed at capture are read at every replay, the outputs are static
tensors overwritten by each replay), so the plumbing runs here. GPU half (skipped without CUDA): real captures.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter

import pytest
import torch

from deepprompt.inference.engine import predict
from deepprompt.inference.inputs import example_from_fields
from deepprompt.prompts import DeepPromptConfig, attention
from deepprompt.prompts.multitask import MultiTaskDeepPromptModel
from deepprompt.runs.restore import load_run_config
from deepprompt.serve.forward import BucketedForward, PrefixTable, bucket, row_bucket
from deepprompt.serve.registry import CachedPrompts, TaskRegistry
from tests.prompts import helpers
from tests.prompts.test_attention_work import VIEWS, OpCount
from tests.prompts.test_cuda_graphs import HostReads

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = {
    "a": DeepPromptConfig(length=4, dropout=0.0),
    "b": DeepPromptConfig(length=[0, 2, 6], dropout=0.0),  # no prompt in layer 0, different lengths
    "c": DeepPromptConfig(
        length={"profile": "linear_up", "base": 2}, reparam="mlp", reparam_hidden=8, dropout=0.0
    ),
}
TASKS = ["a", "b", "c", "b", "a"]


def emulated(fn, inputs, warmup, pool):
    """A CUDA graph capture on the CPU: the replay reruns ``fn`` on the capture's own inputs into its outputs."""
    outputs = fn(**inputs)

    def replay():
        for static, new in zip(outputs, fn(**inputs), strict=True):
            static.copy_(new)

    return replay, outputs


def _setup(family="bert", configs=CONFIGS, **engine):
    torch.manual_seed(0)
    backbone = (helpers.tiny_bert if family == "bert" else helpers.tiny_llama)(layers=3)
    multi = MultiTaskDeepPromptModel(backbone, configs).eval()  # the uncached path: encoders run per forward
    table = PrefixTable(torch.device("cpu"), torch.float32)
    cached = [
        CachedPrompts(copy.deepcopy(multi.encoders[t]), torch.float32, torch.device("cpu")) for t in configs
    ]
    table.rebuild([c() for c in cached])
    return multi, table, BucketedForward(multi.model, table, **engine)


def _ids(tasks):
    return torch.tensor([list(CONFIGS).index(t) for t in tasks])


def _close(got, want, mask):
    real = mask.bool()
    return (got[real] - want[real]).abs().max().item()


def test_bucket_sizes():
    assert [row_bucket(n) for n in (1, 2, 3, 5, 32, 33)] == [1, 2, 4, 8, 32, 64]
    assert [bucket(n, 32) for n in (1, 32, 33, 100)] == [32, 32, 64, 128]
    assert bucket(100, 32, cap=112) == 112 and bucket(120, 32, cap=112) == 120  # never below the batch
    assert bucket(7, None) == 7


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_cached_prefixes_give_the_uncached_multitask_outputs(family):
    multi, table, engine = _setup(family)
    assert table.masked and table.layers == (0, 1, 2)
    ids, mask = helpers.batch([7, 3, 5, 6, 2])
    with torch.no_grad():
        want = multi(TASKS, input_ids=ids, attention_mask=mask).last_hidden_state
        got = engine(_ids(TASKS), {"input_ids": ids, "attention_mask": mask}).last_hidden_state
        bare = engine(None, {"input_ids": ids, "attention_mask": mask}).last_hidden_state
    assert got.shape == want.shape
    assert _close(got, want, mask) < 1e-5
    assert _close(bare, want, mask) > 1e-2  # the prefixes are really there


@pytest.mark.parametrize("configs", [CONFIGS, {"a": CONFIGS["a"], "b": DeepPromptConfig(length=4)}])
def test_padding_to_the_bucket_leaves_every_row_unchanged(configs):
    multi, table, plain = _setup(configs=configs)
    assert table.masked == (configs is CONFIGS)  # equal lengths everywhere: no prefix mask
    padded = BucketedForward(multi.model, table, pad_to_multiple_of=8, pad_rows=True)
    tasks = [t for t in TASKS if t in configs]
    ids, mask = helpers.batch([7, 3, 5, 2, 6][: len(tasks)])
    batch = {"input_ids": ids, "attention_mask": mask}
    task_ids = torch.tensor([list(configs).index(t) for t in tasks])
    assert padded.pad(task_ids, batch)[1]["input_ids"].shape == (row_bucket(len(tasks)), 8)
    with torch.no_grad():
        a = plain(task_ids, batch)
        b = padded(task_ids, batch)
    assert b.last_hidden_state.shape == a.last_hidden_state.shape
    assert _close(b.last_hidden_state, a.last_hidden_state, mask) < 1e-5
    assert (b.pooler_output - a.pooler_output).abs().max() < 1e-5


def test_replays_give_the_eager_outputs_per_bucket():
    multi, table, eager = _setup()
    graphed = BucketedForward(multi.model, table, pad_to_multiple_of=8, graphs=True, capture=emulated)
    with torch.no_grad():
        for seed, lengths in [(1, [7, 3, 5]), (2, [6, 2, 4]), (3, [8, 8, 8, 1]), (4, [2])]:
            ids, mask = helpers.batch(lengths, seed=seed)
            batch = {"input_ids": ids, "attention_mask": mask}
            task_ids = _ids(TASKS[: len(lengths)])
            want = eager(task_ids, batch).last_hidden_state
            got = graphed(task_ids, batch).last_hidden_state
            assert _close(got, want, mask) < 1e-5, lengths
            bare = graphed(None, batch).last_hidden_state  # a bare forward is a shape of its own
            assert _close(bare, eager(None, batch).last_hidden_state, mask) < 1e-5
    # (3 rows -> 4, len 8) twice, then 4 rows x 8, then 1 row x 8; each with and without prompts
    assert graphed.graphs.counts() == {"shapes": 4, "captures": 4, "replays": 8, "eager_calls": 0}


def test_a_replay_for_the_server_hands_out_its_static_outputs_without_copies():
    multi, table, eager = _setup()
    graphed = BucketedForward(multi.model, table, pad_to_multiple_of=8, graphs=True, capture=emulated)
    ids, mask = helpers.batch([8, 5, 8, 2], seed=5)  # 4 rows of 8: the bucket itself, nothing to cut
    batch, task_ids = {"input_ids": ids, "attention_mask": mask}, _ids(TASKS[:4])
    with torch.no_grad():
        kept = graphed(task_ids, batch).last_hidden_state  # the default: a copy the next call leaves alone
        out = graphed(task_ids, batch, copy_outputs=False)
        want = eager(task_ids, batch, copy_outputs=False).last_hidden_state
    ((_, _, static),) = graphed.graphs.graphs.values()
    assert out.last_hidden_state.data_ptr() == static[0].data_ptr()  # a view, no copy of the hidden states
    assert torch.equal(out.last_hidden_state, kept) and _close(kept, want, mask) < 1e-5


def test_the_host_work_around_a_replay_is_the_input_copies():
    def no_replay(fn, inputs, warmup, pool):  # a graph whose replay launches nothing: the host's work alone
        return (lambda: None), fn(**inputs)

    multi, table, _ = _setup()
    graphed = BucketedForward(multi.model, table, pad_to_multiple_of=8, graphs=True, capture=no_replay)
    ids, mask = helpers.batch([8, 5, 8, 2], seed=5)
    batch, task_ids = {"input_ids": ids, "attention_mask": mask}, _ids(TASKS[:4])
    with torch.no_grad():
        graphed(task_ids, batch, copy_outputs=False)
        with OpCount() as count:
            graphed(task_ids, batch, copy_outputs=False)
    kernels = Counter({op: n for op, n in count.ops.items() if op not in VIEWS})
    assert kernels == Counter({"copy_": 3})  # ids, mask, task ids into the static buffers; no clone, no cast


def test_more_shapes_than_allowed_run_eager():
    multi, table, eager = _setup()
    graphed = BucketedForward(multi.model, table, graphs=True, max_shapes=1, capture=emulated)
    with torch.no_grad():
        for lengths in ([3, 3], [5, 2]):
            ids, mask = helpers.batch(lengths)
            batch = {"input_ids": ids, "attention_mask": mask}
            want = eager(_ids("ab"), batch).last_hidden_state
            assert _close(graphed(_ids("ab"), batch).last_hidden_state, want, mask) < 1e-5
    assert graphed.graphs.counts() == {"shapes": 1, "captures": 1, "replays": 1, "eager_calls": 1}


def _recording(engine):
    """The padded input shapes the forward runs on, recorded per call."""
    shapes, run = [], engine.run
    engine.run = lambda input_ids, **kw: shapes.append(tuple(input_ids.shape)) or run(input_ids, **kw)
    return shapes


def test_an_eager_forward_warms_and_times_every_bucket_and_serves_the_warmed_shapes():
    multi, table, plain = _setup()  # eager on each batch's own shape
    eager = BucketedForward(multi.model, table, pad_to_multiple_of=8, pad_rows=True)
    ids, mask = helpers.batch([7, 3, 5], seed=3)
    batch, task_ids = {"input_ids": ids, "attention_mask": mask}, _ids(TASKS[:3])
    example = {k: v[:1] for k, v in batch.items()}
    assert eager.plan([16, 8], 4) is None  # nothing timed yet
    with torch.no_grad():
        assert plain.warm(example, max_rows=4, max_length=16) == 0  # its shapes are not known up front
        assert not plain.bucket_ms and not plain.warmed
        buckets = eager.buckets(4, 16)
        assert buckets == [(4, 16), (2, 16), (1, 16), (4, 8), (2, 8), (1, 8)]
        assert eager.warm(example, max_rows=4, max_length=16) == len(buckets)
        assert set(eager.bucket_ms) == eager.warmed == set(buckets)
        assert all(ms > 0 for ms in eager.bucket_ms.values())
        assert eager.warm(example, max_rows=4, max_length=16) == 0  # each bucket runs once
        assert eager.counts() == {"pad_rows": True, "pad_to_multiple_of": 8, "warmed": 6, "timed": 6}
        shapes = _recording(eager)
        got = eager(task_ids, batch)
        want = plain(task_ids, batch)
    assert shapes == [(4, 8)]  # 3 rows of up to 7 tokens ran as their warmed bucket
    assert got.last_hidden_state.shape == want.last_hidden_state.shape == (3, 7, 32)  # cut back
    assert _close(got.last_hidden_state, want.last_hidden_state, mask) < 1e-5
    assert (got.pooler_output - want.pooler_output).abs().max() < 1e-5


def test_an_eager_forward_splits_a_mixed_batch_where_its_timed_buckets_say_so():
    multi, table, _ = _setup()
    eager = BucketedForward(multi.model, table, pad_to_multiple_of=8, pad_rows=True)
    ids, mask = helpers.batch([3], seed=3)
    with torch.no_grad():
        eager.warm({"input_ids": ids, "attention_mask": mask}, max_rows=8, max_length=16)
    lengths = [16, 12] + [5] * 4  # 2 long rows, 4 short: one call is 8 x 16, apart 2 x 16 and 4 x 8
    eager.bucket_ms = {(h, w): 0.01 * h * w for h, w in eager.bucket_ms}  # every padded token costs
    assert eager.plan(lengths, 8) == [2, 4]
    eager.bucket_ms = {(h, w): 1.0 + 1e-6 * h * w for h, w in eager.bucket_ms}  # a fixed cost per call
    assert eager.plan(lengths, 8) == [6]


def test_an_eager_forward_warms_at_most_max_shapes_buckets_the_longest_first():
    multi, table, plain = _setup()
    eager = BucketedForward(multi.model, table, pad_to_multiple_of=8, pad_rows=True, max_shapes=4)
    ids, mask = helpers.batch([5, 2], seed=4)
    batch, task_ids = {"input_ids": ids, "attention_mask": mask}, _ids("ab")
    with torch.no_grad():
        assert eager.warm({k: v[:1] for k, v in batch.items()}, max_rows=4, max_length=16) == 4
        assert eager.warmed == set(eager.buckets(4, 16)[:4])  # (2, 8) and (1, 8) are left
        assert eager.plan([16, 5], 4) is None  # a call of 1 x 8 was not timed: no split
        got = eager(task_ids, batch).last_hidden_state  # a bucket past them: padded and run all the same
        assert _close(got, plain(task_ids, batch).last_hidden_state, mask) < 1e-5
    assert eager.counts()["warmed"] == 4


def test_the_table_is_refilled_in_place_unless_its_layout_changes():
    multi, table, _ = _setup()
    prompts = [multi.encoders[t]() for t in CONFIGS]
    storage = table.kv.data_ptr()
    changed = [{layer: (k + 1, v) for layer, (k, v) in p.items()} for p in prompts]
    assert table.rebuild(changed) is False and table.kv.data_ptr() == storage
    assert torch.equal(table.kv[0, 0, 0, :4].transpose(0, 1), changed[0][0][0][0])  # layer 0, key, task 0
    assert table.rebuild(prompts[:2]) is False  # a task fewer: the same layout
    assert not table.kv[:, :, 2].any()
    longer = {layer: (torch.cat([k, k], 2), torch.cat([v, v], 2)) for layer, (k, v) in prompts[1].items()}
    assert table.rebuild([prompts[0], longer]) is True  # a longer prompt: a new layout, the graphs must go
    assert table.rebuild([prompts[0]] * 9) is True and table.kv.shape[2] == 16  # more tasks than rows


@pytest.mark.parametrize("configs", [CONFIGS, {"a": CONFIGS["a"]}])
def test_the_captured_forward_reads_no_value_back(configs):
    multi, table, engine = _setup(configs=configs)
    ids, mask = helpers.batch([7, 3, 5][: len(configs)])
    task_ids = torch.arange(len(configs))
    with torch.no_grad(), attention.static_masks(), HostReads() as reads:
        engine.run(ids, task_ids, **table.tensors(), attention_mask=mask)
        engine.run(ids, attention_mask=mask)
    assert reads.seen == []


# -- the registry: tiny trained runs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(serve_runs):
    return serve_runs


ITEMS = {
    "rte": [{"premise": "good warm", "hypothesis": "it is good"}, {"premise": "slow", "hypothesis": "fast"}],
    "sst2": [{"sentence": "bad dull awful day"}, {"sentence": "a bright good day"}],
    "cb": [{"premise": "warm calm", "hypothesis": "good good"}, {"premise": "dark", "hypothesis": "sad bad"}],
}


def _answers(registry, tasks):
    work = []
    for task in tasks:
        runner = registry.tasks[task].runner
        for fields in ITEMS[task]:
            work.append((registry.index(task), runner, example_from_fields(runner, fields, "x:1")))
    return predict(registry.forward, work, 8, registry.device)


def _same(a, b):
    assert [x["label"] for x in a] == [y["label"] for y in b]
    for x, y in zip(a, b, strict=True):
        for name, p in x["probabilities"].items():
            assert y["probabilities"][name] == pytest.approx(p, abs=1e-5)


def test_tasks_added_and_removed_at_runtime_refresh_the_cached_prefixes(runs):
    backbone = load_run_config(runs["rte"]).backbone
    graphed = TaskRegistry(backbone, "cpu", graphs=True, capture=emulated)
    for name in ("rte", "sst2"):
        graphed.load(name, runs[name])
    reference = {}
    for name in ("rte", "sst2", "cb"):  # each task alone on an eager registry
        alone = TaskRegistry(backbone, "cpu")
        alone.load(name, runs[name])
        reference[name] = _answers(alone, [name])
    graphs = graphed.engine.graphs
    _same(_answers(graphed, ["rte", "sst2"]), reference["rte"] + reference["sst2"])
    graphed.load("cb", runs["cb"])  # fits the table: filled in place, the graphs stay
    _same(_answers(graphed, ["rte", "cb", "sst2"]), reference["rte"] + reference["cb"] + reference["sst2"])
    graphed.remove("rte")  # the others move up a row
    _same(_answers(graphed, ["cb", "sst2"]), reference["cb"] + reference["sst2"])
    # 4 rows, 8 rows, 4 rows: two shapes, each captured once and replayed
    assert graphs.counts() == {"shapes": 2, "captures": 2, "replays": 3, "eager_calls": 0}


@pytest.mark.parametrize("forward", ["graphs", "eager"])
def test_a_removal_that_changes_the_table_layout_warms_the_buckets_again(runs, forward, monkeypatch):
    backbone = load_run_config(runs["rte"]).backbone
    options = {"graphs": True, "capture": emulated} if forward == "graphs" else {"eager_buckets": True}
    registry = TaskRegistry(backbone, "cpu", pad_to_multiple_of=8, **options)
    for name in ("rte", "sst2", "cb"):
        registry.load(name, runs[name])
    engine = registry.engine
    warmed = registry.warm(max_rows=2)
    assert warmed > 0 and engine.counts()["warmed"] == warmed
    calls = engine.calls
    registry.remove("cb")  # the table is refilled in place: its buckets stay warm, nothing runs
    assert engine.calls == calls and engine.counts()["warmed"] == warmed
    # the tiny runs share one prompt layout; a removed task whose prompts were the longest changes it
    rebuild = registry.table.rebuild
    monkeypatch.setattr(registry.table, "rebuild", lambda prompts: rebuild(prompts) or True)
    registry.remove("rte")
    assert engine.counts()["warmed"] == warmed  # warmed again for the new layout, before the next request
    if forward == "graphs":
        assert len(engine.graphs.graphs) == warmed
    assert engine.counts()["timed"] == warmed  # the new layout's timings only
    registry.remove("sst2")  # no task left: nothing to warm, and no timing of a layout that is gone
    assert engine.counts()["warmed"] == 0 and engine.counts()["timed"] == 0 and engine.plan([9, 3], 8) is None


def test_graphs_fall_back_to_eager_on_the_cpu_with_one_log_line(runs, caplog):
    backbone = load_run_config(runs["rte"]).backbone
    with caplog.at_level(logging.INFO, logger="deepprompt.serve"):
        registry = TaskRegistry(backbone, "cpu", graphs=True)
        registry.load("sst2", runs["sst2"])
        _answers(registry, ["sst2"])
    lines = [r.getMessage() for r in caplog.records if "graphs" in r.getMessage()]
    assert lines == ["graphs: CUDA graphs need a GPU; the forward runs eager on cpu"]
    engine = registry.engine  # eager on the batch's own shape: padding would only cost time here
    assert engine.graphs is None and engine.pad_to_multiple_of is None and not engine.pad_rows


# -- GPU ----------------------------------------------------------------------------------------------------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@gpu
def test_an_eager_registry_on_a_gpu_pads_to_the_buckets_and_warms_them(runs):
    backbone = load_run_config(runs["rte"]).backbone
    registry = TaskRegistry(backbone, "cuda", graphs=False)  # eager_buckets=auto: on a GPU
    registry.load("sst2", runs["sst2"])
    engine = registry.engine
    assert engine.graphs is None and engine.pad_rows and engine.pad_to_multiple_of == 32
    warmed = registry.warm(max_rows=4)
    buckets = engine.buckets(4, registry.tasks["sst2"].runner.max_length)
    assert warmed == len(buckets) and set(engine.bucket_ms) == engine.warmed == set(buckets)
    plain = TaskRegistry(backbone, "cuda", graphs=False, eager_buckets=False)
    plain.load("sst2", runs["sst2"])
    assert not plain.engine.pad_rows and plain.warm(max_rows=4) == 0
    _same(_answers(registry, ["sst2"]), _answers(plain, ["sst2"]))


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_replays_give_the_eager_outputs(dtype):
    multi, table, _ = _setup()
    multi.model.to("cuda", dtype)
    cuda_table = PrefixTable(torch.device("cuda"), dtype)
    cuda_table.rebuild(
        [{k: (kv[0].cuda(), kv[1].cuda()) for k, kv in multi.encoders[t]().items()} for t in CONFIGS]
    )
    eager = BucketedForward(multi.model, cuda_table, pad_to_multiple_of=8, pad_rows=True)
    graphed = BucketedForward(multi.model, cuda_table, pad_to_multiple_of=8, graphs=True)
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    with torch.inference_mode():
        for seed, lengths in [(1, [7, 3, 5]), (2, [6, 2, 4]), (3, [2])]:
            ids, mask = (t.cuda() for t in helpers.batch(lengths, seed=seed))
            batch = {"input_ids": ids, "attention_mask": mask}
            task_ids = _ids(TASKS[: len(lengths)])
            want = eager(task_ids, batch).last_hidden_state.float()
            got = graphed(task_ids, batch).last_hidden_state.float()
            assert _close(got, want, mask) < tol, lengths
    assert graphed.graphs.counts()["captures"] == 2 and graphed.graphs.counts()["replays"] == 3
