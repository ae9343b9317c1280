"""The prompts' extra work per forward in the attention path (prompts/attention.py), counted in aten ops on the CPU.

Each prompted layer must add only the concatenation of its prefix keys and of its prefix values; the extended
(prefix + key-padding) mask is built once per forward, already additive for SDPA, and reused by every layer. On a
GPU each op is a kernel of a few microseconds even inside a CUDA graph, so these counts are what the prompts cost
a small backbone beyond the longer attention.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from deepprompt.prompts import DeepPromptConfig, add_deep_prompts
from deepprompt.prompts import attention as attention_module

# ops that only make views: no kernel on a GPU
VIEWS = {
    "alias",
    "as_strided",
    "detach",
    "expand",
    "permute",
    "select",
    "slice",
    "squeeze",
    "t",
    "transpose",
    "unsqueeze",
    "view",
    "_unsafe_view",
    "_reshape_alias",
}


class OpCount(TorchDispatchMode):
    """Counts the aten ops a block runs (by op name)."""

    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def _ops(tiny, kind: str, layers: int, prompts: bool, attn: str = "sdpa", static: bool = True) -> Counter:
    model = tiny.build(kind, attn, layers=layers)
    if prompts:
        model = add_deep_prompts(model, DeepPromptConfig(length=4, dropout=0.0)).eval()
    ids, mask = tiny.batch([7, 3, 5], left=kind == "llama")
    with torch.no_grad(), attention_module.static_masks() if static else torch.no_grad():
        model(
            input_ids=ids, attention_mask=mask
        )  # the eval prompt cache and lazy state, filled outside the count
        with OpCount() as count:
            model(input_ids=ids, attention_mask=mask)
    return count.ops


def _per_layer_extra(tiny, kind: str, attn: str = "sdpa", static: bool = True) -> Counter:
    """Kernel ops the prompts add per layer: (prompted - bare) at 4 layers minus the same at 2 layers, over 2."""
    extra = {
        layers: _ops(tiny, kind, layers, True, attn, static) - _ops(tiny, kind, layers, False, attn, static)
        for layers in (2, 4)
    }
    growth = Counter()
    for op in set(extra[2]) | set(extra[4]):
        if op not in VIEWS and extra[4][op] != extra[2][op]:
            growth[op] = (extra[4][op] - extra[2][op]) / 2
    return growth


@pytest.mark.parametrize("kind", ["bert", "roberta", "llama"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_a_prompted_layer_adds_only_the_key_and_value_concatenation(tiny, kind, attn):
    # under static_masks (a CUDA graph capture): the padding mask always exists, every prompted layer extends it
    assert _per_layer_extra(tiny, kind, attn) == Counter({"cat": 2})


def test_the_extended_mask_is_built_once_per_forward(tiny):
    ops = _ops(tiny, "bert", 4, True)
    assert ops["cat"] <= 2 * 4 + 1  # keys, values per layer; the mask once
    assert ops["ones"] == 1  # the prefix columns of the mask: once, not once per layer
    assert ops["where"] == 1  # the bool mask made additive once (SDPA would convert it in every layer)


def test_padded_outputs_equal_the_per_layer_masks(tiny, monkeypatch):
    """The once-per-forward mask gives exactly the outputs of a mask extended in every layer, and a second forward
    with other padding on the same (cached) prompts uses its own mask."""
    torch.manual_seed(0)
    model = add_deep_prompts(tiny.build("bert", layers=3), DeepPromptConfig(length=4, dropout=0.0)).eval()
    batches = [tiny.batch([7, 3, 5], seed=2), tiny.batch([2, 7, 6], seed=3)]
    with torch.no_grad(), attention_module.static_masks():
        shared = [model(input_ids=i, attention_mask=m).last_hidden_state for i, m in batches]
        monkeypatch.setattr(attention_module, "_memo", lambda mask: None)
        per_layer = [model(input_ids=i, attention_mask=m).last_hidden_state for i, m in batches]
    for got, want in zip(shared, per_layer, strict=True):
        assert torch.equal(got, want)
    with torch.no_grad():
        for (ids, mask), got in zip(batches, shared, strict=True):
            naive = add_deep_prompts(tiny.build("bert", layers=3), DeepPromptConfig(length=4, dropout=0.0))
            naive.prompt_encoder.load_state_dict(model.prompt_encoder.state_dict())
            naive.compact_mask = False  # the full (B, 1, n, m + n) bool mask in every layer
            want = naive.eval()(input_ids=ids, attention_mask=mask).last_hidden_state
            real = mask.bool()
            torch.testing.assert_close(got[real], want[real], atol=1e-6, rtol=1e-6)
