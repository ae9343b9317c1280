"""Lightning callbacks of deepprompt."""

from deepprompt.callbacks.prompt_export import PromptExport

__all__ = ["PromptExport"]
