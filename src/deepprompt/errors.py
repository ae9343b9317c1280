"""Exceptions that carry a message meant for the user: the CLI prints them without a traceback."""


class DeepPromptError(Exception):
    """Base class: an error whose message alone tells the user what to fix."""


class ConfigError(DeepPromptError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


class DataFormatError(DeepPromptError, ValueError):
    """A data file is malformed; the message starts with ``<file>:<line>:``."""


class UnsupportedBackboneError(DeepPromptError, TypeError):
    """The backbone's attention cannot take deep prompts."""


class PromptMismatchError(DeepPromptError, ValueError):
    """Saved prompts do not fit the backbone they are loaded onto."""


class CheckpointError(DeepPromptError, RuntimeError):
    """A checkpoint file is missing, truncated or not a checkpoint; the message names the file."""


class NonFiniteLossError(DeepPromptError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the step."""
