"""``method.cuda_graphs`` (the first-epoch speed switch, prompts/graphing.py): captured training steps give the eager
loss and gradients.

CPU half: a CUDA graph cannot be captured without a GPU, so `Emulated` stands in for
`torch.cuda.make_graphed_callables` with the same contract (static inputs copied in, static output and gradient
buffers overwritten by every replay): it checks the plumbing (one capture per shape, eager where a replay would be
wrong, gradients that survive the next replay) and that the captured code reads no tensor value back to the host
(which a capture forbids). GPU half (skipped without CUDA; run on the GPU machine): the real captures.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from deepprompt.errors import ConfigError
from deepprompt.methods.ptuning_v2 import PTuningV2Config
from deepprompt.prompts import DeepPromptConfig, add_deep_prompts, graphing
from deepprompt.prompts import attention as attention_module

aten = torch.ops.aten
# ops whose result the host must read (a device-to-host copy and a wait): forbidden inside a CUDA graph capture
HOST_READS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.equal.default}


class HostReads(TorchDispatchMode):
    """Records every op that reads a tensor value back to the host (``.item()``, ``bool(t)``, ``nonzero``)."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS:
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


class Emulated:
    """``make_graphed_callables`` on CPU: what a replay does to memory, without a graph.

    Like the real one: sample args are the static inputs (a call copies its tensors in unless they are the same
    storage); a forward "replay" writes the static outputs, a backward "replay" the static gradient buffers, and
    both hand out those buffers. Counts its captures.
    """

    def __init__(self):
        self.captures = 0

    def __call__(self, fn, sample_args, num_warmup_iters=3, allow_unused_input=False, pool=None):
        self.captures += 1
        static_in = sample_args
        state = {}
        fn(*static_in)  # the warm-up and capture run the function once at least

        class Replay(torch.autograd.Function):
            @staticmethod
            def forward(ctx, *inputs):
                for static, new in zip(static_in, inputs, strict=True):
                    if static.data_ptr() != new.data_ptr():
                        static.copy_(new)
                with torch.enable_grad():
                    outs = fn(*static_in)
                if "out" not in state:
                    state["out"] = tuple(torch.empty_like(o) for o in outs)
                for buf, o in zip(state["out"], outs, strict=True):
                    buf.copy_(o.detach())
                state["graph_outs"] = outs
                return tuple(buf.detach() for buf in state["out"])

            @staticmethod
            def backward(ctx, *grads):
                wanted = [i for i in static_in if i.requires_grad]
                got = torch.autograd.grad(state["graph_outs"], wanted, grads, allow_unused=allow_unused_input)
                if "grad" not in state:
                    state["grad"] = tuple(None if g is None else torch.empty_like(g) for g in got)
                for buf, g in zip(state["grad"], got, strict=True):
                    if buf is not None:
                        buf.copy_(g)
                it = iter(state["grad"])
                return tuple(
                    (lambda b: None if b is None else b.detach())(next(it)) if i.requires_grad else None
                    for i in static_in
                )

        return lambda *args: Replay.apply(*args)


@pytest.fixture
def emulated(monkeypatch):
    capture = Emulated()
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", capture)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: object())
    return capture


def _models(tiny, kind="bert", reparam="none", max_shapes=16):
    """(graphed, eager): the same tiny backbone and prompts; the first replays its training steps."""
    torch.manual_seed(3)
    config = DeepPromptConfig(length=4, dropout=0.0, reparam=reparam, reparam_hidden=16)
    eager = add_deep_prompts(tiny.build(kind), config).train()
    graphed = copy.deepcopy(eager)
    graphed.graphs = graphing.ShapeGraphs(
        graphed, graphed._forward_eager, max_shapes=max_shapes, device_type="cpu"
    )
    return graphed, eager


def _loss(model, ids, mask):
    """A loss whose prompt gradients are O(1) (a mean of squares after LayerNorm gives ~1e-9)."""
    out = model(input_ids=ids, attention_mask=mask)
    logits = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
    weight = torch.randn(logits.shape, generator=torch.Generator().manual_seed(logits.shape[1]))
    return (logits.float() * weight.to(logits.device)).sum()


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# -- no host reads inside a capture ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bert", "roberta-cls"])
@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_training_step_reads_no_value_back_under_static_masks(tiny, kind, reparam):
    _, model = _models(tiny, kind, reparam)  # the eager one: what a capture records
    ids, mask = tiny.batch([6, 4, 5])  # padded rows
    with HostReads() as default_reads:
        _loss(model, ids, mask).backward()
    with HostReads() as static_reads, attention_module.static_masks():
        _loss(model, ids, mask).backward()
    assert default_reads.seen, "the default path asks padding_mask.all(): the detector must see it"
    assert static_reads.seen == []


