"""Prompt tuning (Lester et al., 2021) through peft: m trainable input embeddings before the text.

Only the input layer sees the prompt (P-Tuning v2 puts one in every layer). Initialisation: ``random``
(normal, peft's default), ``vocab`` (embeddings of m random vocabulary tokens) or ``text`` (embeddings of
the tokens of ``init_text``, repeated or cut to m; the tokenizer adds its special tokens, e.g. [CLS] .. [SEP]).
The head reads the first real token (index m); see `peft_wrapper`.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepprompt.errors import bad_value
from deepprompt.methods.base import MethodConfig, register_method

_INIT = {"random": "RANDOM", "vocab": "SAMPLE_VOCAB", "text": "TEXT"}  # peft.PromptTuningInit values


@dataclass
class PromptTuningMethodConfig(MethodConfig):
    name: str = "prompt_tuning"
    lr: float = 3e-2  # input prompts want large rates (Lester: 0.3 with Adafactor); sweep 1e-2 .. 3e-2
    num_virtual_tokens: int = 20
    init: str = "random"  # 'random', 'vocab' or 'text'
    init_text: str = "Classify the text:"
    tokenizer: str | None = None  # for init=text; None: the backbone's own (its name_or_path)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_virtual_tokens < 1:
            raise bad_value("method.num_virtual_tokens", "a positive integer", self.num_virtual_tokens, 20)
        if self.init not in _INIT:
            raise bad_value("method.init", f"one of {', '.join(_INIT)}", self.init, "random")


@register_method("prompt_tuning", PromptTuningMethodConfig)
def build_prompt_tuning(backbone, cfg: PromptTuningMethodConfig):
    from peft import PromptTuningConfig, TaskType  # peft loads only for the methods that use it

    from deepprompt.methods.peft_wrapper import PeftEncoder

    text = cfg.init == "text"
    config = PromptTuningConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        num_virtual_tokens=cfg.num_virtual_tokens,
        prompt_tuning_init=_INIT[cfg.init],
        prompt_tuning_init_text=cfg.init_text if text else None,
        tokenizer_name_or_path=(cfg.tokenizer or backbone.name_or_path) if text else None,
    )
    return PeftEncoder(backbone, config)
