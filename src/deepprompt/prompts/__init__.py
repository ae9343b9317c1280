"""The deep-prompt engine: usable on its own, without Lightning or Hydra.

Its names are imported on first use, so that ``DeepPromptConfig`` (a section of the typed config that
``deepprompt-train`` checks before anything heavy) imports without torch.
"""

from deepprompt.utils.lazy import lazy_names

_HOMES = {
    "BackboneGeometry": "deepprompt.prompts.geometry",
    "DeepPromptConfig": "deepprompt.prompts.config",
    "DeepPromptModel": "deepprompt.prompts.model",
    "PromptEncoder": "deepprompt.prompts.encoder",
    "add_deep_prompts": "deepprompt.prompts.model",
    "load_prompts": "deepprompt.prompts.io",
    "save_prompts": "deepprompt.prompts.io",
}
__all__ = sorted(_HOMES)

__getattr__ = lazy_names(__name__, _HOMES)
