"""The SuperGLUE tasks with their own framing: COPA (multiple choice), WiC, WSC and MultiRC (F1a/EM).

RTE, BoolQ and CB are plain sentence-pair classification (`deepprompt.tasks.classification`).
"""

from deepprompt.tasks.superglue.copa import MultipleChoiceDataModule, frame_copa
from deepprompt.tasks.superglue.data import SuperGLUEDataModule, frame_multirc, frame_wic, frame_wsc
from deepprompt.tasks.superglue.metrics import MultiRCMetric, multirc_scores
from deepprompt.tasks.superglue.module import MultipleChoiceModule
from deepprompt.tasks.superglue.multirc import MultiRCModule

__all__ = [
    "MultiRCMetric",
    "MultiRCModule",
    "MultipleChoiceDataModule",
    "MultipleChoiceModule",
    "SuperGLUEDataModule",
    "frame_copa",
    "frame_multirc",
    "frame_wic",
    "frame_wsc",
    "multirc_scores",
]
