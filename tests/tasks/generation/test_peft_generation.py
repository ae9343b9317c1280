"""peft 0.21 on transformers 5.23: prefix tuning / prompt tuning / LoRA + generate() on tiny causal LMs and T5.

The reported failure (peft's seq2seq wrapper calling a renamed private generation method: transformers 5 has
``_prepare_text_encoder_decoder_kwargs_for_generation``, older peft patched
``_prepare_encoder_decoder_kwargs_for_generation``) does not reproduce with peft 0.21.2, which no longer touches
it: these tests pin that down, and check that peft's prefix greedy decoding is its own forward's argmax.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model

from tests.tasks.generation.helpers import tiny_causal, tiny_t5

NEW = 4


pytestmark = pytest.mark.usefixtures("one_thread")


def inputs(b=2, n=6):
    ids = torch.randint(3, 99, (b, n), generator=torch.Generator().manual_seed(0))
    return ids, torch.ones_like(ids)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_peft_prefix_causal_greedy_is_its_forward_argmax(kind):
    torch.manual_seed(0)
    model = get_peft_model(
        tiny_causal(kind), PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4)
    )
    model.eval()
    ids, mask = inputs()
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW)
    seq, m = ids, mask
    with torch.no_grad():
        for _ in range(NEW):
            nxt = model(input_ids=seq, attention_mask=m).logits[:, -1].argmax(-1, keepdim=True)
            seq, m = torch.cat([seq, nxt], 1), torch.cat([m, torch.ones_like(nxt)], 1)
    assert torch.equal(out, seq)
    beams = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW, num_beams=2)
    assert beams.shape == (2, ids.shape[1] + NEW)


@pytest.mark.parametrize(
    "config",
    [
        PrefixTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4),
        PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4),
        LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=4, target_modules=["q", "v"]),
    ],
    ids=["prefix", "prompt_tuning", "lora"],
)
def test_peft_seq2seq_generate_runs(config):
    model = get_peft_model(tiny_t5(), config).eval()
    ids, mask = inputs()
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW, num_beams=2)
    assert out.shape == (2, NEW + 1)


@pytest.mark.parametrize("kind,targets", [("llama", ["q_proj", "v_proj"]), ("gpt2", ["c_attn"])])
def test_peft_lora_causal_generate_runs(kind, targets):
    model = get_peft_model(
        tiny_causal(kind), LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, target_modules=targets)
    )
    ids, mask = inputs()
    assert model.eval().generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW).shape == (2, 6 + NEW)


def test_peft_seq2seq_prefix_greedy_is_its_forward_argmax():
    """peft's T5 prefix path decodes with its prefix: greedy generate() == argmax of its own forward, step by step."""
    torch.manual_seed(0)
    model = get_peft_model(
        tiny_t5(init_factor=10.0), PrefixTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4)
    ).eval()
    ids, mask = inputs()
    mask[1, :2] = 0  # a padded row
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW)
    start = model.config.decoder_start_token_id
    dec = torch.full((ids.shape[0], 1), start, dtype=torch.long)
    with torch.no_grad():
        for _ in range(NEW):
            logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
            dec = torch.cat([dec, logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, dec) and len(set(out[:, 1:].flatten().tolist())) > 1
    plain = model.get_base_model()
    with model.disable_adapter():
        bare = plain.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW)
    assert not torch.equal(out, bare)
