"""Compile scheduled IRModules into loadable shared libraries, in parallel.

MetaSchedule's LocalBuilder starts a fresh worker that imports TVM's tensor
intrinsics (~20-45 s here) per build batch and times out; our workers import
TVM once and stay alive, one per core.

A kernel whose weights were given a new layout (MetaSchedule's ``RewriteLayout``)
re-lays them out on every call of ``main``; in the compiled model that happens once,
at compile time. So such a library also gets a ``compute`` entry without that step
(``RemoveWeightLayoutRewriteBlock``, as MetaSchedule's own builder does), and a
sidecar file names it with its argument shapes: ``main`` is what is checked against
the reference, ``compute`` what is timed.
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


COMPUTE = "compute"


def build_artifact(mod, target_json: str, path: str) -> str:
    """Worker side: compile ``mod`` and export it as a shared library at ``path``."""
    import tvm

    mod, timed = _with_compute_entry(mod)
    tvm.compile(mod, target=_target(target_json)).export_library(path)
    if timed is not None:
        with open(_timed_path(path), "w") as f:
            json.dump(timed, f)
    return path


def _with_compute_entry(mod):
    """``(module, timed entry)``: ``mod`` plus a ``compute`` entry if its weights are re-laid out."""
    import tvm
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    compute = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    if tvm_ffi.structural_equal(compute, mod):
        return mod, None
    func = compute["main"]
    both = tvm.IRModule({"main": mod["main"], COMPUTE: func.with_attr("global_symbol", COMPUTE)})
    args = [[[int(d) for d in a.shape], str(a.dtype)] for a in ms.arg_info.ArgInfo.from_prim_func(func)]
    return both, {"func_name": COMPUTE, "args": args}


def timed_entry(artifact: str) -> tuple[str, list] | None:
    """``(function, argument specs)`` to time in ``artifact`` where the builder made a separate
    ``compute`` entry; None: time the checked function itself."""
    path = _timed_path(artifact)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        timed = json.load(f)
    return timed["func_name"], [(tuple(shape), dtype) for shape, dtype in timed["args"]]


def remove_artifact(artifact: str) -> None:
    for path in (artifact, _timed_path(artifact)):
        if os.path.exists(path):
            os.remove(path)


def _timed_path(artifact: str) -> str:
    return artifact + ".timed.json"


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
