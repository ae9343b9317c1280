"""Classification metrics by name, as torchmetrics objects (they synchronise across DDP processes)."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassMatthewsCorrCoef

from deepprompt.errors import ConfigError

_FACTORIES = {
    "acc": lambda n: MulticlassAccuracy(num_classes=n, average="micro"),
    "f1_macro": lambda n: MulticlassF1Score(num_classes=n, average="macro"),
    "mcc": lambda n: MulticlassMatthewsCorrCoef(num_classes=n),
}


def classification_metrics(names: list[str] | tuple[str, ...], num_labels: int) -> MetricCollection:
    unknown = [n for n in names if n not in _FACTORIES]
    if unknown:
        raise ConfigError(f"unknown metrics {unknown}; available: {sorted(_FACTORIES)}")
    return MetricCollection({name: _FACTORIES[name](num_labels) for name in names})
