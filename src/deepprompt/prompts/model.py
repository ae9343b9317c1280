"""`add_deep_prompts`: a frozen transformers model plus trainable per-layer prompts."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from transformers import PreTrainedModel

from deepprompt.errors import UnsupportedBackboneError
from deepprompt.prompts import attention
from deepprompt.prompts.config import DeepPromptConfig
from deepprompt.prompts.encoder import PromptEncoder
from deepprompt.prompts.geometry import BackboneGeometry


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


def check_supported(model: nn.Module) -> None:
    if not isinstance(model, PreTrainedModel) or not model._can_set_attn_implementation():
        raise UnsupportedBackboneError(
            f"{type(model).__name__} cannot take deep prompts: its attention does not go through transformers' "
            "AttentionInterface. Supported: transformers models whose attention uses it, e.g. BERT, RoBERTa, "
            "DeBERTa-free encoders, Llama, Qwen, Mistral, GPT-2 (transformers >= 5)."
        )


class DeepPromptModel(nn.Module):
    """A frozen backbone whose chosen attention layers see ``m`` trainable prefix keys/values.

    ``forward`` takes the backbone's own arguments and returns its own outputs.
    """

    def __init__(self, model: PreTrainedModel, config: DeepPromptConfig, train_head: bool = True):
        super().__init__()
        check_supported(model)
        self.model = model
        self.config = config
        self.geometry = BackboneGeometry.from_config(model.config)
        self.prompt_encoder = PromptEncoder(config, self.geometry)
        model.set_attn_implementation(attention.prompted_name(model.config._attn_implementation))
        model.requires_grad_(False)
        self.head_names = head_module_names(model) if train_head else []
        for name in self.head_names:
            getattr(model, name).requires_grad_(True)

    def forward(self, *args, **kwargs):
        return self.model(*args, deep_prompts=self.prompt_encoder(), **kwargs)

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
        # Non-reentrant: the prefix reaches each layer as a keyword argument, which the reentrant variant
        # would not differentiate through.
        # (`gradient_checkpointing_enable` is deprecated in transformers 5 and warns on every call.)
        self.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})

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
    model: PreTrainedModel, config: DeepPromptConfig, train_head: bool = True
) -> DeepPromptModel:
    """Freeze ``model`` and give the layers chosen by ``config`` trainable prefix keys/values.

    Only the prompt parameters train, plus the model's task head (classifier, qa_outputs ...) when it has one
    and ``train_head`` is true.
    """
    return DeepPromptModel(model, config, train_head=train_head)
