"""Methods by name: each module registers itself on import."""

from deepprompt.methods import (  # noqa: F401  (registration)
    lora,
    prefix,
    prompt_tuning,
    ptuning_v1,
    ptuning_v2,
    simple,
)
from deepprompt.methods.base import MethodConfig, build_method, method_names, method_schema, register_method

__all__ = ["MethodConfig", "build_method", "method_names", "method_schema", "register_method"]
