"""Measure on devices behind a TVM RPC tracker, in parallel over the devices of one key.

Devices register with a tracker (``python -m tvm.exec.rpc_server --tracker HOST:PORT
--key KEY``). Each job asks the tracker for a session on a free device of the key,
uploads the built library, checks its outputs against the reference and times it
there, then ends the session so the device is free again. A session per job, as
TVM's own runners do, lets the tracker hand jobs to whichever devices are free
and drops a dead device from the rotation by itself.

Every RPC call runs in a client worker process (one per device): a device that
stops answering hangs that process, which is killed at its timeout, never the
tuner. A job whose session died is retried on a new session, up to
``RunnerConfig.retries`` times, then recorded as a run error with the reason.
TVM's stock server cannot tell a crashing kernel from a lost device: the crash
ends the session, and (TVM 0.27) the server's listen loop with it, so such a
kernel takes up to ``retries + 1`` servers out until they are restarted.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from queue import Queue
from typing import Callable

import numpy as np

from .builder import layout_split
from .runner import ArgSpec, Runner, check_and_time_module, run_once
from .types import RUN, TIMEOUT, WRONG, MeasureOptions, RunnerConfig, RunResult, short_error
from .worker import IsolatedWorker, RemoteError, WorkerError, close_all

OK = "ok"
LOST = "lost"  # the session died under the job: retried, never recorded
REQUEST_WAIT_S = 60.0  # how long a job may wait in the tracker's queue for a free device
TRACKER_TIMEOUT_S = 10.0


class TrackerError(Exception):
    """The tracker cannot be reached or does not answer as one (one-line message)."""


def tracker_summary(address: tuple[str, int], timeout_s: float = TRACKER_TIMEOUT_S) -> dict:
    """The tracker's own ``summary()``: ``queue_info`` per key and ``server_info`` per device."""
    host, port = address
    # TVM's client retries a refused connection for 60 s: fail fast on that first.
    try:
        socket.create_connection(address, timeout=timeout_s).close()
    except OSError as exc:
        raise TrackerError(f"cannot reach the RPC tracker at {host}:{port}: {exc.strerror or exc}") from None
    from tvm import rpc

    answer: dict = {}

    def query() -> None:
        try:
            answer["summary"] = rpc.connect_tracker(host, port).summary()
        except Exception as exc:  # noqa: BLE001 - reported below, as one line
            answer["error"] = f": {short_error(exc)}"

    # A port that accepts but never answers (not a tracker) must not hang us.
    thread = threading.Thread(target=query, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if "summary" not in answer:
        raise TrackerError(
            f"{host}:{port} did not answer as a TVM RPC tracker within {timeout_s:g} s{answer.get('error', '')}"
        )
    return answer["summary"]


def devices_by_key(summary: dict) -> dict[str, dict[str, int]]:
    """``{key: {"total", "free", "pending"}}`` from a tracker summary (free and pending as it counts them)."""
    keys = {k: {"total": 0, "free": q["free"], "pending": q["pending"]} for k, q in summary["queue_info"].items()}
    for server in summary["server_info"]:
        key = server["key"].split(":", 1)[1]  # servers report "server:KEY"
        keys.setdefault(key, {"total": 0, "free": 0, "pending": 0})["total"] += 1
    return keys


@dataclass(frozen=True)
class Devices:
    """Where jobs go: the tracker, the key, and the device type (DLPack code) on each device."""

    tracker: tuple[str, int]
    key: str
    device_type: int


def _on_device(devices: Devices, timeout_s: float, artifact: str, body: Callable) -> tuple[str, object]:
    """Client-worker side: ``body(module, dev)`` in a fresh session; a tagged outcome, never an exception."""
    import tvm
    from tvm import rpc

    try:
        session = rpc.connect_tracker(*devices.tracker).request(devices.key, session_timeout=timeout_s)
    except (OSError, RuntimeError) as exc:
        return LOST, f"no session from the tracker: {short_error(exc)}"
    try:
        session.upload(artifact)
        module = session.load_module(os.path.basename(artifact))
        return OK, body(module, session.device(devices.device_type))
    except tvm.error.RPCSessionTimeoutError:
        return TIMEOUT, f"run timed out on the device: the session exceeded {timeout_s:g} s"
    except Exception as exc:  # noqa: BLE001 - every failure is an outcome
        return (RUN if _alive(session) else LOST), short_error(exc)


def _alive(session) -> bool:
    """Whether the session still answers: a dead one fails at once (broken pipe)."""
    try:
        session.listdir(".")
        return True
    except Exception:  # noqa: BLE001 - any failure means the session is gone
        return False


def reference_on_device(devices: Devices, timeout_s: float, reference: str, func_name: str, args: list[ArgSpec]):
    """Client-worker side: the reference kernel's outputs on the fixed random inputs."""
    return _on_device(
        devices, timeout_s, reference, lambda module, dev: [t.numpy() for t in run_once(module, dev, func_name, args)]
    )


def check_and_time_on_device(
    devices: Devices,
    timeout_s: float,
    artifact: str,
    func_name: str,
    args: list[ArgSpec],
    expected: list[np.ndarray] | None,
    options: MeasureOptions,
):
    """Client-worker side: ``(run_secs, mismatch or None)`` of ``artifact`` on a device."""
    split = layout_split(artifact)  # read here: the sidecar file stays on this machine
    return _on_device(
        devices, timeout_s, artifact,
        lambda module, dev: check_and_time_module(module, dev, func_name, args, expected, options, split),
    )  # fmt: skip


class RPCRunner(Runner):
    """Checks and times kernels on every device of a key at a TVM RPC tracker, in parallel.

    ``run_all`` sizes its parallelism to the devices registered at each call, so
    devices that join or leave mid-run are followed batch by batch.
    """

    def __init__(self, config: RunnerConfig, options: MeasureOptions = MeasureOptions(), *, device_type: int = 1) -> None:
        """``device_type``: DLPack device code of the target (``Target.get_target_device_type()``; 1 is the CPU)."""
        self.config = config
        self.options = options
        self.devices = Devices(config.tracker_address, config.device_key, device_type)
        self._workers: list[IsolatedWorker] = []
        self._free: Queue[IsolatedWorker] = Queue()
        self._task: tuple | None = None
        # Reference outputs by reference artifact: a runner shared by a model's tasks switches back and forth.
        self._references: dict[str, list[np.ndarray]] = {}

    def prepare(self, reference: str | None, args: list[ArgSpec], func_name: str = "main") -> None:
        self._task = (reference, [(tuple(s), str(d)) for s, d in args], func_name)
        self._grow_pool()  # start-up now, not in the first measurement

    def run(self, artifact: str) -> RunResult:
        results: list[RunResult] = []
        self.run_all([artifact], lambda _index, result: results.append(result))
        return results[0]

    def run_all(self, artifacts: list[str], on_done: Callable[[int, RunResult], None]) -> None:
        if self._task is None:
            raise RuntimeError("Runner.prepare() must be called before run()")
        if not artifacts:
            return
        parallel = min(len(artifacts), self._grow_pool())
        failure = self._prime()
        if failure is not None:
            for i in range(len(artifacts)):
                on_done(i, failure)
            return
        pool = ThreadPoolExecutor(max_workers=parallel)
        try:
            futures = {pool.submit(self._check_and_time, artifact): i for i, artifact in enumerate(artifacts)}
            for future in as_completed(futures):
                on_done(futures[future], future.result())  # in this thread: records stay sequential
        finally:
            # After Ctrl-C, do not wait for jobs in flight: close() kills their workers.
            pool.shutdown(wait=False, cancel_futures=True)

    def _grow_pool(self) -> int:
        """One client worker per device now registered under the key; how many devices (at least 1)."""
        try:
            count = devices_by_key(tracker_summary(self.devices.tracker)).get(self.devices.key, {}).get("total", 0)
        except TrackerError:
            count = 0  # the tracker is away for now: jobs wait for it, then fail as lost
        count = max(1, count)
        new = [IsolatedWorker(preload=("tvm",)) for _ in range(count - len(self._workers))]
        if new:  # start them together: each imports TVM for seconds
            with ThreadPoolExecutor(max_workers=len(new)) as starting:
                list(starting.map(IsolatedWorker.start, new))
        for worker in new:
            self._workers.append(worker)
            self._free.put(worker)
        return count

    def _prime(self) -> RunResult | None:
        """Reference outputs, once, from a device (a cross-compiled reference cannot run here)."""
        reference, args, func_name = self._task
        if reference is None or reference in self._references:
            return None
        # The untuned reference can be slow: give it a generous limit.
        timeout_s = max(300.0, self.options.run_timeout_s)
        outcome, value, run_s = self._with_retries(reference_on_device, timeout_s, reference, func_name, args)
        if outcome != OK:
            return RunResult((), RUN, f"reference implementation failed on the device: {value}", run_s)
        self._references[reference] = value
        return None

    def _check_and_time(self, artifact: str) -> RunResult:
        reference, args, func_name = self._task
        expected = self._references[reference] if reference is not None else None
        outcome, value, run_s = self._with_retries(
            check_and_time_on_device, self.options.run_timeout_s, artifact, func_name, args, expected, self.options
        )
        if outcome != OK:
            return RunResult((), outcome, value, run_s)
        secs, mismatch = value
        if mismatch is not None:
            return RunResult((), WRONG, mismatch, run_s)
        return RunResult(secs, None, None, run_s)

    def _with_retries(self, fn: Callable, timeout_s: float, *args) -> tuple[str, object, float]:
        """``fn`` on a device session, on a new one if it died: (outcome, value, seconds)."""
        start = time.perf_counter()
        for _attempt in range(self.config.retries + 1):
            worker = self._free.get()
            try:
                outcome, value = worker.call(fn, self.devices, timeout_s, *args, timeout=timeout_s + REQUEST_WAIT_S)
            except WorkerError as exc:  # the client hung or crashed: the device is as good as lost
                outcome, value = LOST, str(exc)
            except RemoteError as exc:
                outcome, value = RUN, str(exc)
            finally:
                self._free.put(worker)
            if outcome != LOST:
                return outcome, value, time.perf_counter() - start
        attempts = self.config.retries + 1
        return RUN, f"device session lost {attempts} time{'s' * (attempts > 1)}, last: {value}", time.perf_counter() - start

    def close(self) -> None:
        close_all(self._workers)
