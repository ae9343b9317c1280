"""`GenerationModule` baselines on tiny random causal LMs: peft prefix tuning (``prefix``, ``prefix_mlp``) and
full fine-tuning (``finetune``): generate() with left padding (greedy and beam) against a step-by-step argmax
loop over the training forward, padding invariance, what trains, and a loss that falls on a tiny overfit."""

from __future__ import annotations

import pytest
import torch

from deepprompt.errors import ConfigError
from deepprompt.tasks.generation.module import GenerationModule
from deepprompt.tasks.generation.prefix import CausalPrefixLM
from tests.tasks.generation.helpers import PAD, VOCAB, left_batch

NEW = 5
M = 4
OVERRIDES = {
    "llama": {
        "model_type": "llama",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
    },
    "gpt2": {
        "model_type": "gpt2",
        "n_embd": 32,
        "n_layer": 2,
        "n_head": 4,
        "n_positions": 128,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
    },
}
METHODS = {
    "prefix": {"name": "prefix", "num_virtual_tokens": M, "init_std": 1.0},
    "prefix_mlp": {"name": "prefix_mlp", "num_virtual_tokens": M, "encoder_hidden_size": 16},
    "finetune": {"name": "finetune"},
    "ptuning_v2": {"name": "ptuning_v2", "prompt": {"length": M, "dropout": 0.0}},
    "lora": {"name": "lora", "r": 4, "target_modules": ["q_proj", "v_proj"], "dropout": 0.0},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def module(kind: str, method: str, seed: int = 0, init_range: float = 0.02, **method_kw) -> GenerationModule:
    torch.manual_seed(seed)
    backbone = {"name": f"tiny_{kind}", "name_or_path": "unused", "pretrained": False}
    backbone["config_overrides"] = {**OVERRIDES[kind], "initializer_range": init_range}
    m = GenerationModule(
        backbone,
        {**METHODS[method], **method_kw},
        vocab_size=VOCAB,
        pad_token_id=PAD,
        eos_token_id=None,  # random models: no early stop, exactly max_new_tokens new tokens
        generation={"max_new_tokens": NEW},
    )
    return m.eval()


@torch.no_grad()
def manual_greedy(m: GenerationModule, ids, mask, steps):
    """The training forward (full sequence, no cache, positions from the mask) and argmax, step by step."""
    for _ in range(steps):
        nxt = m(ids, mask)[:, -1].argmax(-1, keepdim=True)
        ids, mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
    return ids


@pytest.mark.parametrize("method", ["prefix", "prefix_mlp", "finetune"])
@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_greedy_generate_equals_manual_argmax_loop_with_left_padding(kind, method):
    m = module(kind, method)
    ids, mask = left_batch([7, 3, 5])
    new = m.generate(ids, mask)
    assert new.shape == (3, NEW)
    assert torch.equal(new, manual_greedy(m, ids, mask, NEW)[:, ids.shape[1] :])


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_prefix_left_padded_rows_equal_rows_generated_alone(kind, num_beams):
    m = module(kind, "prefix")
    ids, mask = left_batch([8, 3, 6], seed=2)
    batch = m.generate(ids, mask, num_beams=num_beams)
    for row in range(ids.shape[0]):
        keep = mask[row].bool()
        alone = m.generate(ids[row : row + 1, keep], mask[row : row + 1, keep], num_beams=num_beams)
        assert torch.equal(batch[row], alone[0]), f"row {row}, {num_beams} beams"


@torch.no_grad()
def logprob(m: GenerationModule, seqs, mask, n):
    """Summed log-probability of the new tokens ``seqs[:, n:]`` under the training forward."""
    full = torch.cat([mask, torch.ones(seqs.shape[0], seqs.shape[1] - n, dtype=mask.dtype)], 1)
    logp = m(seqs, full)[:, n - 1 : -1].log_softmax(-1)
    return logp.gather(-1, seqs[:, n:, None]).squeeze(-1).sum(-1)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_prefix_beam_scores_are_the_training_forward_log_probs(kind):
    m = module(kind, "prefix")
    ids, mask = left_batch([6, 4], seed=4)
    n = ids.shape[1]
    out = m.encoder.generate(
        ids,
        mask,
        num_beams=3,
        max_new_tokens=NEW,
        length_penalty=0.0,  # unnormalised: the score is the summed log-probability
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert out.sequences.shape == (2, n + NEW)
    torch.testing.assert_close(out.sequences_scores, logprob(m, out.sequences, mask, n), atol=1e-4, rtol=1e-4)
    greedy = m.encoder.generate(ids, mask, max_new_tokens=NEW)
    assert torch.all(out.sequences_scores >= logprob(m, greedy, mask, n) - 1e-4)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_prefix_is_used_by_generate_and_only_the_prefix_trains(kind):
    m = module(kind, "prefix")
    assert isinstance(m.encoder, CausalPrefixLM)
    ids, mask = left_batch([6, 6], seed=3)
    bare = m.encoder.backbone.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW)
    assert not torch.equal(m.generate(ids, mask), bare[:, ids.shape[1] :])
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all("prompt_encoder" in n for n in trainable)
    kv_width = {"llama": 2 * 8, "gpt2": 32}[kind]  # Llama: 2 KV heads of 8 (GQA); GPT-2: hidden
    assert sum(p.numel() for n, p in m.named_parameters() if p.requires_grad) == M * 2 * 2 * kv_width
    counts = m.parameter_counts()
    assert counts["backbone"] == sum(p.numel() for p in m.encoder.backbone.parameters())


def test_prefix_init_std_sets_the_prefix_scale():
    small = module("llama", "prefix", init_std=0.01).encoder.peft
    weight = small.prompt_encoder["default"].embedding.weight
    assert weight.abs().max() < 0.1
    default = module("llama", "prefix", init_std=None).encoder.peft  # peft's own N(0, 1)
    assert default.prompt_encoder["default"].embedding.weight.std() > 0.5


def overfit_batch():
    ids, mask = left_batch([9, 7, 8, 6], seed=5)
    labels = ids.clone()
    labels[mask == 0] = -100
    labels[:, : ids.shape[1] - 4] = -100  # loss on the last 4 tokens (the "target") only
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize(
    "method,lr",
    [("prefix", 1e-1), ("prefix_mlp", 1e-2), ("ptuning_v2", 1e-1), ("lora", 3e-2), ("finetune", 3e-3)],
)
def test_loss_falls_on_a_tiny_overfit(method, lr):
    # initializer_range 0.3: with the default 0.02 a tiny random model attends almost uniformly and a few
    # prompt keys/values barely move its output (loss 4.58 -> 4.37 in 30 steps for every prompt method)
    m = module("llama", method, init_range=0.3).train()
    batch = overfit_batch()
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=lr)
    first = m.loss(batch).item()
    for _ in range(30):
        opt.zero_grad()
        m.loss(batch).backward()
        opt.step()
    last = m.loss(batch).item()
    assert last < 0.6 * first, (first, last)


