"""Keep the console for what the run says: third-party tips and deprecation notices are filtered out.

Deprecation and future warnings concern the libraries' own upgrades, not the user's run; Lightning's
"Tip: try installing ..." advertisements and its "does not have many workers" hint (deepprompt chooses the
workers per data config) are dropped too. Everything else (real warnings, errors) still shows.
``DEEPPROMPT_DEBUG=1`` keeps them all.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

_DROPPED_INFO = ("💡 Tip:", "`weights_only` was not set")  # ads; an internal default of checkpoint IO


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_DROPPED_INFO)


def quiet_third_party() -> None:
    if os.environ.get("DEEPPROMPT_DEBUG", "") not in ("", "0"):
        return
    if not sys.stderr.isatty():  # "Loading weights: 100%|####|" bars are noise in a log file
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=r".*is deprecated.*")  # Lightning's own deprecation class
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # ConsoleReport sets log_every_n_steps to suit short epochs, after Lightning has compared it
    warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.pytorch.trainer.connectors.checkpoint_connector",
    ):
        logging.getLogger(name).addFilter(_DropTips())


def one_lightning_console() -> None:
    """Lightning gives its logger a stderr handler of its own and also propagates to the root logger, which
    Hydra configures (console and train.log): each line would show twice. Keep the root's."""
    root_handlers = logging.getLogger().handlers
    logger = logging.getLogger("lightning")
    for handler in list(logger.handlers):
        if root_handlers and type(handler) is logging.StreamHandler:
            logger.removeHandler(handler)


class ConsoleFormatter(logging.Formatter):
    """``[12:03:04] message`` on the console; warnings and errors also name their level. (train.log keeps
    Hydra's full format: date, logger name, level.)"""

    def __init__(self) -> None:
        super().__init__(fmt="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, rest = text.partition("] ")
            return f"{stamp}] {record.levelname}: {rest}"
        return text
