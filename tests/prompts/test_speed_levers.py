"""The engine's speed switches give the same results as the plain path.

- compact masks (no mask without padding, (B, 1, 1, m + n) with padding) vs the naive materialised
  (B, 1, n, m + n) mask: same outputs and prompt gradients, encoders and decoders, sdpa and eager;
- a bf16 frozen backbone: bf16 frozen weights, fp32 prompts/head/gradients, close to fp32 weights under
  autocast, and a clear error without autocast;
- cached inference prompts: equal outputs, computed once, dropped when a prompt changes or the mode changes;
- detach below the lowest prompted layer: identical prompt gradients, no gradient below.
"""

from __future__ import annotations

import copy

import pytest
import torch

from deepprompt.prompts import DeepPromptConfig, add_deep_prompts
from deepprompt.prompts import attention as attention_module
from deepprompt.tasks.optim import build_optimizer

ATTN = ("sdpa", "eager")


def pair(tiny, kind, attn, length=4, layers="all", dropout=0.0, **speed):
    """(fast model, naive model): the same backbone and prompts, speed switches on vs off."""
    model = tiny.build(kind, attn)
    naive_backbone = copy.deepcopy(model)
    config = DeepPromptConfig(length=length, layers=layers, dropout=dropout)
    torch.manual_seed(7)
    fast = add_deep_prompts(model, config, **speed)
    torch.manual_seed(7)
    naive = add_deep_prompts(
        naive_backbone, config, compact_mask=False, cache_prompts=False, detach_below=False
    )
    naive.load_state_dict(fast.state_dict())
    return fast, naive


def _loss_and_grads(model, ids, mask):
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, attention_mask=mask)
    logits = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
    loss = logits.float().pow(2).mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


@pytest.fixture
def mask_spy(monkeypatch):
    """Records the attention mask each prompted layer hands to the stock attention function."""
    seen = []
    for base in ATTN:
        original = attention_module.sdpa_attention_forward if base == "sdpa" else None

        def wrap(inner):
            def spy(module, query, key, value, attention_mask, **kwargs):
                seen.append(None if attention_mask is None else tuple(attention_mask.shape))
                return inner(module, query, key, value, attention_mask, **kwargs)

            return spy

        if original is not None:
            monkeypatch.setattr(attention_module, "sdpa_attention_forward", wrap(original))
    attention_module.register()
    yield seen
    monkeypatch.undo()
    attention_module.register()


# 1. compact masks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", ["bert-cls", "roberta-cls", "llama", "gpt2"])
@pytest.mark.parametrize("padded", [False, True])
def test_compact_mask_matches_materialised_mask(tiny, kind, attn, padded):
    fast, naive = pair(tiny, kind, attn)
    fast.train(), naive.train()  # dropout is 0 in the tiny configs: train mode is deterministic
    ids, mask = tiny.batch([7, 4, 6, 2] if padded else [7, 7, 7, 7], left=kind in ("llama", "gpt2"))
    out_fast, grads_fast = _loss_and_grads(fast, ids, mask if padded else None)
    out_naive, grads_naive = _loss_and_grads(naive, ids, mask if padded else None)
    real = mask.bool()
    if out_fast.dim() == 3 and out_fast.shape[1] == ids.shape[1]:
        out_fast, out_naive = out_fast[real], out_naive[real]
    torch.testing.assert_close(out_fast, out_naive, atol=1e-5, rtol=1e-5)
    assert grads_fast.keys() == grads_naive.keys() and any("prompt_encoder" in n for n in grads_fast)
    for name, grad in grads_fast.items():
        torch.testing.assert_close(grad, grads_naive[name], atol=1e-5, rtol=1e-4, msg=name)


def test_mask_shapes_seen_by_sdpa(tiny, mask_spy):
    b, n, m = 4, 7, 4
    fast, naive = pair(tiny, "bert-cls", "sdpa", length=m)
    ids, mask = tiny.batch([7, 4, 6, 2])
    with torch.no_grad():
        fast(input_ids=ids)  # no padding: no mask at all (flash attention stays available)
        assert mask_spy == [None, None]
        mask_spy.clear()
        fast(input_ids=ids, attention_mask=torch.ones_like(mask))  # an all-ones mask is no padding either
        assert mask_spy == [None, None]
        mask_spy.clear()
        fast(input_ids=ids, attention_mask=mask)  # padding: one key-padding row, broadcast over queries
        assert mask_spy == [(b, 1, 1, m + n)] * 2
        mask_spy.clear()
        naive(input_ids=ids)  # the naive path materialises the full square in every layer
        assert mask_spy == [(b, 1, n, m + n)] * 2


