"""deepprompt: deep prompt tuning (P-Tuning v2) on frozen transformers.

The engine needs neither Lightning nor Hydra::

    from deepprompt import DeepPromptConfig, add_deep_prompts
    model = add_deep_prompts(AutoModelForSequenceClassification.from_pretrained(name), DeepPromptConfig(length=16))

The engine's names are imported on first use, so tools that need no torch (``deepprompt-report``) start fast.
"""

from importlib import import_module

__all__ = ["DeepPromptConfig", "DeepPromptModel", "add_deep_prompts", "load_prompts", "save_prompts"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in __all__:
        return getattr(import_module("deepprompt.prompts"), name)
    raise AttributeError(f"module 'deepprompt' has no attribute {name!r}")
