"""Benchmark harness (issue 5): train-step and inference timing of deep prompts against peft and full FT.

Run ``deepprompt-bench --help``; see docs/performance.md for the FLOP model and how to read the table.
"""

from deepprompt.bench.flops import dense_params, head_params, mfu, train_step_flops
from deepprompt.bench.methods import METHODS, PROMPTED, SHAPES, backbone_config, build_backbone, build_method
from deepprompt.bench.timing import matmul_tflops, time_steps

__all__ = [
    "METHODS",
    "PROMPTED",
    "SHAPES",
    "backbone_config",
    "build_backbone",
    "build_method",
    "dense_params",
    "head_params",
    "matmul_tflops",
    "mfu",
    "time_steps",
    "train_step_flops",
]
