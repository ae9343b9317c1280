"""One process at a time in a run folder: an exclusive lock on ``<run_dir>/.deepprompt/lock``.

The lock is an ``flock`` on the file, so the kernel releases it when the process ends however it ends (SIGKILL
included): a lock file left behind by a dead run is stale by construction and taken over. A forked child (a
DataLoader worker) closes its copy of the descriptor at once: a flock belongs to the open file, so a worker that
outlives a killed run by its watchdog's few seconds would otherwise keep the folder locked after the run died.
The file records the holder (pid, host, start time) for the message the second process prints. Where ``flock`` is not supported
(some network file systems) the file itself is the lock, created exclusively, and a leftover one is stale when
its pid is gone on this host or when it is older than ``DEEPPROMPT_LOCK_STALE_S`` (default 24 h) on another.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from deepprompt.errors import DeepPromptError

LOCK_FILE = Path(".deepprompt") / "lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


_HELD: set[int] = set()  # this process's lock descriptors


def _close_held_in_child() -> None:
    """After a fork: the child holds no run folder (only the process that acquired the lock does)."""
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


class RunLocked(DeepPromptError):
    """Another live process holds the run folder."""


def _holder(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} (since {started})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``with RunLock(run_dir): ...`` holds the folder; a second holder gets :class:`RunLocked` at once."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self._exclusive_file = False

    def _message(self, holder: dict[str, Any]) -> str:
        return (
            f"run folder {self.run_dir} is in use by {_describe(holder)}; wait for it to end, or pick another "
            "folder (hydra.run.dir / hydra.sweep.dir)"
        )

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"pid": os.getpid(), "host": platform.node(), "started": time.time()})
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is None:
                raise OSError(errno.ENOLCK, "no flock")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(self._message(_holder(self.path))) from None
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            return self._acquire_exclusive_file(record)
        os.ftruncate(fd, 0)
        os.write(fd, record.encode())
        self._fd = fd
        _HELD.add(fd)
        return self

    def _acquire_exclusive_file(self, record: str) -> RunLock:
        """No ``flock``: a lock file created with ``O_EXCL`` (the record decides whether a leftover is stale)."""
        path = self.path.with_name("lock.held")
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _holder(path)
                same_host = holder.get("host") == platform.node()
                max_age = float(os.environ.get("DEEPPROMPT_LOCK_STALE_S", 24 * 3600))
                stale = (
                    not holder
                    or (same_host and not _alive(int(holder.get("pid", 0))))
                    or (not same_host and time.time() - float(holder.get("started", 0)) > max_age)
                )
                if not stale:
                    raise RunLocked(self._message(holder)) from None
                path.unlink(missing_ok=True)
                continue
            os.write(fd, record.encode())
            os.close(fd)
            self._exclusive_file = True
            return self
        raise RunLocked(self._message(_holder(path)))

    def release(self) -> None:
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.close(self._fd)  # closing drops the flock; the file stays (unlinking it would race a waiter)
            self._fd = None
        if self._exclusive_file:
            self.path.with_name("lock.held").unlink(missing_ok=True)
            self._exclusive_file = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
