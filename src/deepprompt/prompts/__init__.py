"""The deep-prompt engine: usable on its own, without Lightning or Hydra."""

from deepprompt.prompts.config import DeepPromptConfig
from deepprompt.prompts.encoder import PromptEncoder
from deepprompt.prompts.geometry import BackboneGeometry
from deepprompt.prompts.io import load_prompts, save_prompts
from deepprompt.prompts.model import DeepPromptModel, add_deep_prompts

__all__ = [
    "BackboneGeometry",
    "DeepPromptConfig",
    "DeepPromptModel",
    "PromptEncoder",
    "add_deep_prompts",
    "load_prompts",
    "save_prompts",
]
