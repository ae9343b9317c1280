"""deepprompt: deep prompt tuning (P-Tuning v2) on frozen transformers.

The engine needs neither Lightning nor Hydra::

    from deepprompt import DeepPromptConfig, add_deep_prompts
    model = add_deep_prompts(AutoModelForSequenceClassification.from_pretrained(name), DeepPromptConfig(length=16))
"""

from deepprompt.prompts import (
    DeepPromptConfig,
    DeepPromptModel,
    add_deep_prompts,
    load_prompts,
    save_prompts,
)

__all__ = ["DeepPromptConfig", "DeepPromptModel", "add_deep_prompts", "load_prompts", "save_prompts"]
__version__ = "0.1.0"
