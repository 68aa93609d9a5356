"""A TVM RPC tracker and servers on this machine, for tests, benchmarks and trying ``--runner rpc``.

They are TVM's own ``python -m tvm.exec.rpc_tracker`` and ``rpc_server``, each in
a process group of its own: a server serves from a child process and forks one
more per session, so only killing the whole group takes a device down for good.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from .rpc_runner import TrackerError, devices_by_key, tracker_summary

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class LoopbackDevices:
    """``n_servers`` RPC servers registered under ``key`` at a tracker on loopback."""

    def __init__(
        self, n_servers: int, key: str = "loopback", *, num_threads: int | None = None, start_timeout_s: float = 120.0
    ) -> None:
        """``num_threads``: each server's TVM thread pool (``TVM_NUM_THREADS``); TVM's default otherwise."""
        self.key = key
        self._env = {**os.environ, "TVM_NUM_THREADS": str(num_threads)} if num_threads else None
        self.tracker_port = free_port()
        self.tracker = f"{HOST}:{self.tracker_port}"
        self.servers: list[subprocess.Popen] = []
        self._tracker_proc = _spawn("tvm.exec.rpc_tracker", self.tracker_port, env=None)
        try:
            self._wait(lambda: _accepts(self.tracker_port), start_timeout_s, "the tracker to listen")
            for _ in range(n_servers):
                self.servers.append(self._spawn_server())
            self.wait_free(n_servers, start_timeout_s)
        except BaseException:
            self.close()
            raise

    def _spawn_server(self) -> subprocess.Popen:
        return _spawn("tvm.exec.rpc_server", free_port(), "--tracker", self.tracker, "--key", self.key, env=self._env)

    def free(self) -> int:
        """Devices the tracker counts as free under the key now."""
        try:
            return devices_by_key(tracker_summary((HOST, self.tracker_port))).get(self.key, {}).get("free", 0)
        except TrackerError:
            return 0

    def wait_free(self, n: int, timeout_s: float = 60.0) -> None:
        """Until ``n`` devices are free (a server re-registers a moment after each session)."""
        self._wait(lambda: self.free() >= n, timeout_s, f"{n} free devices under {self.key!r}")

    @staticmethod
    def _wait(ready, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up waiting for {what} after {timeout_s:g} s")
            time.sleep(0.2)

    def kill(self, index: int) -> None:
        """Take server ``index`` down at once, sessions and all, as a device that dies."""
        _kill_group(self.servers[index])

    def restart(self, index: int) -> None:
        """Start server ``index`` anew (after :meth:`kill`); returns once every server is free."""
        _kill_group(self.servers[index])
        self.servers[index] = self._spawn_server()
        self.wait_free(len(self.servers))

    def close(self) -> None:
        for proc in [*self.servers, self._tracker_proc]:
            _kill_group(proc)

    def __enter__(self) -> "LoopbackDevices":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _spawn(module: str, port: int, *args: str, env: dict | None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, "--host", HOST, "--port", str(port), "--port-end", str(port + 1), "--silent", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
