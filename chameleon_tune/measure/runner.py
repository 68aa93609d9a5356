"""Time built kernels one at a time, each checked against a reference first.

Runs are serialized on one long-lived process so timings do not disturb each
other; a kernel that crashes or hangs kills only that process, which restarts.
The :class:`Runner` interface is what the remote runner (``rpc_runner.py``)
implements too; both check and time a loaded module with :func:`check_and_time_module`.
"""

from __future__ import annotations

import abc
import time
from typing import Callable

import numpy as np

from .types import RUN, TIMEOUT, WRONG, MeasureOptions, RunResult
from .worker import IsolatedWorker, RemoteError, WorkerCrash, WorkerTimeout

ArgSpec = tuple[tuple[int, ...], str]  # (shape, dtype) of each kernel argument

# Worker-side state: reference outputs by reference artifact path.
_REFERENCES: dict[str, list[np.ndarray]] = {}
_INPUT_SEED = 20200101


class Runner(abc.ABC):
    """Times built kernels; failures are results, never exceptions."""

    @abc.abstractmethod
    def prepare(self, reference: str | None, args: list[ArgSpec], func_name: str = "main") -> None:
        """Set the task: argument shapes and the reference artifact outputs are checked against."""

    @abc.abstractmethod
    def run(self, artifact: str) -> RunResult:
        """Check and time one artifact."""

    def run_all(self, artifacts: list[str], on_done: Callable[[int, RunResult], None]) -> None:
        """Check and time every artifact, calling ``on_done(index, result)`` in this thread as each finishes.

        One at a time here; a runner over several devices runs them in parallel.
        """
        for i, artifact in enumerate(artifacts):
            on_done(i, self.run(artifact))

    def close(self) -> None:
        """Release processes or connections."""


def random_arguments(args: list[ArgSpec]) -> list[np.ndarray]:
    """The same random inputs in every process, so outputs can be compared."""
    rng = np.random.default_rng(_INPUT_SEED)
    arrays = []
    for shape, dtype in args:
        if np.issubdtype(np.dtype(dtype), np.floating):
            arrays.append(rng.uniform(-1.0, 1.0, size=shape).astype(dtype))
        else:
            arrays.append(rng.integers(0, 8, size=shape).astype(dtype))
    return arrays


def run_once(module, dev, func_name: str, args: list[ArgSpec]) -> list:
    """Call the kernel once on the fixed random inputs; the tensors hold its outputs."""
    import tvm

    tensors = [tvm.runtime.tensor(a, dev) for a in random_arguments(args)]
    module[func_name](*tensors)
    return tensors


def first_mismatch(outputs: list[np.ndarray], reference: list[np.ndarray], rtol: float) -> str | None:
    """Why ``outputs`` differ from ``reference`` beyond the tolerance, or None."""
    for i, (got, want) in enumerate(zip(outputs, reference)):
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        tolerance = rtol * max(scale, 1.0)
        error = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
        if not error <= tolerance:
            return f"argument {i} differs from the reference: max abs error {error:.3g} > {tolerance:.3g}"
    return None


def check_and_time_module(
    module, dev, func_name: str, args: list[ArgSpec], reference: list[np.ndarray] | None, options: MeasureOptions
) -> tuple[tuple[float, ...], str | None]:
    """``(run_secs, mismatch message or None)`` of a loaded module, local or remote."""
    tensors = run_once(module, dev, func_name, args)
    if reference is not None:
        mismatch = first_mismatch([t.numpy() for t in tensors], reference, options.rtol)
        if mismatch is not None:
            return (), mismatch
    evaluator = module.time_evaluator(
        func_name,
        dev,
        number=options.number,
        repeat=options.repeat,
        min_repeat_ms=options.min_repeat_ms,
        f_preproc="cache_flush_cpu_non_first_arg" if options.enable_cpu_cache_flush else "",
    )
    return tuple(float(s) for s in evaluator(*tensors).results), None


def compute_reference(path: str, func_name: str, args: list[ArgSpec]) -> None:
    """Worker side: run the reference kernel once and keep its outputs."""
    import tvm

    tensors = run_once(tvm.runtime.load_module(path), tvm.cpu(), func_name, args)
    _REFERENCES[path] = [t.numpy() for t in tensors]


def check_and_time(
    path: str, func_name: str, args: list[ArgSpec], reference: str | None, options: MeasureOptions
) -> tuple[tuple[float, ...], str | None]:
    """Worker side: ``(run_secs, mismatch message or None)``."""
    import tvm

    expected = _REFERENCES[reference] if reference is not None else None
    return check_and_time_module(tvm.runtime.load_module(path), tvm.cpu(), func_name, args, expected, options)


class LocalRunner(Runner):
    """Runs kernels on this machine's CPU in one isolated, restartable process."""

    def __init__(self, options: MeasureOptions = MeasureOptions(), num_threads: int | None = None) -> None:
        self.options = options
        # TVM's thread pool defaults to half the logical CPUs (it assumes hyper-threading):
        # one thread on a 2-vCPU machine. Kernels run with the target's core count instead.
        env = {"TVM_NUM_THREADS": str(num_threads)} if num_threads else {}
        self._worker = IsolatedWorker(preload=("tvm",), env=env)
        self._task: tuple | None = None
        self._primed_generation = -1

    def prepare(self, reference: str | None, args: list[ArgSpec], func_name: str = "main") -> None:
        self._task = (reference, [(tuple(s), str(d)) for s, d in args], func_name)
        self._primed_generation = -1

    def _prime(self) -> None:
        """(Re)compute the reference after a (re)start of the worker: its memory is gone."""
        self._worker.start()
        reference, args, func_name = self._task
        if reference is not None and self._primed_generation != self._worker.generation:
            # The untuned reference can be slow: give it a generous limit.
            self._worker.call(compute_reference, reference, func_name, args, timeout=max(300.0, self.options.run_timeout_s))
        self._primed_generation = self._worker.generation

    def run(self, artifact: str) -> RunResult:
        if self._task is None:
            raise RuntimeError("Runner.prepare() must be called before run()")
        reference, args, func_name = self._task
        start = time.perf_counter()
        try:
            self._prime()
        except (RemoteError, WorkerCrash, WorkerTimeout) as exc:
            return RunResult((), RUN, f"reference implementation failed: {exc}", time.perf_counter() - start)
        start = time.perf_counter()
        try:
            secs, mismatch = self._worker.call(
                check_and_time, artifact, func_name, args, reference, self.options, timeout=self.options.run_timeout_s
            )
        except WorkerTimeout as exc:
            return RunResult((), TIMEOUT, f"run timed out: {exc}", time.perf_counter() - start)
        except (RemoteError, WorkerCrash) as exc:
            return RunResult((), RUN, str(exc), time.perf_counter() - start)
        if mismatch is not None:
            return RunResult((), WRONG, mismatch, time.perf_counter() - start)
        return RunResult(secs, None, None, time.perf_counter() - start)

    def close(self) -> None:
        self._worker.close()
