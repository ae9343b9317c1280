"""Typed config schemas and OmegaConf resolvers."""

from deepprompt.config.schema import (
    BackboneConfig,
    DataConfig,
    HeadConfig,
    OptimConfig,
    RunConfig,
    TrainerConfig,
    structured,
    typed_keys,
)

__all__ = [
    "BackboneConfig",
    "DataConfig",
    "HeadConfig",
    "OptimConfig",
    "RunConfig",
    "TrainerConfig",
    "structured",
    "typed_keys",
]
