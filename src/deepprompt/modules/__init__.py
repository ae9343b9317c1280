"""Lightning modules, one per task family."""

from deepprompt.modules.classification import ClassificationModule

__all__ = ["ClassificationModule"]
