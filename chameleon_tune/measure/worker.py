"""A long-lived worker process that turns crashes and hangs into exceptions.

Starting a process that imports TVM costs seconds, so workers live across
trials; but a kernel that segfaults or loops forever must not take the tuner
with it. A worker runs one call at a time; if the call crashes the process or
outlives its timeout, the process is killed and restarted on the next call.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import time
from typing import Any, Callable

from .types import short_error


class WorkerError(Exception):
    """The call did not return: the process crashed or timed out."""


class WorkerTimeout(WorkerError):
    pass


class WorkerCrash(WorkerError):
    pass


class RemoteError(Exception):
    """The function raised inside the worker; the message is its one-line summary."""


def _serve(conn, preload: tuple[str, ...], env: dict[str, str], cpus: set[int] | None, nice: int | None) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)  # before any preload: e.g. TVM reads TVM_NUM_THREADS once
    # Both before any thread pool starts: its threads inherit them.
    if cpus:
        os.sched_setaffinity(0, cpus)
    if nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError:
            pass  # not permitted (no root, no CAP_SYS_NICE): the priority stays; callers can ask
    for module in preload:
        importlib.import_module(module)
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        fn, args = message
        try:
            conn.send(("ok", fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - every failure is reported back
            conn.send(("error", short_error(exc)))


class IsolatedWorker:
    """One spawned process; ``call(fn, *args, timeout=...)`` runs ``fn`` in it.

    ``fn`` must be a module-level function (it is pickled by reference).
    ``preload`` modules are imported at start-up, outside any call's timeout;
    ``cpus`` pins the process to those cores; ``nice`` sets its scheduling
    priority where that is permitted.
    """

    def __init__(
        self,
        preload: tuple[str, ...] = (),
        start_timeout_s: float = 300.0,
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
        nice: int | None = None,
    ) -> None:
        self.preload = preload
        self.env = dict(env or {})
        self.cpus = set(cpus) if cpus else None
        self.nice = nice
        self.start_timeout_s = start_timeout_s
        self._proc = None
        self._conn = None
        self.generation = 0  # bumps at every (re)start, so callers can re-prime state

    def start(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.preload, self.env, self.cpus, self.nice), daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(self.start_timeout_s):
            self.kill()
            raise WorkerTimeout(f"worker did not start within {self.start_timeout_s:.0f} s")
        try:
            self._conn.recv()
        except EOFError as exc:
            code = self._proc.exitcode
            self.kill()
            raise WorkerCrash(f"worker died while starting (exit code {code})") from exc
        self.generation += 1

    def call(self, fn: Callable, *args: Any, timeout: float) -> Any:
        self.start()
        self._conn.send((fn, args))
        if not self._conn.poll(timeout):
            self.kill()
            raise WorkerTimeout(f"no result within {timeout:g} s")
        try:
            status, value = self._conn.recv()
        except (EOFError, ConnectionError) as exc:
            self._proc.join(1)
            code = self._proc.exitcode
            self.kill()
            raise WorkerCrash(f"worker process died ({_describe_exit(code)})") from exc
        if status == "error":
            raise RemoteError(value)
        return value

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def close(self) -> None:
        close_all([self])

    def _ask_to_exit(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass


def close_all(workers: list[IsolatedWorker], grace_s: float = 5.0) -> None:
    """Stop every worker, asking them all first: each takes a while to exit (TVM's teardown),
    and they do it at the same time rather than one after another. One that has not exited
    after ``grace_s`` is killed."""
    for worker in workers:
        worker._ask_to_exit()
    deadline = time.monotonic() + grace_s
    for worker in workers:
        if worker._proc is not None:
            worker._proc.join(max(0.0, deadline - time.monotonic()))
        worker.kill()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
