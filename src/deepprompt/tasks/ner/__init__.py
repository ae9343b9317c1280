"""Named entity recognition from CoNLL column files: reader and IOB2 conversion, data module, module, entity F1."""

from deepprompt.tasks.ner.data import NERDataModule, read_conll, to_iob2
from deepprompt.tasks.ner.metrics import EntityF1, entity_counts, entity_prf, get_entities
from deepprompt.tasks.ner.module import TokenClassificationModule

__all__ = [
    "EntityF1",
    "NERDataModule",
    "TokenClassificationModule",
    "entity_counts",
    "entity_prf",
    "get_entities",
    "read_conll",
    "to_iob2",
]
