"""Task metrics that are not plain classification: entity F1 (seqeval-equivalent), SQuAD EM/F1, MultiRC F1a/EM."""

from deepprompt.metrics.entity import EntityF1, entity_counts, entity_prf, get_entities
from deepprompt.metrics.multirc import MultiRCMetric, multirc_scores
from deepprompt.metrics.squad import exact_match_score, f1_score, normalize_answer, squad_scores

__all__ = [
    "EntityF1",
    "MultiRCMetric",
    "entity_counts",
    "entity_prf",
    "exact_match_score",
    "f1_score",
    "get_entities",
    "multirc_scores",
    "normalize_answer",
    "squad_scores",
]
