"""Typed config schemas and OmegaConf resolvers."""

from deepprompt.config.schema import (
    DataConfig,
    HeadConfig,
    OptimConfig,
    RunConfig,
    TrainerConfig,
    structured,
    typed_keys,
)

__all__ = [
    "DataConfig",
    "HeadConfig",
    "OptimConfig",
    "RunConfig",
    "TrainerConfig",
    "structured",
    "typed_keys",
]
