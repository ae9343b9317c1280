"""One line for every command-line mistake Hydra finds while composing the config.

Hydra reports an unknown key with "To append to your config use +key=value" (the wrong fix for a typo), an
unknown group option with its whole search path, and ends both with a ``HYDRA_FULL_ERROR`` hint. The entry
points install :func:`install` so that these come out as one line in the project's own words, as the typed
sections already do (``deepprompt.config.schema``): the bad key, the closest valid keys ("did you mean"), the
valid keys or options. Errors raised while a run executes are not Hydra's and keep their own handling.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

EXIT_ERROR = 1  # as every other one-line error of the entry points


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions; a transposition counts as 2)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def did_you_mean(word: str, candidates: Iterable[str]) -> list[str]:
    """The candidates closest to ``word`` by edit distance, if close enough to be a typo (at most 1/3 of it)."""
    scored = sorted((edit_distance(word.lower(), c.lower()), c) for c in candidates)
    if not scored:
        return []
    best = scored[0][0]
    if best > max(1, len(word) // 3):
        return []
    return [c for d, c in scored if d == best]


def _hint(word: str, candidates: Iterable[str]) -> str:
    close = did_you_mean(word, candidates)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


def unknown_key_message(full_key: str, valid: Iterable[str]) -> str:
    return f"unknown key '{full_key}': {unknown_key_fix(full_key, valid)}"


def unknown_key_fix(full_key: str, valid: Iterable[str]) -> str:
    """``did you mean 'x'? (valid keys of <parent>: ...)`` for the unknown dotted key ``full_key``."""
    valid = sorted(str(k) for k in valid)
    parent, _, leaf = full_key.rpartition(".")
    where = f"of {parent}" if parent else "at the top level"
    return f"{_hint(leaf, valid)}(valid keys {where}: {', '.join(valid)})"


def unknown_option_message(group: str, option: str, options: Iterable[str]) -> str:
    options = sorted(options)
    return (
        f"unknown option '{group}={option}': {_hint(option, options)}"
        f"(options of {group}: {', '.join(options)})"
    )


def message_for(err: BaseException) -> str | None:
    """The one-line message for a Hydra composition or override error, or for a deepprompt error raised outside
    a run (a launcher's settings, e.g. ``hydra/launcher=parallel``'s GPU slots); None for anything else."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    from deepprompt.errors import DeepPromptError

    if isinstance(err, DeepPromptError):  # its message says what to fix (runs record their own and go on)
        return str(err)
    cause = err.__cause__
    unknown = isinstance(cause, ConfigKeyError | ConfigAttributeError) and getattr(cause, "full_key", None)
    if isinstance(err, ConfigCompositionException) and unknown:
        parent = getattr(cause, "parent_node", None)
        valid = [k for k in parent if k != "hydra"] if hasattr(parent, "keys") else []
        return unknown_key_message(str(cause.full_key), valid)
    if isinstance(err, MissingConfigException) and err.options:
        missing = str(err.missing_cfg_file or "")
        group, _, option = missing.rpartition("/")
        if group:
            return unknown_option_message(group.replace("/", "."), option, err.options)
    if isinstance(err, OverrideParseException):
        detail = str(err).splitlines()[0]
        return f"bad value in override '{err.override}': {detail} (quote lists and special characters)"
    if isinstance(err, ConfigCompositionException | MissingConfigException):
        text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        text = text.split(" Config search path:")[0]
        return text.replace("To append to your config use", "(to add a new key use").rstrip(".") + (
            ")" if "(to add" in text else ""
        )
    return None


def install(prog: str) -> None:
    """Route Hydra's reporting of composition errors to one line ``<prog>: error: <message>`` (exit status 1).

    ``HYDRA_FULL_ERROR=1`` keeps Hydra's own report (with the traceback), as documented by Hydra.
    """
    import hydra._internal.hydra as hydra_core
    import hydra._internal.utils as hydra_utils

    original: Callable[[Any], Any] = getattr(
        hydra_utils.run_and_report, "__wrapped__", hydra_utils.run_and_report
    )

    def run_and_report(func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as err:
            message = None if os.environ.get("HYDRA_FULL_ERROR") == "1" else message_for(err)
            if message is None:  # not a composition error: Hydra's own report
                caught = err

                def again() -> Any:
                    raise caught

                return original(again)
            print(f"{prog}: error: {message}", file=sys.stderr)
            sys.exit(EXIT_ERROR)

    run_and_report.__wrapped__ = original  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report
    hydra_core.run_and_report = run_and_report
