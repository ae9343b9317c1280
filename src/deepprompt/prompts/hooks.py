"""Deep prompts for attention written by hand, outside transformers' attention interface.

Most transformers models look their attention function up in ``AttentionInterface``; `prompts/attention.py`
registers a prompted one there. Some encoders still compute attention inline in their attention module
(DeBERTa-v2/v3's disentangled attention, MPNet ...) and their model ``forward`` drops unknown keyword
arguments, so neither the function nor the ``deep_prompts`` argument reaches them. This module is the second
injection path, for such models:

- an **adapter** per attention class (`ADAPTERS`, filled by `prompts/adapters.py`) recomputes that module's
  attention with the layer's prefix keys/values prepended, and says how the model's own position terms treat
  the prefix columns;
- `attach` finds the backbone's layer list, gives every attention module of a known class a `PromptedForward`
  (an instance-level ``forward``) that knows its layer index, and registers hooks on the top model that take
  ``deep_prompts`` out of its keyword arguments for the duration of the call (`PromptRouter`).

The guarantees of the interface path hold here too:

- a layer without a prompt (unprompted depth, or a call without ``deep_prompts``) runs the module's own
  ``forward`` unchanged: bit-identical to the stock model;
- the prefix enters only through the adapter's concatenation, so only prompts (and the head) get gradients;
- gradient checkpointing (non-reentrant) recomputes a layer during backward, after the model call returned:
  `PromptRouter.checkpoint_context` (torch's ``context_fn``) replays the same prompts in that recomputation;
- the prompts of a call are kept per thread, as keyword arguments would be.

Models covered: see `prompts/adapters.py` and docs/deberta.md.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from torch import nn

from deepprompt.errors import UnsupportedBackboneError

# attention module class -> adapter(module, prompt, *args, **kwargs), with the module forward's own signature
# after the prompt; ``prompt`` is a `prompts.attention.LayerPrompt`.
ADAPTERS: dict[type[nn.Module], Callable[..., Any]] = {}


def register_adapter(cls: type[nn.Module]) -> Callable:
    """Decorator: ``@register_adapter(SomeSelfAttention)`` over its prompted forward."""

    def decorate(fn: Callable) -> Callable:
        ADAPTERS[cls] = fn
        return fn

    return decorate


def _load_adapters() -> None:
    from deepprompt.prompts import adapters  # noqa: F401  (registers on import)


class PromptRouter:
    """Carries the ``deep_prompts`` of the running top-level call to the attention modules of one backbone.

    Per thread (two threads may run the model at once with different prompts); a copy or a pickled model gets a
    fresh router.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def __reduce__(self):  # deepcopy and pickle: a fresh router (a thread-local cannot be copied)
        return (PromptRouter, ())

    @property
    def bundle(self) -> dict | None:
        return getattr(self._local, "bundle", None)

    @bundle.setter
    def bundle(self, value: dict | None) -> None:
        self._local.bundle = value

    def current(self, layer: int):
        bundle = self.bundle
        return bundle.get(layer) if bundle else None

    # forward hooks on the top model: the prompts live for the duration of its call
    def enter(self, module, args, kwargs):
        saved = getattr(self._local, "saved", None)
        if saved is None:
            saved = self._local.saved = []
        saved.append(self.bundle)
        self.bundle = kwargs.pop("deep_prompts", None)
        return args, kwargs

    def leave(self, module, args, kwargs, output):
        saved = getattr(self._local, "saved", None)
        self.bundle = saved.pop() if saved else None
        return None

    @contextlib.contextmanager
    def replaying(self, bundle: dict | None) -> Iterator[None]:
        before, self.bundle = self.bundle, bundle
        try:
            yield
        finally:
            self.bundle = before

    def checkpoint_context(self):
        """``context_fn`` for ``torch.utils.checkpoint``: the recomputation sees the prompts of its forward."""
        return contextlib.nullcontext(), self.replaying(self.bundle)


class PromptedForward:
    """The instance-level ``forward`` of a hooked attention module (a class, not a closure, so that
    ``copy.deepcopy`` of the model rebinds it to the copied module)."""

    def __init__(self, module: nn.Module, layer: int, router: PromptRouter, adapter: Callable):
        self.module, self.layer, self.router, self.adapter = module, layer, router, adapter

    def __call__(self, *args, **kwargs):
        prompt = self.router.current(self.layer)
        if prompt is None:
            return type(self.module).forward(self.module, *args, **kwargs)
        return self.adapter(self.module, prompt, *args, **kwargs)


def _attention_of(block: nn.Module) -> list[nn.Module]:
    return [m for m in block.modules() if type(m) in ADAPTERS]


def attention_modules(model: nn.Module) -> list[nn.Module] | None:
    """One hooked-attention module per transformer block, in layer order, or None if the model has none.

    The layer list is the first ``nn.ModuleList`` whose every element holds exactly one attention module of a
    class in `ADAPTERS`.
    """
    _load_adapters()
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module):
            found = [_attention_of(block) for block in module]
            if all(len(f) == 1 for f in found):
                return [f[0] for f in found]
    return None


def supports(model: nn.Module) -> bool:
    return attention_modules(model) is not None


class HookedPrompts:
    """The hooks `attach` placed on one backbone."""

    def __init__(self, model: nn.Module, modules: list[nn.Module], router: PromptRouter, handles: list):
        self.model, self.modules, self.router, self.handles = model, modules, router, handles

    def checkpoint_kwargs(self) -> dict:
        return {"context_fn": self.router.checkpoint_context}


def attach(model: nn.Module, num_layers: int, head_dim: int) -> HookedPrompts:
    """Route ``model(..., deep_prompts=...)`` into the hand-written attention of each of its ``num_layers``."""
    modules = attention_modules(model)
    if modules is None or len(modules) != num_layers:
        raise UnsupportedBackboneError(
            f"{type(model).__name__}: expected {num_layers} attention modules of a class with a deep-prompt "
            f"adapter ({sorted(c.__name__ for c in ADAPTERS)}), found {0 if modules is None else len(modules)}"
        )
    for module in modules:
        size = getattr(module, "attention_head_size", head_dim)
        if size != head_dim:
            raise UnsupportedBackboneError(
                f"{type(module).__name__} has heads of size {size}, the config implies {head_dim}: prompts "
                "would not fit its keys"
            )
        if "forward" in module.__dict__:
            raise UnsupportedBackboneError(
                f"{type(module).__name__} already has deep prompts (or another instance-level forward)"
            )
    router = PromptRouter()
    for layer, module in enumerate(modules):
        module.forward = PromptedForward(module, layer, router, ADAPTERS[type(module)])
    handles = [
        model.register_forward_pre_hook(router.enter, with_kwargs=True),
        model.register_forward_hook(router.leave, with_kwargs=True, always_call=True),
    ]
    return HookedPrompts(model, modules, router, handles)
