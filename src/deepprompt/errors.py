"""Exceptions that carry a message meant for the user: the CLI prints them without a traceback."""

from __future__ import annotations

from typing import Any


class DeepPromptError(Exception):
    """Base class: an error whose message alone tells the user what to fix."""


class ConfigError(DeepPromptError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range.

    The message is one line, ``<problem> (from <source>): <fix>``: ``key`` is the full dotted key at fault
    (``method.prompt.length``) when one is, ``fix`` says what to pass instead, and ``source`` says where the
    value was set (a command-line override or a config file and line); deepprompt-train's check fills it in
    from ``key`` (`deepprompt.config.sources`).
    """

    def __init__(
        self, problem: str, key: str | None = None, fix: str | None = None, source: str | None = None
    ) -> None:
        # all in args: a copy pickled to another process keeps them
        super().__init__(problem, key, fix, source)
        self.problem, self.key, self.fix, self.source = problem, key, fix, source

    def __str__(self) -> str:
        where = f" (from {self.source})" if self.source else ""
        return f"{self.problem}{where}: {self.fix}" if self.fix else f"{self.problem}{where}"


def bad_value(key: str, rule: str, got: Any, example: Any) -> ConfigError:
    """``<key> must be <rule>, got <got>: pass e.g. <key>=<example>`` (``example`` as written in an override)."""
    return ConfigError(f"{key} must be {rule}, got {got!r}", key=key, fix=f"pass e.g. {key}={example}")


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