def test_unprompted_bidirectional_mask_is_key_padding_only(tiny):
    model = add_deep_prompts(tiny.build("bert", "sdpa"), DeepPromptConfig(length=2)).model
    from transformers.masking_utils import create_bidirectional_mask

    ids, mask = tiny.batch([5, 3])
    embeds = torch.zeros(2, 5, model.config.hidden_size)
    built = create_bidirectional_mask(config=model.config, inputs_embeds=embeds, attention_mask=mask)
    assert tuple(built.shape) == (2, 1, 1, 5)
    assert built[1, 0, 0].tolist() == [True, True, True, False, False]
    assert create_bidirectional_mask(config=model.config, inputs_embeds=embeds, attention_mask=None) is None


# 2. bf16 frozen backbone -----------------------------------------------------------------------------------
def test_bf16_frozen_backbone(tiny):
    model = tiny.build("roberta-cls", "sdpa")
    reference = add_deep_prompts(copy.deepcopy(model), DeepPromptConfig(length=4, dropout=0.0))
    fast = add_deep_prompts(model, DeepPromptConfig(length=4, dropout=0.0), frozen_dtype="bf16")
    fast.prompt_encoder.load_state_dict(reference.prompt_encoder.state_dict())
    for name, param in fast.named_parameters():
        expected = torch.float32 if param.requires_grad else torch.bfloat16
        assert param.dtype == expected, name
    assert any(p.requires_grad for n, p in fast.named_parameters() if n.startswith("model.classifier"))
    ids, mask = tiny.batch([7, 4, 6, 2])
    fast.train()
    reference.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(input_ids=ids, attention_mask=mask).logits
        ref = reference(input_ids=ids, attention_mask=mask).logits
    assert torch.isfinite(out).all()
    # bf16 weights under bf16 autocast: the matmuls already ran in bf16, only the LayerNorm/bias rounding differs
    torch.testing.assert_close(out.float(), ref.float(), atol=5e-2, rtol=5e-2)
    out.float().pow(2).mean().backward()
    grads = [p.grad for p in fast.prompt_encoder.parameters()]
    assert grads and all(
        g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads
    )
    with pytest.raises(RuntimeError, match="autocast"):
        fast(input_ids=ids, attention_mask=mask)


def test_frozen_dtype_from_method_config(tiny):
    from deepprompt.methods.ptuning_v2 import PTuningV2Config, build_ptuning_v2

    model = build_ptuning_v2(tiny.build("bert", "sdpa"), PTuningV2Config(frozen_dtype="bf16"))
    assert model.frozen_dtype == torch.bfloat16
    assert next(model.model.parameters()).dtype == torch.bfloat16
    assert next(model.prompt_encoder.parameters()).dtype == torch.float32
    from deepprompt.errors import ConfigError

    with pytest.raises(ConfigError):
        PTuningV2Config(frozen_dtype="int8")


