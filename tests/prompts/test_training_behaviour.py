"""What trains, what stays frozen, and that checkpointing / dropout / fold behave."""

from __future__ import annotations

import pytest
import torch

from deepprompt.prompts import DeepPromptConfig, add_deep_prompts
from deepprompt.prompts import attention as attention_module

ATTN = ("sdpa", "eager")
ENCODERS = ["bert", "bert-cls", "roberta", "roberta-cls"]


def _loss(tiny, wrapped, ids, mask):
    out = wrapped(input_ids=ids, attention_mask=mask)
    output = tiny.main_output(out)
    if output.dim() == 2:  # sequence classification logits
        return torch.nn.functional.cross_entropy(output, torch.tensor([0, 2, 1][: ids.shape[0]]))
    return output.pow(2).mean()


# 4. only prompts (and the task head) get gradients -----------------------------------------------------
@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", [*ENCODERS, "llama", "gpt2"])
@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_only_prompts_and_head_get_gradients(tiny, kind, attn, reparam):
    wrapped = add_deep_prompts(
        tiny.build(kind, attn), DeepPromptConfig(length=3, reparam=reparam, reparam_hidden=8)
    )
    wrapped.train()
    ids, mask = tiny.batch([6, 4, 5])
    _loss(tiny, wrapped, ids, mask).backward()

    prompt_params = dict(wrapped.prompt_encoder.named_parameters())
    assert prompt_params, "no prompt parameters"
    for name, p in prompt_params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"prompt parameter {name} got no gradient"
    head_names = wrapped.head_names
    assert head_names == (["classifier"] if kind.endswith("-cls") else [])
    for name, p in wrapped.model.named_parameters():
        if name.split(".")[0] in head_names:
            assert p.requires_grad and p.grad is not None, f"head parameter {name} got no gradient"
        else:
            assert not p.requires_grad, f"backbone parameter {name} is trainable"
            assert p.grad is None, f"backbone parameter {name} got a gradient"


def test_train_head_false_freezes_the_head(tiny):
    wrapped = add_deep_prompts(tiny.build("roberta-cls"), DeepPromptConfig(length=3), train_head=False)
    ids, mask = tiny.batch([6, 4])
    _loss(tiny, wrapped.train(), ids, mask).backward()
    assert wrapped.head_names == []
    assert all(p.grad is None for p in wrapped.model.parameters())
    assert wrapped.prompt_encoder.prefix.grad is not None
    counts = wrapped.num_parameters()
    assert counts["trainable"] == counts["prompt"] == wrapped.prompt_encoder.prefix.numel()


# 6. gradient checkpointing gives the same prompt gradients -----------------------------------------------
@pytest.mark.parametrize("kind,attn", [("bert-cls", "sdpa"), ("roberta", "eager"), ("llama", "sdpa")])
@pytest.mark.parametrize("reparam", ["none", "mlp"])
def test_gradient_checkpointing_gives_same_gradients(tiny, kind, attn, reparam, monkeypatch):
    calls = []
    extend = attention_module._extend_mask
    monkeypatch.setattr(attention_module, "_extend_mask", lambda *a: calls.append(1) or extend(*a))

    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(5)
        wrapped = add_deep_prompts(
            tiny.build(kind, attn, layers=3),
            DeepPromptConfig(length=4, reparam=reparam, reparam_hidden=16, dropout=0.0),
        )
        if checkpointing:
            wrapped.gradient_checkpointing_enable()
        wrapped.train()
        ids, mask = tiny.batch([6, 4, 5], seed=9)
        calls.clear()
        _loss(tiny, wrapped, ids, mask).backward()
        # checkpointing recomputes every layer's attention during backward: twice the prompted attention calls
        assert len(calls) == (6 if checkpointing else 3)
        grads.append({n: p.grad.clone() for n, p in wrapped.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        rel = ((grads[1][name] - g).norm() / g.norm()).item()
        assert rel <= 1e-6, f"{name}: relative gradient difference {rel:.2e} with checkpointing"


# dropout on the prefix: active in train mode, off in eval ---------------------------------------------
def test_prompt_dropout_only_in_train_mode(tiny):
    wrapped = add_deep_prompts(tiny.build("bert"), DeepPromptConfig(length=4, dropout=0.5))
    ids, mask = tiny.batch([6, 4])
    with torch.no_grad():
        wrapped.train()
        a, b = (wrapped(input_ids=ids, attention_mask=mask).last_hidden_state for _ in range(2))
        assert (a - b).abs().max() > 1e-4, "prompt dropout had no effect in train mode"
        wrapped.eval()
        a, b = (wrapped(input_ids=ids, attention_mask=mask).last_hidden_state for _ in range(2))
        assert torch.equal(a, b)


# 9. fold(): same output, no MLP left --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bert-cls", "roberta", "llama"])
def test_fold_keeps_outputs_and_drops_the_mlp(tiny, kind):
    wrapped = add_deep_prompts(
        tiny.build(kind), DeepPromptConfig(length=5, reparam="mlp", reparam_hidden=24, dropout=0.0)
    ).eval()
    ids, mask = tiny.batch([6, 3])
    with torch.no_grad():
        before = tiny.main_output(wrapped(input_ids=ids, attention_mask=mask))
    mlp_count = wrapped.num_parameters()["prompt"]
    wrapped.fold()
    with torch.no_grad():
        after = tiny.main_output(wrapped(input_ids=ids, attention_mask=mask))
    assert (after - before).abs().max().item() <= 1e-6
    names = [n for n, _ in wrapped.prompt_encoder.named_parameters()]
    assert names == ["prefix"], names
    g = wrapped.geometry
    width = len(wrapped.prompt_encoder.layer_ids) * 2 * g.kv_width
    assert wrapped.num_parameters()["prompt"] == 5 * width < mlp_count
    wrapped.fold()  # idempotent
    assert [n for n, _ in wrapped.prompt_encoder.named_parameters()] == ["prefix"]
