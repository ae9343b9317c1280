"""Extractive question answering (SQuAD 1.1 / 2.0): windows and span post-processing, data module, module, EM/F1."""

from deepprompt.tasks.qa.data import SquadDataModule, read_squad
from deepprompt.tasks.qa.metrics import exact_match_score, f1_score, normalize_answer, squad_scores
from deepprompt.tasks.qa.module import QuestionAnsweringModule

__all__ = [
    "QuestionAnsweringModule",
    "SquadDataModule",
    "exact_match_score",
    "f1_score",
    "normalize_answer",
    "read_squad",
    "squad_scores",
]
