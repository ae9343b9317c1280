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
    assert _per_layer_extra(tiny, kind, attn) == Counter({"cat": 2, "clone": 2})


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


# -- several tasks in one batch, prompts of different lengths: a per-row prefix mask (B, m) -----------------------
TASKS = {"long": DeepPromptConfig(length=4, dropout=0.0), "short": DeepPromptConfig(length=2, dropout=0.0)}


def _served(tiny, layers: int, configs=TASKS, attn: str = "sdpa"):
    """The server's prompted forward: a tiny backbone and every task's cached prefixes in one `PrefixTable`."""
    from deepprompt.prompts.multitask import MultiTaskDeepPromptModel
    from deepprompt.serve.forward import PrefixTable
    from deepprompt.serve.registry import CachedPrompts

    torch.manual_seed(0)
    multi = MultiTaskDeepPromptModel(tiny.build("bert", attn, layers=layers), configs).eval()
    table = PrefixTable(torch.device("cpu"), torch.float32)
    table.rebuild([CachedPrompts(multi.encoders[t], torch.float32, torch.device("cpu"))() for t in configs])
    return multi, table


def _served_call(multi, table, ids, mask, task_ids):
    prompts = table.gather(task_ids, **table.tensors())
    return multi.model(input_ids=ids, attention_mask=mask, deep_prompts=prompts).last_hidden_state


def _mixed_ops(tiny, layers: int, lengths: list[int], static: bool, attn: str = "sdpa") -> Counter:
    """The aten ops the served prompts add to a forward of tasks 0, 1, 0 (prompted minus bare)."""
    multi, table = _served(tiny, layers, attn=attn)
    ids, mask = tiny.batch(lengths)
    task_ids = torch.tensor([0, 1, 0][: len(lengths)])
    counts = []
    with torch.no_grad(), attention_module.static_masks() if static else torch.no_grad():
        for call in (
            lambda: _served_call(multi, table, ids, mask, task_ids),
            lambda: multi.model(input_ids=ids, attention_mask=mask),
        ):
            call()
            with OpCount() as count:
                call()
            counts.append(count.ops)
    return counts[0] - counts[1]


@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("lengths", [[7, 3, 5], [5, 5, 5]], ids=["padded", "unpadded"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_a_per_row_prefix_mask_is_extended_once_per_forward(tiny, lengths, static, attn):
    """Tasks of different prompt lengths, each prompting every layer: one prefix mask for all layers, so a
    prompted layer again adds only its key and value concatenation (not a mask extension, nor a host read of
    ``prefix_mask.all()``, per layer)."""
    growth = Counter()
    two, four = (_mixed_ops(tiny, layers, lengths, static, attn) for layers in (2, 4))
    for op in set(two) | set(four):
        if op not in VIEWS and four[op] != two[op]:
            growth[op] = (four[op] - two[op]) / 2
    want = Counter({"cat": 2})  # the table holds the prefixes in the keys' layout: nothing to copy first
    if attn == "eager" and lengths == [5, 5, 5] and not static:
        want["add"] = 1  # eager adds the prefix mask to the scores; the bare forward has no mask to add
    assert growth == want


def test_the_shared_prefix_mask_gives_the_per_layer_outputs(tiny):
    multi, table = _served(tiny, 3)
    assert table.masked and table.uniform
    task_ids = torch.tensor([0, 1, 1, 0])
    for ids, mask in (tiny.batch([7, 3, 5, 6], seed=2), tiny.batch([6, 6, 6, 6], seed=3)):
        with torch.no_grad():
            shared = _served_call(multi, table, ids, mask, task_ids)
            table.uniform = False  # each layer its own view of the visibility: the mask extended per layer
            per_layer = _served_call(multi, table, ids, mask, task_ids)
            table.uniform = True
            uncached = multi(task_ids, input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.equal(shared, per_layer)
        real = mask.bool()
        torch.testing.assert_close(shared[real], uncached[real], atol=1e-6, rtol=1e-6)


def test_layers_of_different_visibility_keep_their_own_prefix_masks(tiny):
    configs = {**TASKS, "deep": DeepPromptConfig(length=[0, 2, 6], dropout=0.0)}  # no prompt in layer 0
    multi, table = _served(tiny, 3, configs)
    assert table.masked and not table.uniform
    task_ids = torch.tensor([0, 1, 2])
    ids, mask = tiny.batch([7, 3, 5], seed=4)
    gathered = table.gather(task_ids, **table.tensors())
    assert gathered[1][2] is not gathered[2][2] and not torch.equal(gathered[1][2], gathered[2][2])
    built = multi.build_prompts(task_ids)
    assert built[1][2] is not built[2][2]
    with torch.no_grad():
        got = _served_call(multi, table, ids, mask, task_ids)
        want = multi(task_ids, input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-6, rtol=1e-6)


def test_the_multitask_model_hands_every_layer_one_prefix_mask_where_lengths_agree(tiny):
    from deepprompt.prompts.multitask import MultiTaskDeepPromptModel

    multi = MultiTaskDeepPromptModel(tiny.build("bert", layers=3), TASKS).eval()
    prompts = multi.build_prompts(torch.tensor([0, 1, 0]))
    masks = [prompts[layer][2] for layer in range(3)]
    assert masks[0] is masks[1] is masks[2]
    assert masks[0].tolist() == [[True] * 4, [True, True, False, False], [True] * 4]


class CatInputs(TorchDispatchMode):
    """Records, for every concatenation, whether each of its inputs is contiguous."""

    def __init__(self):
        super().__init__()
        self.contiguous: list[list[bool]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ == "cat":
            self.contiguous.append([t.is_contiguous() for t in args[0]])
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("keys", ["as_projected", "heads_first"])
@pytest.mark.parametrize("rows", [1, 3], ids=["shared_prefix", "per_row_prefix"])
def test_the_prefix_copy_has_only_contiguous_inputs(keys, rows):
    """The GPU concatenates contiguous inputs with its vectorised kernel and anything strided element by element
    (2.7-3.6x slower at batch 32): whatever the keys' memory layout and however many prefix rows, `with_prefix`
    hands `cat` contiguous inputs, and the values equal the plain concatenation along the key axis."""
    batch, heads, n, m, d = 3, 4, 5, 2, 8
    torch.manual_seed(0)
    if keys == "as_projected":  # a projection's (B, n, H*d) output viewed as (B, H, n, d)
        states = torch.randn(batch, n, heads * d).view(batch, n, heads, d).transpose(1, 2)
    else:  # contiguous (B, H, n, d), as after a rotary embedding
        states = torch.randn(batch, heads, n, d)
    prefix = torch.randn(rows, heads, m, d)
    with CatInputs() as seen:
        got = attention_module.with_prefix(prefix, states)
    assert seen.contiguous and all(all(c) for c in seen.contiguous)
    assert got.shape == (batch, heads, m + n, d)
    assert torch.equal(got, torch.cat([prefix.expand(batch, -1, -1, -1), states], dim=2))