def test_static_masks_give_the_same_outputs_with_and_without_padding(tiny):
    _, model = _models(tiny)
    for lengths in ([6, 6, 6], [6, 3, 5]):
        ids, mask = tiny.batch(lengths)
        torch.manual_seed(0)
        default = model._forward_eager(input_ids=ids, attention_mask=mask).last_hidden_state
        with attention_module.static_masks():
            static = model._forward_eager(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(static, default, rtol=1e-5, atol=1e-6)


# -- the plumbing, on the emulated capture -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bert", "roberta-cls"])
def test_replayed_steps_give_the_eager_loss_and_gradients(tiny, emulated, kind):
    graphed, eager = _models(tiny, kind)
    batches = [tiny.batch([6, 4, 6], seed=1), tiny.batch([3, 3], seed=2), tiny.batch([6, 6, 2], seed=3)]
    for ids, mask in batches:  # shapes (3, 6), (2, 3), (3, 6) again: two captures, three replays
        for model in (graphed, eager):
            model.zero_grad(set_to_none=True)
            loss = _loss(model, ids, mask)
            loss.backward()
            model.loss_now = loss.detach()
        torch.testing.assert_close(graphed.loss_now, eager.loss_now, rtol=1e-5, atol=1e-6)
        g, e = _grads(graphed), _grads(eager)
        assert g.keys() == e.keys() and g
        for name in e:
            torch.testing.assert_close(g[name], e[name], rtol=1e-4, atol=1e-6)
    assert emulated.captures == graphed.graphs.captures == 2
    assert graphed.graphs.replays == 3 and graphed.graphs.eager_calls == 0


def test_gradients_accumulate_across_replays(tiny, emulated):
    # a replay rewrites the graph's gradient buffers: a .grad that aliased them would lose the first micro-batch
    graphed, eager = _models(tiny)
    batches = [tiny.batch([5, 3], seed=1), tiny.batch([5, 5], seed=2)]  # the same shape: one graph
    for model in (graphed, eager):
        model.zero_grad(set_to_none=True)
        for ids, mask in batches:
            _loss(model, ids, mask).backward()
    g, e = _grads(graphed), _grads(eager)
    for name in e:
        torch.testing.assert_close(g[name], e[name], rtol=1e-4, atol=1e-6)
    assert emulated.captures == 1 and graphed.graphs.replays == 2


def test_a_second_forward_before_the_backward_runs_eager(tiny, emulated):
    graphed, eager = _models(tiny)
    ids, mask = tiny.batch([5, 3])
    for model in (graphed, eager):
        model.zero_grad(set_to_none=True)
        (_loss(model, ids, mask) + 0.5 * _loss(model, ids.flip(0), mask.flip(0))).backward()
    assert graphed.graphs.replays == 1 and graphed.graphs.eager_calls == 1
    for name, grad in _grads(eager).items():
        torch.testing.assert_close(_grads(graphed)[name], grad, rtol=1e-4, atol=1e-6)
    _loss(graphed, ids, mask).backward()  # the backward released it: the next forward replays
    assert graphed.graphs.replays == 2


def test_a_forward_without_backward_blocks_replays_until_the_next_step(tiny, emulated):
    graphed, _ = _models(tiny)
    ids, mask = tiny.batch([5, 3])
    _loss(graphed, ids, mask)  # never backpropagated
    _loss(graphed, ids, mask)
    assert graphed.graphs.eager_calls == 1
    graphed.graphs.new_step()  # TaskModule calls this at every batch start
    _loss(graphed, ids, mask).backward()
    assert graphed.graphs.replays == 2


def test_eval_no_grad_and_surplus_shapes_run_eager(tiny, emulated):
    graphed, _ = _models(tiny, max_shapes=1)
    ids, mask = tiny.batch([5, 3])
    with torch.no_grad():
        graphed(input_ids=ids, attention_mask=mask)
    graphed.eval()
    graphed(input_ids=ids, attention_mask=mask)
    assert emulated.captures == 0
    graphed.train()
    _loss(graphed, ids, mask).backward()
    with pytest.warns(UserWarning, match="more than 1 batch shapes"):
        _loss(graphed, *tiny.batch([4, 4, 4])).backward()
    assert emulated.captures == 1 and graphed.graphs.eager_calls == 1


def test_moving_or_casting_the_weights_drops_the_graphs(tiny, emulated):
    graphed, _ = _models(tiny)
    ids, mask = tiny.batch([5, 3])
    _loss(graphed, ids, mask).backward()
    assert len(graphed.graphs.graphs) == 1
    graphed.to(torch.float64).to(torch.float32)
    assert graphed.graphs.graphs == {}
    _loss(graphed, ids, mask).backward()
    graphed.cast_frozen(torch.float32)
    assert graphed.graphs.graphs == {} and emulated.captures == 2


# -- the option --------------------------------------------------------------------------------------------
def test_cuda_graphs_and_compile_are_exclusive():
    with pytest.raises(ConfigError, match="does not combine with method.compile='reduce-overhead'"):
        PTuningV2Config(cuda_graphs=True, compile="reduce-overhead")
    with pytest.raises(ConfigError, match="cuda_graph_shapes must be at least 1"):
        PTuningV2Config(cuda_graphs=True, cuda_graph_shapes=0)


def test_cuda_graphs_refuse_gradient_checkpointing_in_either_order(tiny):
    config = DeepPromptConfig(length=4)
    graphed = add_deep_prompts(tiny.build("bert"), config)
    graphed.enable_cuda_graphs()
    with pytest.raises(ConfigError, match="gradient_checkpointing=true does not combine"):
        graphed.gradient_checkpointing_enable()
    checkpointed = add_deep_prompts(tiny.build("bert"), config)
    checkpointed.gradient_checkpointing_enable()
    with pytest.raises(ConfigError, match="does not combine with gradient checkpointing"):
        checkpointed.enable_cuda_graphs()


def test_method_option_enables_the_graphs(tiny):
    from deepprompt.config import structured
    from deepprompt.methods import build_method, method_schema

    cfg = structured(method_schema("ptuning_v2"), {"name": "ptuning_v2", "cuda_graphs": True}, "method")
    model = build_method(tiny.build("bert"), cfg)
    assert isinstance(model.graphs, graphing.ShapeGraphs) and model.graphs.max_shapes == 16
    plain = build_method(
        tiny.build("bert"), structured(method_schema("ptuning_v2"), {"name": "ptuning_v2"}, "method")
    )
    assert plain.graphs is None


# -- the real captures (GPU) -------------------------------------------------------------------------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _gpu_models(tiny, dropout=0.0, frozen_dtype="bf16"):
    torch.manual_seed(3)
    config = DeepPromptConfig(length=4, dropout=dropout)
    eager = add_deep_prompts(
        tiny.build("roberta-cls", layers=3, hidden=64), config, frozen_dtype=frozen_dtype
    )
    eager = eager.cuda().train()
    graphed = copy.deepcopy(eager)
    graphed.enable_cuda_graphs()
    return graphed, eager


@gpu
def test_gpu_replays_give_the_eager_loss_and_gradients(tiny):
    graphed, eager = _gpu_models(tiny)
    shapes = [[6, 4, 6, 6], [3, 3, 2, 3], [6, 6, 6, 2], [3, 1, 3, 3]]  # two shapes, each twice
    for i, lengths in enumerate(shapes):
        ids, mask = (t.cuda() for t in tiny.batch(lengths, seed=i))
        results = []
        for model in (graphed, eager):
            model.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = _loss(model, ids, mask)
            loss.backward()
            results.append((loss.detach(), _grads(model)))
        (loss_g, grads_g), (loss_e, grads_e) = results
        torch.testing.assert_close(loss_g, loss_e, rtol=1e-3, atol=1e-5)
        assert grads_g.keys() == grads_e.keys() and grads_g
        for name in grads_e:
            torch.testing.assert_close(grads_g[name], grads_e[name], rtol=2e-2, atol=1e-5)
    assert len(graphed.graphs.graphs) == 2 and graphed.graphs.replays == 4


@gpu
def test_gpu_gradients_accumulate_and_dropout_replays_draw_new_masks(tiny):
    graphed, eager = _gpu_models(tiny)
    batches = [tuple(t.cuda() for t in tiny.batch([5, 3], seed=s)) for s in (1, 2)]
    for model in (graphed, eager):
        model.zero_grad(set_to_none=True)
        for ids, mask in batches:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                _loss(model, ids, mask).backward()
    for name, grad in _grads(eager).items():
        torch.testing.assert_close(_grads(graphed)[name], grad, rtol=2e-2, atol=1e-5)
    noisy, _ = _gpu_models(tiny, dropout=0.5)
    ids, mask = batches[0]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        first, second = (_loss(noisy, ids, mask).detach() for _ in range(2))
    assert noisy.graphs.replays == 2 - noisy.graphs.eager_calls >= 1
    assert not torch.equal(first, second)  # each replay draws its own prompt-dropout mask


@gpu
def test_gpu_lightning_fit_replays_its_training_steps():
    import lightning as L

    from deepprompt.tasks.classification.module import ClassificationModule
    from tests.methods.test_methods import TINY, padded_batch

    method = {"name": "ptuning_v2", "prompt": {"length": 4}, "cuda_graphs": True, "frozen_dtype": "bf16"}
    module = ClassificationModule(backbone=TINY, method=method, num_labels=2, head={"pooling": "cls"})
    long = padded_batch()
    short = {k: v[:, :5] for k, v in long.items() if k != "labels"} | {"labels": long["labels"]}
    batches = [long, short] * 3
    before = module.encoder.prompt_encoder.prefix.detach().clone()
    losses = []

    class Losses(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Losses()],
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    graphs = module.encoder.graphs  # its dict is empty again: Lightning's teardown moved the model to the CPU
    assert graphs.captures == 2 and graphs.replays == len(batches) and graphs.eager_calls == 0
    assert len(losses) == len(batches) and all(0 < loss < 10 for loss in losses), losses  # (the running mean
    # is reset at the epoch's end: read the steps' losses instead)
    assert not torch.equal(module.encoder.prompt_encoder.prefix.detach().cpu(), before)  # the prompts trained
