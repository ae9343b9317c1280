"""Joint multi-task training of classification tasks: one sampled train loader, one prompt set and head per task."""

from deepprompt.tasks.multitask.data import MultiTaskDataModule, MultiTaskSampler, task_probabilities
from deepprompt.tasks.multitask.module import MultiTaskModule

__all__ = ["MultiTaskDataModule", "MultiTaskModule", "MultiTaskSampler", "task_probabilities"]
