"""`add_deep_prompts`: a frozen transformers model plus trainable per-layer prompts."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer

from deepprompt.errors import ConfigError, UnsupportedBackboneError
from deepprompt.prompts import attention, hooks
from deepprompt.prompts.config import DeepPromptConfig
from deepprompt.prompts.encoder import PromptEncoder
from deepprompt.prompts.geometry import BackboneGeometry
from deepprompt.prompts.graphing import ShapeGraphs


def head_module_names(model: PreTrainedModel) -> list[str]:
    """Top-level children that are a task head (classifier, qa_outputs, score ...), not the backbone.

    The output embeddings of a language model are excluded: they are (usually tied) backbone weights.
    """
    base = model.base_model
    if base is model:
        return []
    output_embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [
        name
        for name, child in model.named_children()
        if child is not base and child is not output_embeddings and any(True for _ in child.parameters())
    ]


def _uses_interface(model: nn.Module) -> bool:
    return isinstance(model, PreTrainedModel) and model._can_set_attn_implementation()


def check_supported(model: nn.Module) -> None:
    if not _uses_interface(model):
        raise UnsupportedBackboneError(
            f"{type(model).__name__} cannot take deep prompts: its attention neither goes through transformers' "
            "AttentionInterface nor has an adapter in deepprompt.prompts.adapters. Supported: models on the "
            "interface (BERT, RoBERTa, Llama, Qwen, Mistral, GPT-2 ...; transformers >= 5) and, through "
            "add_deep_prompts, DeBERTa-v2/v3 and MPNet."
        )


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"bf16"`` / ``"fp16"`` / ``"fp32"`` / a torch dtype / None (keep the backbone's) -> a torch dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"frozen_dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]


def layer_modules(model: nn.Module) -> nn.ModuleList | None:
    """The backbone's list of transformer blocks (``encoder.layer``, ``layers``, ``h`` ...), or None."""
    for module in model.modules():
        if (
            isinstance(module, nn.ModuleList)
            and len(module)
            and isinstance(module[0], GradientCheckpointingLayer)
        ):
            return module
    return None


