"""Typed config schemas and OmegaConf resolvers."""

from deepprompt.config.schema import HeadConfig, OptimConfig, structured

__all__ = ["HeadConfig", "OptimConfig", "structured"]
