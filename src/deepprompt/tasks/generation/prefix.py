"""peft prefix tuning (Li & Liang) on a causal LM, for `GenerationModule`: training forward and ``generate()``.

The classification wrapper (`deepprompt.methods.peft_wrapper.PeftEncoder`, peft's FEATURE_EXTRACTION task)
has no ``generate``; here peft's own ``PeftModelForCausalLM`` (task CAUSAL_LM) does both:

- forward: ``past_key_values = get_prompt(B)`` (a ``DynamicCache`` of m keys/values per layer) and the
  attention mask extended by m ones on the left; the position ids we pass (from the text's attention mask,
  0 at the first real token) reach the backbone untouched, so the prefix has no position of its own and
  left padding shifts nothing;
- ``generate()``: peft swaps in its ``prepare_inputs_for_generation``, which injects the prefix cache at the
  prefill step (sized to the batch generate() already expanded for beams), extends the mask and shifts
  ``cache_position`` by m; transformers makes the position ids from the un-extended mask (cumsum - 1), the
  same positions as training. Checked on tiny Llama/GPT-2 with left padding: greedy generate() equals a
  step-by-step argmax loop over the training forward (tests/tasks/generation/test_prefix_generation.py).

Encoder-decoder models (T5) are not handled here: `GenerationModule` and its data modules are decoder-only
(see `load_causal_lm`). peft 0.21.2's own seq2seq prefix path runs on transformers 5.23 (the reported
failure, a call to the renamed private ``_prepare_encoder_decoder_kwargs_for_generation``, is gone from
peft 0.21); tests/tasks/generation/test_peft_generation.py pins that down.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn
from transformers import PreTrainedModel

from deepprompt.errors import ConfigError
from deepprompt.methods.prefix import PrefixMethodConfig, init_prefix, peft_prefix_config


class CausalPrefixLM(nn.Module):
    """A causal LM with a trainable peft prefix (backbone frozen): ``forward`` as the LM's, and ``generate``."""

    def __init__(self, lm: PreTrainedModel, cfg: PrefixMethodConfig):
        super().__init__()
        from peft import TaskType, get_peft_model

        if lm.config.is_encoder_decoder:
            raise ValueError(f"CausalPrefixLM needs a decoder-only LM, got {type(lm).__name__}")
        if cfg.compile != "none":
            raise ConfigError(
                f"method.compile={cfg.compile!r}: prefix tuning of a causal LM (generation) runs eager; set method.compile=none"
            )
        self.num_virtual_tokens = cfg.num_virtual_tokens
        self.peft = get_peft_model(lm, peft_prefix_config(cfg, TaskType.CAUSAL_LM))
        init_prefix(self.peft, cfg)

    @property
    def backbone(self) -> PreTrainedModel:
        return self.peft.get_base_model()

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.backbone.parameters()  # the prefix lives outside the backbone (peft's prompt_encoder)

    def forward(self, input_ids, attention_mask, position_ids=None, **kwargs):
        if position_ids is None:  # as generate(): positions of the text alone, the prefix has none
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return self.peft(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        )

    def generate(self, input_ids, attention_mask, **kwargs):
        """Prompt + new tokens, as ``PreTrainedModel.generate`` (greedy, beam search, ...)."""
        return self.peft.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def gradient_checkpointing_enable(self) -> None:
        self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
