"""``torch.compile`` for the frozen backbone of a P-Tuning v2 model (the fastest speed switch, measured in
docs/performance.md: the eager step is host-bound, compiling fuses the elementwise chains and CUDA graphs remove
the per-kernel launches).

Only the backbone (``DeepPromptModel.model``) is compiled, in place with ``nn.Module.compile``, so parameter
names, checkpoints and prompt exports stay as they are. The prompts enter it as the ``deep_prompts`` argument
(``prompts/attention.py`` traces with no graph break), so the prompt encoder and its MLP stay eager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def raise_recompile_limit(limit: int = 64) -> None:
    """Past dynamo's recompile limit (8 per code object) a function silently runs eager: every new batch shape
    of a ``dynamic=False`` compile, and every fresh model sharing the backbone's forward, counts against it."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(limit, getattr(torch._dynamo.config, name)))


def compile_backbone(
    model: nn.Module, mode: str = "default", backend: str = "inductor", dynamic: bool | None = False
) -> None:
    """Compile ``model``'s forward in place; the first call compiles.

    ``dynamic``: False = one graph per input shape (fixed-shape benchmarks); None = torch's automatic dynamic
    shapes (the first new shape recompiles with symbolic sizes, then no more: a training loop with dynamic
    padding); True = symbolic from the start. ``mode`` goes to inductor only (``reduce-overhead`` = CUDA
    graphs, which record one graph per distinct shape); another ``backend`` (``aot_eager`` in the CPU tests)
    ignores it.
    """
    if mode not in COMPILE_MODES or mode == "none":
        raise ValueError(f"compile mode must be one of {COMPILE_MODES[1:]}, got {mode!r}")
    raise_recompile_limit()
    kwargs = {"dynamic": dynamic, "backend": backend}
    if backend == "inductor" and mode != "default":
        kwargs["mode"] = mode
    model.compile(**kwargs)
