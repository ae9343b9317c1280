"""DeBERTa-v2/v3 through the hooked attention path: equal to a reference that concatenates the prefix inside the
disentangled attention, bit-identical without prompts, padding-invariant, gradients, depth, save/load.

The reference (`reference_attention`) is written here from the DeBERTa formulas, not from the engine: it
recomputes content and relative-position scores with explicit loops over the bucketed distances, prepends the
prefix keys/values, and gives the prefix columns no position term (the official P-Tuning v2 choice).

One file past 400 lines: the reference and the tiny configs serve every test here, and splitting them off would
hide the reference from the tests that rest on it.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from transformers import (
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DebertaV2Model,
)

from deepprompt.errors import ConfigError
from deepprompt.prompts import DeepPromptConfig, add_deep_prompts, load_prompts, save_prompts
from deepprompt.prompts import hooks as hooks_module

ATOL = 1e-5
PAD = 0

# DeBERTa-v3 (and v2 xlarge without the conv): log buckets, position keys shared with content keys, no absolute
# positions; "v2_conv": plus the convolution after layer 0 (deberta-v2-xlarge); "unshared": separate position
# projections, no buckets, absolute positions too; "absolute": no relative attention at all.
VARIANTS = {
    "v3": dict(
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_buckets=8,
        max_relative_positions=-1,
        share_att_key=True,
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
        type_vocab_size=0,
    ),
    "v2_conv": dict(
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_buckets=8,
        share_att_key=True,
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
        conv_kernel_size=3,
        conv_act="gelu",
    ),
    "unshared": dict(
        relative_attention=True,
        pos_att_type=["c2p", "p2c"],
        position_buckets=-1,
        max_relative_positions=16,
        share_att_key=False,
        position_biased_input=True,
        type_vocab_size=2,
    ),
    "absolute": dict(relative_attention=False, position_biased_input=True),
}


def tiny_deberta(variant="v3", layers=2, cls=True, seed=0):
    config = DebertaV2Config(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=PAD,
        num_labels=3,
        **VARIANTS[variant],
    )
    torch.manual_seed(seed)
    return (DebertaV2ForSequenceClassification if cls else DebertaV2Model)(config).eval()


def batch(lengths, n=None, seed=1):
    n = n or max(lengths)
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), n), PAD, dtype=torch.long)
    mask = torch.zeros(len(lengths), n, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(3, 99, (length,), generator=g)
        mask[row, :length] = 1
    return ids, mask


def main_output(out):
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


# -- the reference ---------------------------------------------------------------------------------------------
def _bucket(r: int, buckets: int, max_position: int) -> int:
    """DeBERTa's log-bucketed relative distance (exact within +-buckets/2, logarithmic beyond)."""
    if buckets <= 0 or max_position <= 0:
        return r
    mid = buckets // 2
    if abs(r) <= mid:
        return r
    log_pos = math.ceil(math.log(abs(r) / mid) / math.log((max_position - 1) / mid) * (mid - 1)) + mid
    return int(math.copysign(log_pos, r))


def reference_attention(
    module,
    prefix,
    hidden_states,
    attention_mask,
    output_attentions=False,
    query_states=None,
    relative_pos=None,
    rel_embeddings=None,
):
    """Disentangled attention over [prefix; real] keys, from the formulas; prefix columns: content score only."""
    b, n, _ = hidden_states.shape
    h, d = module.num_attention_heads, module.attention_head_size

    def heads(x):  # (B, len, H*d) -> (B, H, len, d)
        return x.view(x.shape[0], -1, h, d).transpose(1, 2)

    q, k, v = (heads(p(hidden_states)) for p in (module.query_proj, module.key_proj, module.value_proj))
    pk, pv = (t.expand(b, -1, -1, -1) for t in prefix)
    m = pk.shape[2]
    types = module.pos_att_type
    scale = math.sqrt(d * (1 + ("c2p" in types) + ("p2c" in types)))
    scores = torch.cat([pk, k], dim=2).matmul(q.transpose(-1, -2)).transpose(-1, -2) / scale  # (B, H, n, m+n)
    if module.relative_attention:
        span = module.position_buckets if module.position_buckets > 0 else module.max_relative_positions
        table = rel_embeddings[: 2 * span].unsqueeze(0)
        pos_key = heads(module.key_proj(table) if module.share_att_key else module.pos_key_proj(table))[0]
        pos_query = heads(module.query_proj(table) if module.share_att_key else module.pos_query_proj(table))[
            0
        ]
        buckets, max_position = module.position_buckets, module.max_relative_positions

        def row(r: int) -> int:  # the table row of a (signed, bucketed) distance
            return min(max(r + span, 0), 2 * span - 1)

        bias = torch.zeros(b, h, n, n)
        for i in range(n):
            for j in range(n):
                if "c2p" in types:  # query i against the relative position of key j seen from i
                    bias[:, :, i, j] += (
                        q[:, :, i] * pos_key[:, row(_bucket(i - j, buckets, max_position))]
                    ).sum(-1)
                if "p2c" in types:  # key j against the relative position of query i seen from j, negated
                    r = -_bucket(j - i, buckets, max_position)
                    bias[:, :, i, j] += (k[:, :, j] * pos_query[:, row(r)]).sum(-1)
        scores[..., m:] += bias / scale
    real = attention_mask.bool()  # (B, 1, n, n): query i and key j both real
    visible = torch.cat([real.any(-1, keepdim=True).expand(-1, -1, -1, m), real], dim=-1)
    scores = scores.masked_fill(~visible, torch.finfo(scores.dtype).min)
    context = scores.softmax(-1).matmul(torch.cat([pv, v], dim=2))  # (B, H, n, d)
    return context.transpose(1, 2).reshape(b, n, h * d), None


