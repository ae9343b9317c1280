"""The jobs of one ``launch`` of ``hydra/launcher=parallel`` on their slots: the queue, the job processes, the
stop signals, and the forkserver that the jobs are forked from."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
from collections import deque
from dataclasses import dataclass, field
from multiprocessing import connection, forkserver, util
from typing import Any

import cloudpickle
from hydra.core.utils import JobReturn, JobStatus, filter_overrides

from deepprompt.errors import ConfigError
from hydra_plugins.deepprompt_launcher import _job, _server

log = logging.getLogger("hydra_plugins.deepprompt_launcher.parallel_launcher")


class JobDied(RuntimeError):
    """A job's process ended without returning (killed, crashed)."""


_started_with: tuple[str, ...] | None = None
_server_pid: int | None = None  # the preloaded server's pid (multiprocessing starts a bare one if it died)


def start_server(preload: list[str]) -> Any:
    """The forkserver context, its server started with ``preload`` (once per process and preload list)."""
    global _started_with, _server_pid
    if "forkserver" not in multiprocessing.get_all_start_methods():
        raise RuntimeError("hydra/launcher=parallel needs the 'forkserver' start method (Linux, macOS)")
    ctx = multiprocessing.get_context("forkserver")
    if _started_with == tuple(preload):
        return ctx
    if _started_with is not None:
        stop_server()
    ctx.set_forkserver_preload([_server.__name__])
    extra = {_server.PRELOAD_ENV: ",".join(preload), "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)  # the server's environment only: each job gets the launcher's
    try:
        forkserver.ensure_running()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    _started_with, _server_pid = tuple(preload), forkserver._forkserver._forkserver_pid
    return ctx


def stop_server() -> None:
    global _started_with, _server_pid
    stop = getattr(forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()
    _started_with = _server_pid = None


class ServerGone(RuntimeError):
    """The preloaded server ended (e.g. a module of its preload exited or crashed it)."""


def _server_ended() -> bool:
    """Whether the preloaded server has ended; one that has is reaped and forgotten (as multiprocessing's own
    check does before it starts a new server), so that nothing waits for it again."""
    server = forkserver._forkserver
    pid = server._forkserver_pid
    if pid is None or pid != _server_pid:
        return True
    if os.waitpid(pid, os.WNOHANG)[0] == 0:
        return False
    os.close(server._forkserver_alive_fd)
    address = server._forkserver_address
    if address is not None and not util.is_abstract_socket_namespace(address):
        with contextlib.suppress(OSError):
            os.unlink(address)
    server._forkserver_address = server._forkserver_alive_fd = server._forkserver_pid = None
    return True


def start_process(process: Any) -> None:
    """``process.start()`` from the preloaded server, or `ServerGone`. Where the server has ended,
    multiprocessing would silently start a new server without the preload and fork the job from it: the server
    is checked first, and a job that still came from a new server (it ended between the check and the start) is
    killed and that server stopped, so no job of a sweep runs from a server that did not preload."""
    if _server_ended():
        stop_server()
        raise ServerGone
    try:
        process.start()
    except (EOFError, OSError) as err:  # it ended while this job was being forked
        raise ServerGone from err
    # it ended after the check: multiprocessing started a bare server in its place and forked the job from it
    if forkserver._forkserver._forkserver_pid != _server_pid:
        process.kill()
        process.join()
        stop_server()
        raise ServerGone


@dataclass
class _Running:
    idx: int
    overrides: list[str]
    slot_no: int
    process: Any
    conn: Any
    info: dict = field(default_factory=dict)
    result: JobReturn | None = None
    exit_code: int | None = None  # the code of a task that called sys.exit
    signals_sent: int = 0


class Pool:
    """Runs the jobs on the slots: a queue, the job processes, the stop signals."""

    def __init__(self, launcher: Any, ctx: Any, slots: list, task: tuple[str, str]) -> None:
        self.launcher, self.ctx, self.slots, self.task = launcher, ctx, slots, task
        self.running: dict[int, _Running] = {}
        self.returns: dict[int, JobReturn] = {}
        self.signals: list[int] = []
        self.exit_code: int | None = None
        self.wake_r, self.wake_w = os.pipe()

    def run(self, specs: list[tuple[int, list[str]]]) -> list[JobReturn]:
        pending, free = deque(specs), list(range(len(self.slots)))
        previous = self._install_handlers()
        try:
            while pending or self.running:
                while pending and free and not self.signals and self.exit_code is None:
                    idx, overrides = pending.popleft()
                    self._start(idx, overrides, free.pop(0))
                if (self.signals or self.exit_code is not None) and pending:
                    log.warning("%d job(s) not started: the sweep is stopping", len(pending))
                    pending.clear()
                if not self.running:
                    break
                for job in self._wait():
                    free.append(job.slot_no)
                    free.sort()
        except BaseException:
            self._abort()
            raise
        finally:
            self._restore_handlers(previous)
            os.close(self.wake_r)
            os.close(self.wake_w)
        if self.signals:
            stop_server()
            signum = self.signals[0]
            log.error("sweep stopped by %s", signal.Signals(signum).name)
            raise SystemExit(128 + signum)
        if self.exit_code is not None:
            raise SystemExit(self.exit_code)
        return [self.returns[idx] for idx, _ in specs]

    def _start(self, idx: int, overrides: list[str], slot_no: int) -> None:
        spec = self.launcher.job_spec(idx, overrides, self.slots[slot_no], self.task)
        # cloudpickle, as Hydra's joblib and submitit launchers: OmegaConf's resolvers are local functions
        payload = cloudpickle.dumps(spec)
        receive, send = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(target=_job.main, args=(payload, send), name=f"hydra-job-{idx}")
        try:
            start_process(process)
        except ServerGone as err:
            raise ConfigError(
                f"hydra/launcher=parallel: the server ended before it could start job #{idx} (its error, if any, "
                "is above); check the modules of hydra.launcher.preload"
            ) from err
        finally:
            send.close()
        self.running[idx] = _Running(idx, overrides, slot_no, process, receive)

    def _wait(self) -> list[_Running]:
        """Wait for a message, a job's end or a signal; returns the jobs that ended."""
        waiting = [job.conn for job in self.running.values() if job.conn is not None]
        waiting += [job.process.sentinel for job in self.running.values()]
        ready = set(connection.wait([*waiting, self.wake_r]))
        if self.wake_r in ready:
            os.read(self.wake_r, 64)
        self._forward_signals()
        ended = []
        for job in list(self.running.values()):
            if job.conn is not None and job.conn in ready:
                self._receive(job)
            if job.process.sentinel in ready:
                while job.conn is not None and job.conn.poll():  # a message sent just before the end
                    self._receive(job)
                job.process.join()
                self._finish(job)
                ended.append(job)
        return ended

    def _receive(self, job: _Running) -> None:
        try:
            kind, payload = job.conn.recv()
        except (EOFError, OSError):
            job.conn.close()
            job.conn = None
            return
        if kind == "started":
            job.info = payload
            self._log_started(job)
        elif kind == "result":
            job.result = pickle.loads(payload)
        elif kind == "exit":
            job.exit_code = payload

    def _log_started(self, job: _Running) -> None:
        info, server = job.info, job.info.get("server") or {}
        if server and server.get("pid") != getattr(self.launcher, "_logged_server", None):
            self.launcher._logged_server = server.get("pid")
            log.info(
                "server (pid %s): preloaded %d modules in %.1f s (%.1f s since its start), once for the sweep",
                server.get("pid"),
                server.get("modules", 0),
                server.get("preload_s", 0.0),
                server.get("since_start_s", 0.0),
            )
            for name, error in (server.get("failed") or {}).items():
                log.warning("server: could not preload %s (hydra.launcher.preload): %s", name, error)
            if server.get("cuda_initialized"):
                raise ConfigError(
                    "hydra/launcher=parallel: the server's preload initialised CUDA, which a forked job cannot "
                    "use: remove the module that does from hydra.launcher.preload"
                )
        gpus = info.get("cuda_visible_devices")
        log.info(
            "#%d started: pid %s%s",
            job.idx,
            info.get("pid"),
            "" if gpus is None else f", CUDA_VISIBLE_DEVICES={gpus}",
        )

    def _finish(self, job: _Running) -> None:
        del self.running[job.idx]
        code = job.process.exitcode
        if job.result is not None:
            self.returns[job.idx] = job.result
            return
        if job.exit_code is not None:
            if job.exit_code != 0 and self.exit_code is None:
                self.exit_code = job.exit_code
                log.error("#%d exited with status %d: no further job starts", job.idx, job.exit_code)
            self.returns[job.idx] = JobReturn(overrides=job.overrides, status=JobStatus.COMPLETED)
            return
        how = (
            f"killed by {signal.Signals(-code).name}"
            if code is not None and code < 0
            else f"exit status {code}"
        )
        if job.signals_sent:  # stopped by the signal the launcher forwarded: expected
            log.warning("#%d stopped (%s)", job.idx, how)
            self.returns[job.idx] = JobReturn(
                overrides=job.overrides,
                status=JobStatus.FAILED,
                _return_value=JobDied(f"job #{job.idx} {how}"),
            )
            return
        where = job.info.get("output_dir")
        message = (
            f"job #{job.idx} ({' '.join(filter_overrides(job.overrides))}) died ({how}) before it returned"
            + (f"; its folder: {where}" if where else "")
        )
        log.error(message)
        self.returns[job.idx] = JobReturn(
            overrides=job.overrides, status=JobStatus.FAILED, _return_value=JobDied(message)
        )

    def _abort(self) -> None:
        """The launcher itself failed: stop the running jobs (SIGTERM, SIGKILL after 30 s)."""
        for job in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.process.pid, signal.SIGTERM)
        for job in self.running.values():
            job.process.join(30)
            if job.process.exitcode is None:
                job.process.kill()
                job.process.join()

    # -- signals ---------------------------------------------------------------------------------------------
    def _install_handlers(self) -> dict:
        previous = {}
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal)
        except ValueError:  # not the main thread: the jobs keep their default handling
            pass
        return previous

    def _restore_handlers(self, previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"s")

    def _forward_signals(self) -> None:
        """Each signal the launcher got goes once to every running job; from the third on, SIGKILL."""
        for job in self.running.values():
            while job.signals_sent < len(self.signals):
                signum = self.signals[job.signals_sent] if job.signals_sent < 2 else signal.SIGKILL
                if job.signals_sent == 0:
                    log.warning("#%d: sending %s", job.idx, signal.Signals(signum).name)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(job.process.pid, signum)
                job.signals_sent += 1
