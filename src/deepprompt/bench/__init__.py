"""Benchmarks: training-step and inference timing of the methods, one real training epoch, DDP scaling.

``deepprompt-bench --help`` (`cli`); rows are training methods with variants (`models`), presets are data
(`presets.yaml`); docs/performance.md has the FLOP model (`flops`) and how to read the table.
"""

from deepprompt.bench.flops import dense_params, head_params, mfu, train_step_flops
from deepprompt.bench.models import METHODS, VARIANTS, Row, build_model
from deepprompt.bench.shapes import SHAPES, backbone_config, build_backbone
from deepprompt.bench.timing import matmul_tflops, time_steps

__all__ = [
    "METHODS",
    "SHAPES",
    "VARIANTS",
    "Row",
    "backbone_config",
    "build_backbone",
    "build_model",
    "dense_params",
    "head_params",
    "matmul_tflops",
    "mfu",
    "time_steps",
    "train_step_flops",
]
