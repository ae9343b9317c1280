"""`PeftEncoder`: a bare backbone adapted by a peft method, called like the backbone itself.

Why not peft's own ``PeftModelForFeatureExtraction.forward``: for prompt-learning methods it drops
``token_type_ids`` (with a warning), which loses BERT's segment B on the pair tasks (RTE, BoolQ, CB). So
we let peft build and own the trainable parameters (``get_peft_model``) and do the forward here:

- weight adapters (LoRA): peft's forward as is (``token_type_ids`` pass through);
- ``prefix`` (PREFIX_TUNING): the backbone is called with ``past_key_values=peft_model.get_prompt(B)`` (a
  ``DynamicCache`` holding m keys/values per layer) and the attention mask extended by m ones on the left,
  as peft does. The outputs keep the input length T ([CLS] stays at index 0); BERT/RoBERTa then take
  positions m .. m+T-1 (``past_key_values_length``), as in peft and the official P-Tuning v2 code, so
  T + m must fit the position table. Checked on BertModel/RobertaModel (transformers 5.23, sdpa and eager):
  a padded row equals the same row unpadded, and a masked-out prefix equals the bare model.
- input prompts (PROMPT_TUNING, P_TUNING): m virtual token embeddings are prepended to the word
  embeddings, the attention mask gets m ones and ``token_type_ids`` m zeros on the left. The outputs have
  length m + T: index ``cls_index`` = m is the first real token ([CLS] / <s>), and ``pooler_output`` is
  recomputed as the backbone's pooler on that token (BERT's pooler would otherwise read virtual token 0).
  Positions are 0 .. m+T-1 (the virtual tokens take the first m), so T + m must fit the position table.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from peft import PeftConfig, PeftType, get_peft_model
from peft.tuners.tuners_utils import BaseTuner
from torch import nn
from transformers import PreTrainedModel

INPUT_PROMPTS = (PeftType.PROMPT_TUNING, PeftType.P_TUNING)


class PeftEncoder(nn.Module):
    """``forward(input_ids, attention_mask, token_type_ids)`` -> the backbone's outputs (see module doc)."""

    def __init__(self, backbone: PreTrainedModel, config: PeftConfig):
        super().__init__()
        self.peft = get_peft_model(backbone, config)
        self.peft_type = self.peft.active_peft_config.peft_type
        # where the first real token ([CLS] / <s>) sits in ``last_hidden_state``
        self.cls_index = (
            self.peft.active_peft_config.num_virtual_tokens if self.peft_type in INPUT_PROMPTS else 0
        )

    @property
    def backbone(self) -> PreTrainedModel:
        """The backbone (for LoRA: with its adapted layers in place)."""
        return self.peft.get_base_model()

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The backbone's own weights, without the adapter weights peft put inside it (LoRA's ``lora_*``)."""
        tuner = self.peft.base_model
        prefix = tuner.prefix if isinstance(tuner, BaseTuner) else None
        for name, param in self.backbone.named_parameters():
            if prefix is None or prefix not in name:
                yield param

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        if not self.peft.active_peft_config.is_prompt_learning:
            return self.peft(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs
            )
        batch, m = input_ids.shape[0], self.peft.active_peft_config.num_virtual_tokens
        if attention_mask is not None:
            attention_mask = torch.cat((attention_mask.new_ones(batch, m), attention_mask), dim=1)
        if self.peft_type == PeftType.PREFIX_TUNING:
            return self.backbone(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                past_key_values=self.peft.get_prompt(batch),
                **kwargs,
            )
        embeds = self.peft.word_embeddings(input_ids)
        embeds = torch.cat((self.peft.get_prompt(batch).to(embeds.dtype), embeds), dim=1)
        if token_type_ids is not None:
            token_type_ids = torch.cat((token_type_ids.new_zeros(batch, m), token_type_ids), dim=1)
        out = self.backbone(
            inputs_embeds=embeds, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs
        )
        pooler = getattr(self.backbone, "pooler", None)
        if pooler is not None and getattr(out, "pooler_output", None) is not None:
            out.pooler_output = pooler(out.last_hidden_state[:, self.cls_index :])
        return out

    def gradient_checkpointing_enable(self) -> None:
        self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
