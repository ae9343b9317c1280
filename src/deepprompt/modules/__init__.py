"""Lightning modules, one per task family."""

from deepprompt.modules.classification import ClassificationModule

__all__ = ["ClassificationModule"]

# Task families beyond sentence classification (issue 4).
from deepprompt.modules.multiple_choice import MultipleChoiceModule  # noqa: E402
from deepprompt.modules.multirc import MultiRCModule  # noqa: E402
from deepprompt.modules.question_answering import QuestionAnsweringModule  # noqa: E402
from deepprompt.modules.token_classification import TokenClassificationModule  # noqa: E402

__all__ += ["MultiRCModule", "MultipleChoiceModule", "QuestionAnsweringModule", "TokenClassificationModule"]

# Joint multi-task training (issue 9).
from deepprompt.modules.multitask import MultiTaskModule  # noqa: E402

__all__ += ["MultiTaskModule"]