# 3. cached inference prompts -------------------------------------------------------------------------------
@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_inference_prompt_cache(tiny, reparam, monkeypatch):
    model = add_deep_prompts(tiny.build("bert-cls", "sdpa"), DeepPromptConfig(length=4, reparam=reparam))
    uncached = copy.deepcopy(model)
    uncached.cache_prompts = False
    model.eval(), uncached.eval()
    calls = []
    original = type(model.prompt_encoder).forward
    monkeypatch.setattr(type(model.prompt_encoder), "forward", lambda self: calls.append(1) or original(self))
    ids, mask = tiny.batch([7, 4, 6, 2])
    with torch.no_grad():
        first = model(input_ids=ids, attention_mask=mask).logits
        calls_after_first = len(calls)
        second = model(input_ids=ids, attention_mask=mask).logits
        assert len(calls) == calls_after_first  # second forward: no prompt encoder (no MLP) call
        torch.testing.assert_close(first, second, atol=0, rtol=0)
        torch.testing.assert_close(first, uncached(input_ids=ids, attention_mask=mask).logits)
    with torch.inference_mode():
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, first)
    # a prompt change (an optimizer step, load_state_dict ...) invalidates the cache
    with torch.no_grad():
        for param in model.prompt_encoder.parameters():
            param.add_(0.5)
        changed = model(input_ids=ids, attention_mask=mask).logits
    assert (changed - first).abs().max() > 1e-5
    with torch.no_grad():
        for param in uncached.prompt_encoder.parameters():
            param.add_(0.5)
        torch.testing.assert_close(changed, uncached(input_ids=ids, attention_mask=mask).logits)
    # train mode, or eval with gradients on: no cache, gradients reach the prompts
    model.train()
    assert model._prompt_cache is None
    model.eval()
    model(input_ids=ids, attention_mask=mask).logits.sum().backward()
    assert all(p.grad is not None for p in model.prompt_encoder.parameters())


def test_cache_follows_autocast_dtype(tiny):
    model = add_deep_prompts(tiny.build("bert-cls", "sdpa"), DeepPromptConfig(length=4)).eval()
    ids, _ = tiny.batch([5, 5])
    with torch.no_grad():
        model(input_ids=ids)
        assert next(iter(model._prompt_cache[1].values()))[0].dtype == torch.float32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(input_ids=ids)
        assert next(iter(model._prompt_cache[1].values()))[0].dtype == torch.bfloat16


# 4. no backward below the lowest prompted layer ------------------------------------------------------------
@pytest.mark.parametrize("attn", ATTN)
def test_detach_below_lowest_prompted_layer(tiny, attn):
    fast, naive = pair(tiny, "bert-cls", attn, layers="top-1", detach_below=True)
    for model in (fast, naive):
        model.model.enable_input_require_grads()  # as reentrant checkpointing would: inputs require grad
        model.train()
    entering = {}

    def record(name):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            entering[name] = hidden.requires_grad

        return hook

    layer = fast.model.bert.encoder.layer[1]
    handle = layer.register_forward_pre_hook(record("fast"), with_kwargs=True)
    ids, mask = tiny.batch([7, 4, 6, 2])
    _, grads_fast = _loss_and_grads(fast, ids, mask)
    handle.remove()
    _, grads_naive = _loss_and_grads(naive, ids, mask)
    assert grads_fast.keys() == grads_naive.keys()
    for name, grad in grads_fast.items():
        torch.testing.assert_close(grad, grads_naive[name], atol=0, rtol=0, msg=name)
    # the layer-1 pre-hook registered after ours sees the detached state
    assert entering["fast"] is False


def test_nothing_below_records_a_graph_by_default(tiny):
    model = add_deep_prompts(tiny.build("bert-cls", "sdpa"), DeepPromptConfig(length=4, layers="top-1"))
    model.train()
    ids, mask = tiny.batch([7, 4])
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    hidden = out.hidden_states  # embeddings, layer 0 (unprompted), layer 1 (prompted)
    assert not hidden[0].requires_grad and not hidden[1].requires_grad and hidden[2].requires_grad


def test_trainable_input_embeddings_are_not_cut(tiny):
    model = add_deep_prompts(tiny.build("bert-cls", "sdpa"), DeepPromptConfig(length=4, layers="top-1"))
    model.model.bert.embeddings.word_embeddings.weight.requires_grad_(True)  # something below trains
    model.train()
    ids, mask = tiny.batch([7, 4])
    model(input_ids=ids, attention_mask=mask).logits.sum().backward()
    assert model.model.bert.embeddings.word_embeddings.weight.grad is not None


# 5. fused AdamW on CUDA ------------------------------------------------------------------------------------
def test_optimizer_fused_only_on_cuda(tiny):
    from deepprompt.config import OptimConfig

    model = add_deep_prompts(tiny.build("bert-cls", "sdpa"), DeepPromptConfig(length=4))
    optimizer = build_optimizer(model, 1e-3, OptimConfig(), total_steps=10)["optimizer"]
    assert not optimizer.defaults.get("fused")  # CPU parameters: the default (foreach) implementation
