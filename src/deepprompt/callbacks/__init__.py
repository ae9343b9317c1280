"""Lightning callbacks (and the checkpoint IO plugin) of deepprompt."""

from deepprompt.callbacks.checkpoint_io import AtomicCheckpointIO
from deepprompt.callbacks.console import ConsoleReport
from deepprompt.callbacks.graceful_stop import GracefulStop
from deepprompt.callbacks.nan_guard import NanGuard
from deepprompt.callbacks.progress_bar import ProgressBar
from deepprompt.callbacks.prompt_export import PromptExport
from deepprompt.callbacks.step_checkpoint import StepCheckpoint
from deepprompt.callbacks.step_seed import StepSeed

__all__ = [
    "AtomicCheckpointIO",
    "ConsoleReport",
    "GracefulStop",
    "NanGuard",
    "ProgressBar",
    "PromptExport",
    "StepCheckpoint",
    "StepSeed",
]
