"""Deep prompts in T5 (encoder self-, decoder self- and cross-attention) with forward and generate()."""

from __future__ import annotations

import copy

import pytest
import torch

from deepprompt.errors import UnsupportedBackboneError
from deepprompt.prompts import DeepPromptConfig
from deepprompt.prompts.seq2seq import add_seq2seq_deep_prompts
from tests.tasks.generation.helpers import tiny_causal, tiny_t5

NEW = 5


pytestmark = pytest.mark.usefixtures("one_thread")


def prompted(attn="sdpa", cross=True, encoder=True, decoder=True, seed=0):
    torch.manual_seed(11)
    cfg = DeepPromptConfig(length=3, dropout=0.0)
    model = add_seq2seq_deep_prompts(tiny_t5(attn, seed), cfg, decoder=cfg, cross=cfg if cross else None)
    if not encoder:
        del model.prompt_encoders["encoder"]
    if not decoder:
        del model.prompt_encoders["decoder"]
    return model.eval()


def src(lengths, seed=2):
    g = torch.Generator().manual_seed(seed)
    n = max(lengths)
    ids = torch.zeros(len(lengths), n, dtype=torch.long)
    mask = torch.zeros(len(lengths), n, dtype=torch.long)
    for i, length in enumerate(lengths):
        ids[i, :length] = torch.randint(3, 99, (length,), generator=g)
        mask[i, :length] = 1
    return ids, mask


def dec(b, n=4, seed=3):
    ids = torch.randint(3, 99, (b, n), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = 0
    return ids


def test_sdpa_equals_eager_with_padding_and_all_three_prompt_sites():
    a, b = prompted("sdpa"), prompted("eager")
    b.load_state_dict(a.state_dict())
    ids, mask = src([6, 3])
    d = dec(2)
    with torch.no_grad():
        la = a(input_ids=ids, attention_mask=mask, decoder_input_ids=d).logits
        lb = b(input_ids=ids, attention_mask=mask, decoder_input_ids=d).logits
    torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padded_row_equals_row_alone(attn):
    model = prompted(attn)
    ids, mask = src([7, 4])
    d = dec(2)
    with torch.no_grad():
        batch = model(input_ids=ids, attention_mask=mask, decoder_input_ids=d).logits
        alone = model(input_ids=ids[1:, :4], attention_mask=mask[1:, :4], decoder_input_ids=d[1:]).logits
    torch.testing.assert_close(batch[1:], alone, rtol=1e-4, atol=1e-5)


def test_decoder_is_still_causal_and_each_stack_uses_its_own_prompts():
    model = prompted()
    ids, mask = src([5])
    d = dec(1, 5)
    d2 = d.clone()
    d2[0, -1] = 7 if d[0, -1] != 7 else 8
    with torch.no_grad():
        l1 = model(input_ids=ids, attention_mask=mask, decoder_input_ids=d).logits
        l2 = model(input_ids=ids, attention_mask=mask, decoder_input_ids=d2).logits
        torch.testing.assert_close(l1[:, :-1], l2[:, :-1])  # the future does not leak through the prefix
        enc = model.model.encoder(
            input_ids=ids, attention_mask=mask, deep_prompts=model.prompts()
        ).last_hidden_state
        plain = copy.deepcopy(model.model)
        plain_enc = plain.encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # no prompts: stock
        dec_only = prompted(encoder=False)
        enc_d = dec_only.model.encoder(input_ids=ids, attention_mask=mask, deep_prompts=dec_only.prompts())
    assert not torch.allclose(enc, plain_enc)  # encoder prompts act on the encoder ...
    torch.testing.assert_close(enc_d.last_hidden_state, plain_enc)  # ... decoder prompts do not


@torch.no_grad()
def manual_greedy(model, ids, mask, steps):
    d = torch.zeros(ids.shape[0], 1, dtype=torch.long)
    for _ in range(steps):
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=d, use_cache=False).logits
        d = torch.cat([d, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return d


@pytest.mark.parametrize("cross", [False, True])
def test_greedy_generate_equals_manual_loop(cross):
    model = prompted(cross=cross)
    ids, mask = src([6, 2, 4])
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False)
    assert torch.equal(out, manual_greedy(model, ids, mask, NEW))
    beams = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=NEW, num_beams=3, num_return_sequences=2
    )
    assert beams.shape == (6, NEW + 1)


def test_only_prompts_train():
    model = prompted()
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith("prompt_encoders.") for n in names)
    assert not model.model.lm_head.weight.requires_grad


def test_unsupported_backbone_raises():
    with pytest.raises(UnsupportedBackboneError, match="encoder-decoder"):
        add_seq2seq_deep_prompts(tiny_causal("gpt2"), DeepPromptConfig(length=2))