def test_encoder_decoder_backbone_is_refused_clearly():
    backbone = {
        "name": "tiny_t5",
        "name_or_path": "unused",
        "pretrained": False,
        "config_overrides": {"model_type": "t5", "d_model": 16, "num_layers": 1, "num_heads": 2, "d_kv": 8},
    }
    with pytest.raises(ConfigError, match="encoder-decoder.*peft"):
        GenerationModule(backbone, {"name": "prefix"}, vocab_size=VOCAB, pad_token_id=0)


def test_prefix_compile_is_refused_for_a_causal_lm():
    """``method.compile`` compiles an encoder's backbone; the causal prefix LM has no such path and says so."""
    with pytest.raises(ConfigError, match="method.compile='default'.*set method.compile=none"):
        module("gpt2", "prefix", compile="default")


def _padded(rows: list[list[int]], labels: list[list[int]], side: str):
    """A batch of ``rows`` (token ids) and their ``labels``, padded on ``side``."""
    width = max(map(len, rows))
    ids, mask, lab = [], [], []
    for r, y in zip(rows, labels, strict=True):
        pad = width - len(r)
        before, after = (pad, 0) if side == "left" else (0, pad)
        ids.append([PAD] * before + r + [PAD] * after)
        mask.append([0] * before + [1] * len(r) + [0] * after)
        lab.append([-100] * before + y + [-100] * after)
    return {k: torch.tensor(v) for k, v in (("input_ids", ids), ("attention_mask", mask), ("labels", lab))}


@pytest.mark.parametrize("method", ["finetune", "ptuning_v2", "prefix", "lora"])
def test_training_loss_and_gradients_do_not_depend_on_the_padding_side(method):
    """Training batches are right-padded (no fully masked query row), evaluation batches left-padded: the
    positions come from the mask, so the loss and its gradients are the same on either side."""
    m = module("llama", method).train()
    g = torch.Generator().manual_seed(3)
    rows = [torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in (9, 3, 6)]
    labels = [[-100] * (len(r) // 2) + r[len(r) // 2 :] for r in rows]
    grads = {}
    for side in ("left", "right"):
        m.zero_grad()
        loss = m.loss(_padded(rows, labels, side))
        loss.backward()
        grads[side] = (loss.detach(), [p.grad.clone() for p in m.parameters() if p.requires_grad])
    assert torch.allclose(grads["left"][0], grads["right"][0], atol=1e-6)
    for a, b in zip(grads["left"][1], grads["right"][1], strict=True):
        assert torch.allclose(a, b, atol=1e-5)
