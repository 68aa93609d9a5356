"""Compile scheduled IRModules into loadable shared libraries, in parallel.

MetaSchedule's LocalBuilder starts a fresh worker that imports TVM's tensor
intrinsics (~20-45 s here) per build batch and times out; our workers import
TVM once and stay alive, one per core.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from queue import Queue

from .types import BuildResult
from .worker import IsolatedWorker, RemoteError, WorkerError, WorkerTimeout


@cache
def _target(target_json: str):
    import tvm

    return tvm.target.Target(json.loads(target_json))


def build_artifact(mod, target_json: str, path: str) -> str:
    """Worker side: compile ``mod`` and export it as a shared library at ``path``."""
    import tvm

    tvm.compile(mod, target=_target(target_json)).export_library(path)
    return path


class LocalBuilder:
    """A pool of long-lived compiler processes on this machine."""

    def __init__(self, target, *, n_workers: int | None = None, timeout_s: float = 30.0) -> None:
        self.target_json = str(target)  # TVM prints targets as JSON
        self.timeout_s = timeout_s
        n_workers = n_workers or os.cpu_count() or 1
        self._workers = [IsolatedWorker(preload=("tvm",)) for _ in range(n_workers)]
        self._free: Queue[IsolatedWorker] = Queue()
        for worker in self._workers:
            self._free.put(worker)
        self._pool = ThreadPoolExecutor(max_workers=n_workers)
        self._dir = tempfile.TemporaryDirectory(prefix="chameleon-build-")
        self._count = 0

    def build(self, mods: list) -> list[BuildResult]:
        """Build every module; failures come back as results with ``error_msg``."""
        paths = []
        for _ in mods:
            self._count += 1
            paths.append(os.path.join(self._dir.name, f"k{self._count}.so"))
        return list(self._pool.map(self._build_one, mods, paths))

    def _build_one(self, mod, path: str) -> BuildResult:
        worker = self._free.get()
        start = time.perf_counter()
        try:
            worker.call(build_artifact, mod, self.target_json, path, timeout=self.timeout_s)
            return BuildResult(path, None, time.perf_counter() - start)
        except WorkerTimeout as exc:
            return BuildResult(None, f"build timed out: {exc}", time.perf_counter() - start, timed_out=True)
        except (RemoteError, WorkerError) as exc:
            return BuildResult(None, str(exc), time.perf_counter() - start)
        finally:
            self._free.put(worker)

    def start(self) -> None:
        """Start every worker now (in parallel), so start-up is not charged to a build."""
        list(self._pool.map(lambda w: w.start(), self._workers))

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._pool.shutdown()
        self._dir.cleanup()
