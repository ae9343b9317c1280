"""Methods by name: each module registers itself on import."""

from deepprompt.methods import ptuning_v2, simple  # noqa: F401  (registration)
from deepprompt.methods.base import MethodConfig, build_method, method_names, method_schema, register_method

__all__ = ["MethodConfig", "build_method", "method_names", "method_schema", "register_method"]