class DeepPromptModel(nn.Module):
    """A frozen backbone whose chosen attention layers see ``m`` trainable prefix keys/values.

    ``forward`` takes the backbone's own arguments and returns its own outputs.

    Speed switches (docs/performance.md); the defaults are the fast path, every switch keeps results
    equal to the plain path except ``frozen_dtype``, which rounds the frozen weights:

    - ``frozen_dtype`` (None = keep fp32): store the frozen backbone weights in bf16/fp16. The prompts and the
      head stay fp32 (their gradients and optimizer state too). Needs autocast in the forward (Lightning
      ``precision=bf16-mixed``): without it a bf16 weight would meet an fp32 activation, so the forward raises.
      Under autocast a frozen fp32 weight is re-cast to bf16 in every forward (autocast caches casts of leaf
      tensors that require grad only), which a bf16 copy saves; LayerNorm and softmax still run in fp32 (autocast's
      fp32 list; SDPA accumulates in fp32).
    - ``compact_mask`` (True): no attention mask without padding, a (B, 1, 1, m + n) one with padding; False
      materialises (B, 1, n, m + n) in every layer (the naive path, for before/after benchmarks).
    - ``cache_prompts`` (True): in eval mode with gradients off (inference, validation) the prefix keys/values are
      computed once, cast to the attention's dtype and reused; the cache is dropped by ``train()``/``eval()`` and
      whenever a prompt parameter changes (its version counter, storage, device or dtype).
    - ``detach_below`` (True): the hidden state entering the lowest prompted layer is detached when nothing below
      it can train, so autograd never runs backward through the unprompted bottom layers, even when the input
      requires grad (``enable_input_require_grads``, reentrant checkpointing). Without such an input autograd
      already records nothing there; the prompts' gradients are the same either way.
    - ``enable_cuda_graphs()`` (off): training forwards and their backwards replay CUDA graphs captured per batch
      shape, without a compiler (``prompts/graphing.py``).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        config: DeepPromptConfig,
        train_head: bool = True,
        *,
        frozen_dtype: str | torch.dtype | None = None,
        compact_mask: bool = True,
        cache_prompts: bool = True,
        detach_below: bool = True,
    ):
        super().__init__()
        self.graphs: ShapeGraphs | None = None  # enable_cuda_graphs()
        # Attention outside transformers' interface (DeBERTa-v2/v3, MPNet) takes the hooked path (prompts/hooks.py);
        # a model on the interface never loads the adapters (they import those models' transformers modules)
        hooked = not _uses_interface(model) and hooks.supports(model)
        if not hooked:
            check_supported(model)
        self.model = model
        self.config = config
        self.geometry = BackboneGeometry.from_config(model.config)
        self.prompt_encoder = PromptEncoder(config, self.geometry)
        self.attention_hooks: hooks.HookedPrompts | None = None
        if hooked:
            self.attention_hooks = hooks.attach(model, self.geometry.num_layers, self.geometry.head_dim)
        else:
            model.set_attn_implementation(attention.prompted_name(model.config._attn_implementation))
        model.requires_grad_(False)
        self.head_names = head_module_names(model) if train_head else []
        for name in self.head_names:
            getattr(model, name).requires_grad_(True)
        self.compact_mask = compact_mask
        self.cache_prompts = cache_prompts
        self._prompt_cache: tuple[tuple, attention.PromptBundle] | None = None
        self.frozen_dtype = resolve_dtype(frozen_dtype)
        if self.frozen_dtype is not None:
            self.cast_frozen(self.frozen_dtype)
        self.detach_below = detach_below
        self._detach_now = False
        self._hooks = []
        lowest = min(self.prompt_encoder.layer_ids)
        layers = layer_modules(model)
        if lowest > 0 and layers is not None and len(layers) == self.geometry.num_layers:
            self._hooks.append(layers[lowest].register_forward_pre_hook(self._detach_input, with_kwargs=True))

    @property
    def hooked(self) -> bool:
        """True where the prompts enter through hooked hand-written attention (prompts/hooks.py), not the
        attention interface."""
        return self.attention_hooks is not None

    # -- speed switches ----------------------------------------------------------------------------------
    @torch.no_grad()
    def cast_frozen(self, dtype: torch.dtype) -> None:
        """Store every frozen floating-point backbone weight in ``dtype`` (trainable ones stay as they are)."""
        for param in self.model.parameters():
            if not param.requires_grad and param.is_floating_point():
                param.data = param.data.to(dtype)
        self._prompt_cache = None
        if self.graphs is not None:
            self.graphs.clear()

    def enable_cuda_graphs(self, max_shapes: int = 16) -> None:
        """Replay CUDA graphs of the training forward and backward, one pair per batch shape (captured at its first
        batch, under a second each); eval, no-grad and CPU forwards stay eager. See ``prompts/graphing.py``."""
        if getattr(self.model, "is_activation_checkpointing", False):
            raise ConfigError(
                "method.cuda_graphs=true does not combine with gradient checkpointing: choose one"
            )
        if self.hooked:  # e.g. DeBERTa-v2 builds its relative positions with host-to-device copies
            raise ConfigError(
                f"method.cuda_graphs=true is not available for {type(self.model).__name__} (hand-written "
                "attention, prompts/hooks.py): set method.cuda_graphs=false"
            )
        self.graphs = ShapeGraphs(self, self._forward_eager, max_shapes=max_shapes)

    def _apply(self, fn, recurse: bool = True):
        # .to() / .cuda() / .half() may move the weights to new storage, which a captured graph would not follow
        if self.graphs is not None:
            self.graphs.clear()
        return super()._apply(fn, recurse)

    def _detach_input(self, module, args, kwargs):
        if not (self._detach_now and torch.is_grad_enabled()):
            return None
        if args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
            return (args[0].detach(), *args[1:]), kwargs
        hidden = kwargs.get("hidden_states")
        if isinstance(hidden, torch.Tensor) and hidden.requires_grad:
            return args, {**kwargs, "hidden_states": hidden.detach()}
        return None

    def _below_is_frozen(self, kwargs) -> bool:
        embeds = kwargs.get("inputs_embeds")
        if isinstance(embeds, torch.Tensor) and embeds.requires_grad:
            return False  # the caller wants gradients of its inputs
        return not any(p.requires_grad for p in self.model.base_model.parameters())

    def _check_autocast(self, device: torch.device) -> None:
        if self.frozen_dtype in (None, torch.float32):
            return
        if not torch.is_autocast_enabled(device.type):
            raise RuntimeError(
                f"the frozen backbone is stored in {self.frozen_dtype} (frozen_dtype), so the forward must run "
                "under autocast (torch.autocast(device_type, dtype=torch.bfloat16), Lightning "
                "precision='bf16-mixed')"
            )

    def _attention_dtype(self, device: torch.device) -> torch.dtype:
        if torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
        return self.frozen_dtype or next(
            (p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32
        )

    def prompts(self) -> attention.PromptBundle:
        """The ``deep_prompts`` argument of this forward (cached in eval mode without gradients)."""
        encoder = self.prompt_encoder
        if not (self.cache_prompts and not encoder.training and not torch.is_grad_enabled()):
            return attention.PromptBundle(encoder(), compact_mask=self.compact_mask)
        params = list(encoder.parameters())
        device = params[0].device
        dtype = self._attention_dtype(device)
        key = (
            dtype,
            self.compact_mask,
            encoder.reparam,
            tuple((id(p), p.data_ptr(), p._version, p.device, p.dtype) for p in params),
        )
        if self._prompt_cache is not None and self._prompt_cache[0] == key:
            return self._prompt_cache[1]
        with torch.inference_mode(False), torch.no_grad():  # normal tensors, usable outside inference mode
            bundle = attention.PromptBundle(
                {
                    layer: tuple(t.to(dtype).contiguous() if t.is_floating_point() else t for t in prompt)
                    for layer, prompt in encoder().items()
                },
                compact_mask=self.compact_mask,
            )
        self._prompt_cache = (key, bundle)
        return bundle

    def clear_prompt_cache(self) -> None:
        """Drop the cached inference prompts (needed only after changing a prompt through ``.data``)."""
        self._prompt_cache = None

    def forward(self, *args, **kwargs):
        if self.graphs is not None and not args:
            out = self.graphs(kwargs)
            if out is not None:
                return out
        return self._forward_eager(*args, **kwargs)

    def _forward_eager(self, *args, **kwargs):
        device = next(iter(self.prompt_encoder.parameters())).device
        self._check_autocast(device)
        prompts = self.prompts()
        self._detach_now = bool(self._hooks) and self.detach_below and self._below_is_frozen(kwargs)
        return self.model(*args, deep_prompts=prompts, **kwargs)

    def eval_prompts(self) -> dict:
        """The prompts as inference sees them: computed once, without the prompt dropout."""
        was_training = self.prompt_encoder.training
        self.prompt_encoder.eval()
        try:
            return self.prompt_encoder()
        finally:
            self.prompt_encoder.train(was_training)

    @torch.no_grad()
    def generate(self, *args, **kwargs):
        """The backbone's ``generate`` (greedy, beam, sampling ...) with the prompts in every decoding step.

        The prompts are computed once (no dropout) and travel as the model kwarg ``deep_prompts``, which
        transformers forwards to every step's forward. The prefix is prepended inside attention *after* the
        cache update, so the KV cache holds the real tokens only and the prefix never doubles up; position
        ids (left padding included) are the unprompted model's. Beam search expands the batch: the prefix
        (batch 1) broadcasts over it.
        """
        if "deep_prompts" in kwargs:
            raise TypeError("DeepPromptModel.generate computes deep_prompts itself")
        with _accept_deep_prompts(self.model):
            return self.model.generate(*args, deep_prompts=self.eval_prompts(), **kwargs)

    def train(self, mode: bool = True) -> DeepPromptModel:
        # The frozen backbone keeps its own dropout in training mode, as in the official code and peft.
        self._prompt_cache = None
        return super().train(mode)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        return {
            f"{name}.{key}": value
            for name in self.head_names
            for key, value in getattr(self.model, name).state_dict().items()
        }

    def fold(self) -> None:
        """Fold the MLP reparameterization away (inference needs only its output)."""
        self.prompt_encoder.fold()

    def gradient_checkpointing_enable(self) -> None:
        if self.graphs is not None:
            # a checkpointed layer saves and restores the CUDA RNG state around its recomputation: host work that a
            # captured backward cannot contain (and CUDA graphs already keep one shape's activations only)
            raise ConfigError(
                "gradient_checkpointing=true does not combine with method.cuda_graphs=true: choose one"
            )
        # Non-reentrant: the prefix reaches each layer as a keyword argument, which the reentrant variant
        # would not differentiate through.
        # (`gradient_checkpointing_enable` is deprecated in transformers 5 and warns on every call.)
        # The hooked path replays the forward's prompts in the recomputation (torch's context_fn).
        kwargs = {"use_reentrant": False, **(self.attention_hooks.checkpoint_kwargs() if self.hooked else {})}
        self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)

    def num_parameters(self) -> dict[str, int]:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        backbone = sum(p.numel() for p in self.model.base_model.parameters())
        return {
            "trainable": trainable,
            "prompt": sum(p.numel() for p in self.prompt_encoder.parameters()),
            "backbone": backbone,
            "total": sum(p.numel() for p in self.parameters()),
        }


@contextlib.contextmanager
def _accept_deep_prompts(model: PreTrainedModel):
    """Let ``generate`` take the ``deep_prompts`` model kwarg.

    ``GenerationMixin._validate_model_kwargs`` (transformers 5.23) rejects keys that are neither in the
    forward signature nor in ``TransformersKwargs``; the prompts travel in the forward's ``**kwargs``, so the
    check is shadowed on this instance, for this call only, to skip that one key.
    """
    original = getattr(model, "_validate_model_kwargs", None)
    if original is None:  # a future transformers without the check
        yield
        return

    def validate(model_kwargs, *args, **kwargs):
        model_kwargs = {k: v for k, v in model_kwargs.items() if k != "deep_prompts"}
        return original(model_kwargs, *args, **kwargs)

    model._validate_model_kwargs = validate
    try:
        yield
    finally:
        del model._validate_model_kwargs


def add_deep_prompts(
    model: PreTrainedModel, config: DeepPromptConfig, train_head: bool = True, **speed
) -> DeepPromptModel:
    """Freeze ``model`` and give the layers chosen by ``config`` trainable prefix keys/values.

    Only the prompt parameters train, plus the model's task head (classifier, qa_outputs ...) when it has one
    and ``train_head`` is true. ``speed``: the switches of `DeepPromptModel` (``frozen_dtype``,
    ``compact_mask``, ``cache_prompts``, ``detach_below``).
    """
    return DeepPromptModel(model, config, train_head=train_head, **speed)
