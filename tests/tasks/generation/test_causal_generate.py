"""Deep prompts in decoder-only generation (Llama, GPT-2): greedy, beam, left padding and the KV cache."""

from __future__ import annotations

import copy

import pytest
import torch

from deepprompt.prompts import DeepPromptConfig, add_deep_prompts
from tests.tasks.generation.helpers import left_batch, positions, tiny_causal

KINDS = ("llama", "gpt2")
ATTN = ("sdpa", "eager")
NEW = 6


pytestmark = pytest.mark.usefixtures("one_thread")


def prompted(kind, attn="sdpa", length=5, layers="all"):
    model = tiny_causal(kind, attn)
    torch.manual_seed(7)
    wrapped = add_deep_prompts(model, DeepPromptConfig(length=length, layers=layers, dropout=0.3))
    return wrapped.eval()


@torch.no_grad()
def manual_greedy(wrapped, ids, mask, steps):
    """Full forward (no cache) at every step, argmax of the last position, explicit positions."""
    for _ in range(steps):
        logits = wrapped(
            input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=False
        ).logits
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], 1)
        mask = torch.cat([mask, torch.ones_like(nxt)], 1)
    return ids


@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", KINDS)
def test_greedy_generate_equals_manual_argmax_loop(kind, attn):
    wrapped = prompted(kind, attn)
    ids, mask = left_batch([7, 4, 6])
    out = wrapped.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False)
    assert out.shape == (3, ids.shape[1] + NEW)
    assert torch.equal(out, manual_greedy(wrapped, ids, mask, NEW))


@pytest.mark.parametrize("kind", KINDS)
def test_prompts_change_generation_and_partial_depth_works(kind):
    ids, mask = left_batch([8, 8], seed=3)
    plain = tiny_causal(kind).generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW)
    wrapped = prompted(kind, layers=[1], length=3)
    out = wrapped.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW)
    assert torch.equal(out, manual_greedy(wrapped, ids, mask, NEW))
    assert not torch.equal(out, plain)  # the prefix is really seen while decoding


@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("kind", KINDS)
def test_no_prompt_is_the_models_own_generate(kind, attn):
    """The prompted attention without ``deep_prompts`` is the stock one: same tokens, same scores (to 1e-6:
    with left padding the stock sdpa path may pick another kernel/mask layout, ~3e-8 apart)."""
    reference = tiny_causal(kind, attn)
    wrapped = add_deep_prompts(copy.deepcopy(reference), DeepPromptConfig(length=4)).eval()
    ids, mask = left_batch([6, 3])
    kw = dict(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=NEW,
        output_scores=True,
        return_dict_in_generate=True,
    )
    a, b = reference.generate(**kw), wrapped.model.generate(**kw)
    assert torch.equal(a.sequences, b.sequences)
    for x, y in zip(a.scores, b.scores, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_left_padded_rows_equal_rows_generated_alone(kind):
    wrapped = prompted(kind)
    lengths = [9, 3, 6]
    ids, mask = left_batch(lengths, seed=5)
    out = wrapped.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW)
    n = ids.shape[1]
    for row, length in enumerate(lengths):
        alone = ids[row : row + 1, n - length :]
        single = wrapped.generate(input_ids=alone, attention_mask=torch.ones_like(alone), max_new_tokens=NEW)
        assert torch.equal(out[row, n:], single[0, length:]), f"row {row}"


@pytest.mark.parametrize("kind", KINDS)
def test_kv_cache_holds_real_tokens_only(kind):
    """The prefix is prepended after the cache update: the cache grows by real tokens, never by m."""
    wrapped = prompted(kind, length=5)
    ids, mask = left_batch([6, 4])
    with torch.no_grad():
        out = wrapped(input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=True)
        cache = out.past_key_values
        assert cache.get_seq_length() == ids.shape[1]
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        mask2 = torch.cat([mask, torch.ones_like(nxt)], 1)
        step = wrapped(
            input_ids=nxt,
            attention_mask=mask2,
            position_ids=positions(mask2)[:, -1:],
            past_key_values=cache,
            use_cache=True,
        )
        assert step.past_key_values.get_seq_length() == ids.shape[1] + 1
        full = wrapped(
            input_ids=torch.cat([ids, nxt], 1), attention_mask=mask2, position_ids=positions(mask2)
        )
    torch.testing.assert_close(step.logits[:, -1], full.logits[:, -1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_beam_search_shapes_and_scores_match_full_forward(kind):
    """Beam search runs with the prompts; each returned beam's score is the prompted model's own log-prob."""
    wrapped = prompted(kind)
    ids, mask = left_batch([7, 5])
    out = wrapped.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=NEW,
        num_beams=3,
        num_return_sequences=2,
        length_penalty=0.0,
        output_scores=True,
        return_dict_in_generate=True,
        do_sample=False,
    )
    n = ids.shape[1]
    assert out.sequences.shape == (4, n + NEW)
    assert out.sequences_scores.shape == (4,)
    seq = out.sequences
    full_mask = torch.cat([mask.repeat_interleave(2, 0), torch.ones(4, NEW, dtype=mask.dtype)], 1)
    with torch.no_grad():
        logp = wrapped(input_ids=seq, attention_mask=full_mask, position_ids=positions(full_mask)).logits
    logp = logp.log_softmax(-1)[:, n - 1 : -1].gather(-1, seq[:, n:, None]).squeeze(-1).sum(-1)
    torch.testing.assert_close(out.sequences_scores, logp, rtol=1e-4, atol=1e-4)
    # the best beam is at least as likely as the greedy answer
    greedy = wrapped.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW)
    greedy_mask = torch.cat([mask, torch.ones(2, NEW, dtype=mask.dtype)], 1)
    with torch.no_grad():
        g = wrapped(input_ids=greedy, attention_mask=greedy_mask, position_ids=positions(greedy_mask)).logits
    g = g.log_softmax(-1)[:, n - 1 : -1].gather(-1, greedy[:, n:, None]).squeeze(-1).sum(-1)
    assert torch.all(out.sequences_scores[::2] >= g - 1e-4)


def test_generate_uses_eval_prompts_and_keeps_lm_head_frozen():
    wrapped = prompted("llama")
    wrapped.train()  # prompt dropout 0.3 active in training mode
    ids, mask = left_batch([5, 5])
    a = wrapped.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4)
    b = wrapped.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4)
    assert torch.equal(a, b)
    assert wrapped.prompt_encoder.training  # mode restored
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("prompt_encoder.") for n in trainable)