def reference_model(stock, prompts: dict):
    """A copy of the stock model whose every attention concatenates its layer's prefix (reference_attention)."""
    model = copy.deepcopy(stock)
    base = model.deberta if hasattr(model, "deberta") else model
    for layer, block in enumerate(base.encoder.layer):
        attention = block.attention.self

        def forward(*args, _module=attention, _prefix=prompts[layer], **kwargs):
            return reference_attention(_module, _prefix, *args, **kwargs)

        attention.forward = forward
    return model


# -- the tests -------------------------------------------------------------------------------------------------
def prompted(variant="v3", length=4, cls=True, layers=2, **prompt_kw):
    stock = tiny_deberta(variant, layers=layers, cls=cls)
    reference = copy.deepcopy(stock)
    torch.manual_seed(100)
    wrapped = add_deep_prompts(stock, DeepPromptConfig(length=length, dropout=0.0, **prompt_kw)).eval()
    return wrapped, reference


def _close(a, b, what, atol=ATOL):
    diff = (a - b).abs().max().item()
    assert diff <= atol, f"{what}: max abs diff {diff:.3e} > {atol}"


@pytest.mark.parametrize("cls", [True, False], ids=["cls", "bare"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_matches_reference_that_concatenates_the_prefix(variant, cls):
    wrapped, stock = prompted(variant, cls=cls)
    with torch.no_grad():
        reference = reference_model(stock, wrapped.prompt_encoder())
    for ids, mask in (batch([12, 5, 9, 1]), (batch([7, 7])[0], None)):
        real = (mask if mask is not None else torch.ones_like(ids)).bool()
        with torch.no_grad():
            out = wrapped(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            ref = reference(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            plain = stock(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        if cls:
            _close(out.logits, ref.logits, "logits")
        for i, (h, r) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
            _close(h[real], r[real], f"hidden state {i} (real tokens)")
        # the prompts must matter, or the comparison proves nothing
        assert (out.hidden_states[-1] - plain.hidden_states[-1])[real].abs().max() > 1e-2


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_unprompted_call_is_bit_identical(variant):
    wrapped, stock = prompted(variant)
    ids, mask = batch([9, 4, 6])
    with torch.no_grad():
        for m in (mask, None):
            out = wrapped.model(input_ids=ids, attention_mask=m, output_hidden_states=True)
            ref = stock(input_ids=ids, attention_mask=m, output_hidden_states=True)
            assert torch.equal(out.logits, ref.logits)
            for h, r in zip(out.hidden_states, ref.hidden_states, strict=True):
                assert torch.equal(h, r)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_padding_does_not_change_real_tokens(variant):
    wrapped, _ = prompted(variant)
    ids, mask = batch([5, 11, 3], seed=3)
    with torch.no_grad():
        alone = wrapped(input_ids=ids[:1, :5], attention_mask=mask[:1, :5], output_hidden_states=True)
        inside = wrapped(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    _close(alone.hidden_states[-1][0], inside.hidden_states[-1][0, :5], "last hidden state")
    _close(alone.logits[0], inside.logits[0], "logits")


def _loss(wrapped, ids, mask):
    logits = wrapped(input_ids=ids, attention_mask=mask).logits
    return torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2, 1][: ids.shape[0]]))


@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_only_prompts_and_head_get_gradients(reparam):
    stock = tiny_deberta("v2_conv")
    wrapped = add_deep_prompts(stock, DeepPromptConfig(length=3, reparam=reparam, reparam_hidden=8)).train()
    _loss(wrapped, *batch([6, 4, 5])).backward()
    for name, p in wrapped.prompt_encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"prompt parameter {name} got no gradient"
    assert wrapped.head_names == ["pooler", "classifier"]  # DeBERTa's ContextPooler is part of its head
    for name, p in wrapped.model.named_parameters():
        if name.split(".")[0] in wrapped.head_names:
            assert p.requires_grad and p.grad is not None, f"head parameter {name} got no gradient"
        else:
            assert not p.requires_grad and p.grad is None, f"backbone parameter {name} trains"


@pytest.fixture
def adapter_calls(monkeypatch):
    """(layer, key length) of every attention call that reaches the DeBERTa adapter."""
    calls: list[tuple[int, int]] = []
    original = hooks_module.PromptedForward.__call__

    def spy(self, *args, **kwargs):
        prompt = self.router.current(self.layer)
        if prompt is not None:
            calls.append((self.layer, prompt[0].shape[2]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(hooks_module.PromptedForward, "__call__", spy)
    return calls


@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_gradient_checkpointing_replays_the_prompts(reparam, adapter_calls):
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(5)
        wrapped = add_deep_prompts(
            tiny_deberta("v3", layers=3),
            DeepPromptConfig(length=4, reparam=reparam, reparam_hidden=16, dropout=0.0),
        )
        if checkpointing:
            wrapped.gradient_checkpointing_enable()
        wrapped.train()
        adapter_calls.clear()
        _loss(wrapped, *batch([6, 4, 5], seed=9)).backward()
        # checkpointing recomputes every layer during backward, with the prefix: twice the prompted calls
        assert len(adapter_calls) == (6 if checkpointing else 3)
        grads.append({n: p.grad.clone() for n, p in wrapped.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        rel = ((grads[1][name] - g).norm() / g.norm()).item()
        assert rel <= 1e-6, f"{name}: relative gradient difference {rel:.2e} with checkpointing"


@pytest.mark.parametrize(
    "spec,expected", [("top-1", [2]), ("bottom-2", [0, 1]), ([0, 2], [0, 2]), ("all", [0, 1, 2])]
)
def test_only_chosen_layers_get_a_prefix(spec, expected, adapter_calls):
    stock = tiny_deberta("v3", layers=3)
    plain_model = copy.deepcopy(stock)
    wrapped = add_deep_prompts(stock, DeepPromptConfig(length=4, layers=spec, dropout=0.0)).eval()
    ids, mask = batch([6, 3], seed=5)
    with torch.no_grad():
        out = wrapped(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        plain = plain_model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert adapter_calls == [(layer, 4) for layer in expected]
    assert sorted(wrapped.prompt_encoder().keys()) == expected
    # hidden_states[i] is the input of layer i: everything up to the lowest prompted layer is unchanged
    lowest = expected[0]
    for i in range(lowest + 1):
        assert torch.equal(out.hidden_states[i], plain.hidden_states[i]), f"hidden state {i} changed"
    assert (out.hidden_states[lowest + 1] - plain.hidden_states[lowest + 1]).abs().max() > 1e-3


def test_round_trip_onto_fresh_backbone(tmp_path):
    wrapped = add_deep_prompts(
        tiny_deberta("v2_conv", layers=3),
        DeepPromptConfig(length=4, layers="top-2", reparam="mlp", reparam_hidden=16, dropout=0.0),
    )
    with torch.no_grad():
        for p in wrapped.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    wrapped.eval()
    ids, mask = batch([6, 3, 5])
    with torch.no_grad():
        expected = wrapped(input_ids=ids, attention_mask=mask).logits
    save_prompts(wrapped, tmp_path)

    fresh = tiny_deberta(
        "v2_conv", layers=3, seed=123
    )  # other head (and other backbone weights: replaced below)
    backbone = {
        k: v for k, v in wrapped.model.state_dict().items() if not k.startswith(("pooler.", "classifier."))
    }
    missing, unexpected = fresh.load_state_dict(backbone, strict=False)
    assert not unexpected and all(k.startswith(("pooler.", "classifier.")) for k in missing)
    loaded, _ = load_prompts(fresh, tmp_path)
    assert loaded.model is fresh and loaded.hooked
    with torch.no_grad():
        got = loaded.eval()(input_ids=ids, attention_mask=mask).logits
    _close(got, expected, "logits after save/load", atol=1e-6)


def test_prefix_mask_hides_prefix_positions():
    """Per-row prompts (padded prefix): a hidden prefix position is as if the prompt were shorter."""
    wrapped, _ = prompted("v3", length=4)
    ids, mask = batch([7, 5])
    with torch.no_grad():
        full = wrapped.eval_prompts()
        prefix_mask = torch.tensor([[True] * 4, [True, True, False, False]])
        masked = {layer: (k, v, prefix_mask) for layer, (k, v) in full.items()}
        short = {layer: (k[:, :, :2], v[:, :, :2]) for layer, (k, v) in full.items()}
        out = wrapped.model(input_ids=ids, attention_mask=mask, deep_prompts=masked).logits
        out_full = wrapped.model(input_ids=ids, attention_mask=mask, deep_prompts=full).logits
        out_short = wrapped.model(input_ids=ids[1:], attention_mask=mask[1:], deep_prompts=short).logits
    _close(out[0], out_full[0], "row with every prefix position visible")
    _close(out[1], out_short[0], "row with two hidden prefix positions")
    assert (out_full[1] - out[1]).abs().max() > 1e-4


def test_frozen_bf16_under_autocast_stays_close():
    wrapped, _ = prompted("v3")
    ids, mask = batch([7, 4])
    with torch.no_grad():
        fp32 = wrapped(input_ids=ids, attention_mask=mask).logits
    wrapped.cast_frozen(torch.bfloat16)
    wrapped.frozen_dtype = torch.bfloat16
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = wrapped(input_ids=ids, attention_mask=mask).logits
    _close(bf16.float(), fp32, "bf16 logits", atol=5e-2)


def test_cuda_graphs_are_refused_with_the_key_to_change():
    wrapped, _ = prompted("v3")
    with pytest.raises(ConfigError, match="method.cuda_graphs=false"):
        wrapped.enable_cuda_graphs()
    assert wrapped.graphs is None


def _pickled(model):
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("clone", [copy.deepcopy, _pickled], ids=["deepcopy", "pickle"])
def test_a_copy_gets_its_own_hooks(clone):
    """The hooks travel with a deep copy or a pickle: a copy's attention reads the copy's prompts, not the
    original's."""
    wrapped, _ = prompted("v3")
    twin = clone(wrapped)
    ids, mask = batch([7, 4])
    with torch.no_grad():
        before = wrapped(input_ids=ids, attention_mask=mask).logits
        assert torch.equal(twin(input_ids=ids, attention_mask=mask).logits, before)
        twin.prompt_encoder.prefix.add_(1.0)
        assert torch.equal(wrapped(input_ids=ids, attention_mask=mask).logits, before)
        assert (twin(input_ids=ids, attention_mask=mask).logits - before).abs().max() > 1e-4


@pytest.mark.slow
def test_compiled_backbone_gives_the_eager_loss_and_gradients():
    from deepprompt.prompts.compiling import compile_backbone

    eager = add_deep_prompts(tiny_deberta("v3"), DeepPromptConfig(length=4, dropout=0.0)).train()
    compiled = copy.deepcopy(eager)
    compile_backbone(compiled.model, backend="aot_eager", dynamic=None)
    results = []
    for model in (eager, compiled):
        loss = _loss(model, *batch([9, 4, 9]))
        loss.backward()
        results.append((loss.detach(), model.prompt_encoder.prefix.grad))
    torch.testing.assert_close(results[1][0], results[0][0])
    torch.testing.assert_close(results[1][1], results[0][1])
    assert results[0][1].abs().sum() > 0


def test_threads_with_different_prompts_do_not_mix():
    """Each thread's call sees its own deep_prompts (a server may run one model from several threads)."""
    import threading

    wrapped, _ = prompted("v3")
    ids, mask = batch([9, 6])
    base = wrapped.eval_prompts()
    bundles = [
        {layer: (k * scale, v * scale) for layer, (k, v) in base.items()} for scale in (1.0, -2.0, 0.5)
    ]
    with torch.no_grad():
        expected = [wrapped.model(input_ids=ids, attention_mask=mask, deep_prompts=b).logits for b in bundles]
    assert (expected[0] - expected[1]).abs().max() > 1e-4
    start, failures = threading.Barrier(len(bundles)), []

    def work(i):
        start.wait()
        with torch.no_grad():
            for _ in range(20):
                got = wrapped.model(input_ids=ids, attention_mask=mask, deep_prompts=bundles[i]).logits
                if not torch.equal(got, expected[i]):
                    failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(bundles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, f"threads {sorted(set(failures))} saw another thread's prompts"
