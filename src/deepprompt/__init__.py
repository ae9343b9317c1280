"""deepprompt: deep prompt tuning (P-Tuning v2) on frozen transformers.

The engine needs neither Lightning nor Hydra::

    from deepprompt import DeepPromptConfig, add_deep_prompts
    model = add_deep_prompts(AutoModelForSequenceClassification.from_pretrained(name), DeepPromptConfig(length=16))

The engine's names are imported on first use, so tools that need no torch (``deepprompt-report``) start fast.
The task families' data modules and Lightning modules live in ``deepprompt.tasks.<family>``; the most used
ones are importable from here as well.
"""

from deepprompt.utils.lazy import lazy_names

_ENGINE = ["DeepPromptConfig", "DeepPromptModel", "add_deep_prompts", "load_prompts", "save_prompts"]
_TASKS = {
    "ClassificationDataModule": "deepprompt.tasks.classification",
    "ClassificationModule": "deepprompt.tasks.classification",
    "MultiTaskDataModule": "deepprompt.tasks.multitask",
    "MultiTaskModule": "deepprompt.tasks.multitask",
}
__all__ = [*_ENGINE, *_TASKS]
__version__ = "0.1.0"

__getattr__ = lazy_names(__name__, {**dict.fromkeys(_ENGINE, "deepprompt.prompts"), **_TASKS})
