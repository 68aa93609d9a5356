"""Time built kernels one at a time, each checked against a reference first.

Runs are serialized on one long-lived process so timings do not disturb each
other; a kernel that crashes or hangs kills only that process, which restarts.
The :class:`Runner` interface is what the remote runner (``rpc_runner.py``)
implements too; both check and time a loaded module with :func:`check_and_time_module`.
"""

from __future__ import annotations

import abc
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from .builder import LayoutSplit, layout_split
from .interference import NOISY_CORES, CpuWatch, keep_quiet, rotated
from .types import RUN, TIMEOUT, WRONG, MeasureOptions, RunResult
from .worker import IsolatedWorker, RemoteError, WorkerCrash, WorkerTimeout

ArgSpec = tuple[tuple[int, ...], str]  # (shape, dtype) of each kernel argument

# Worker-side state: reference outputs by reference artifact path.
_REFERENCES: dict[str, list[np.ndarray]] = {}
_INPUT_SEED = 20200101
HIGHEST_PRIORITY = -20
_WATCH: CpuWatch | None = None


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

    def retime(self, artifacts: list[str], rounds: int) -> list[RunResult]:
        """Time a few finished kernels again, side by side, to pick the fastest for good.

        Here each is simply run once more; the local runner interleaves them in rounds.
        """
        return [self.run(artifact) for artifact in artifacts]

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


def run_once(module, dev, func_name: str, args: list[ArgSpec], split: LayoutSplit | None = None) -> list:
    """Call the kernel once on the fixed random inputs; the tensors hold its outputs.
    ``split`` (``builder.layout_split``): the kernel was built in two steps, call both."""
    import tvm

    tensors = [tvm.runtime.tensor(a, dev) for a in random_arguments(args)]
    if split is None:
        module[func_name](*tensors)
    else:
        split.call(module, dev, tensors)
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


def check_module(
    module, dev, func_name: str, args: list[ArgSpec], reference: list[np.ndarray] | None, rtol: float,
    split: LayoutSplit | None = None,
):
    """``(argument tensors, mismatch message or None)``: one call on the fixed inputs, checked."""
    tensors = run_once(module, dev, func_name, args, split)
    if reference is not None:
        return tensors, first_mismatch([t.numpy() for t in tensors], reference, rtol)
    return tensors, None


def timed_call(dev, func_name: str, args: list[ArgSpec], checked: list, split: LayoutSplit | None) -> tuple[str, list]:
    """``(function, tensors)`` to time: the checked call's, or a split kernel's ``compute``
    with fresh tensors of its own shapes."""
    import tvm

    if split is None:
        return func_name, checked
    name, specs = split.timed(args)
    return name, [tvm.runtime.tensor(a, dev) for a in random_arguments(specs)]


def time_module(module, dev, func_name: str, tensors, options: MeasureOptions, repeat: int | None = None) -> tuple[float, ...]:
    """Seconds per call, one sample per repeat.

    Warm (the default): a repeat is ``options.number`` calls or more (see ``min_repeat_ms``),
    the arguments staying in cache from one call to the next. With ``enable_cpu_cache_flush``,
    every sample is one call right after all arguments but the first (the input) were flushed
    from the caches, and there are ``number`` times as many of them.
    """
    repeat = options.repeat if repeat is None else repeat
    flush = options.enable_cpu_cache_flush
    evaluator = module.time_evaluator(
        func_name,
        dev,
        number=1 if flush else options.number,
        repeat=repeat * options.number if flush else repeat,
        min_repeat_ms=0 if flush else options.min_repeat_ms,
        # TVM flushes before each repeat, not each call: hence one call per repeat.
        f_preproc="cache_flush_cpu_non_first_arg" if flush else "",
    )
    return tuple(float(s) for s in evaluator(*tensors).results)


def check_and_time_module(
    module, dev, func_name: str, args: list[ArgSpec], reference: list[np.ndarray] | None, options: MeasureOptions,
    split: LayoutSplit | None = None,
) -> tuple[tuple[float, ...], str | None]:
    """``(run_secs, mismatch message or None)`` of a loaded module, local or remote; ``split``:
    how a kernel built in two steps is called (``builder.layout_split``)."""
    tensors, mismatch = check_module(module, dev, func_name, args, reference, options.rtol, split)
    if mismatch is not None:
        return (), mismatch
    return time_module(module, dev, *timed_call(dev, func_name, args, tensors, split), options), None


def compute_reference(path: str, func_name: str, args: list[ArgSpec]) -> None:
    """Worker side: run the reference kernel once and keep its outputs."""
    import tvm

    tensors = run_once(tvm.runtime.load_module(path), tvm.cpu(), func_name, args)
    _REFERENCES[path] = [t.numpy() for t in tensors]


def _watch() -> CpuWatch:
    """Worker side: one watch over the cores this worker may run on."""
    global _WATCH
    if _WATCH is None:
        _WATCH = CpuWatch()
    return _WATCH


def check_and_time(
    path: str, func_name: str, args: list[ArgSpec], reference: str | None, options: MeasureOptions
) -> tuple[tuple[float, ...], str | None, float | None]:
    """Worker side: ``(run_secs, mismatch message or None, interference in cores)``."""
    import tvm

    expected = _REFERENCES[reference] if reference is not None else None
    module, dev, split = tvm.runtime.load_module(path), tvm.cpu(), layout_split(path)
    tensors, mismatch = check_module(module, dev, func_name, args, expected, options.rtol, split)
    if mismatch is not None:
        return (), mismatch, None
    name, tensors = timed_call(dev, func_name, args, tensors, split)
    watch = _watch()
    watch.start()
    secs = time_module(module, dev, name, tensors, options)
    return secs, None, watch.stop().cores


def wait_for_quiet(timeout_s: float, window_s: float = 0.2) -> bool:
    """Worker side: wait until other work leaves the kernel's cores alone for one window."""
    watch, deadline = _watch(), time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if not watch.measure(window_s).noisy:
            return True
    return False


def retime_side_by_side(
    paths: list[str], func_name: str, args: list[ArgSpec], reference: str | None, options: MeasureOptions, rounds: int
) -> list[tuple[tuple[float, ...], str | None, tuple[float, ...]]]:
    """Worker side: time several kernels in interleaved rounds, one sample each per round.

    Whatever disturbs the machine meanwhile falls on all of them alike, so their
    order is right even when their absolute times are not. Per kernel:
    ``(samples, mismatch or None, interference of each sample)``.
    """
    import tvm

    expected = _REFERENCES[reference] if reference is not None else None
    dev, watch = tvm.cpu(), _watch()
    loaded = []
    for path in paths:
        module, split = tvm.runtime.load_module(path), layout_split(path)
        tensors, mismatch = check_module(module, dev, func_name, args, expected, options.rtol, split)
        loaded.append((module, *timed_call(dev, func_name, args, tensors, split), mismatch))
    samples: list[list[float]] = [[] for _ in paths]
    seen: list[list[float]] = [[] for _ in paths]
    for r in range(rounds):
        # One window per round: a single kernel's sample is too short for the tick-based accounting.
        watch.start()
        timed_now = [k for k in rotated(range(len(paths)), r) if loaded[k][3] is None]
        for k in timed_now:
            module, name, tensors, _mismatch = loaded[k]
            samples[k].extend(time_module(module, dev, name, tensors, options, repeat=1))
        cores = watch.stop().cores
        for k in timed_now:
            seen[k].append(cores)
    return [(tuple(s), mismatch, tuple(i)) for s, i, (*_loaded, mismatch) in zip(samples, seen, loaded)]


class LocalRunner(Runner):
    """Runs kernels on this machine's CPU in one isolated, restartable process.

    The process is pinned to ``cpus`` when given (TVM then leaves its threads
    where the OS puts them). Every timing is watched for other work on those
    cores (:mod:`.interference`); a disturbed one is redone once the machine is
    quiet again, up to ``options.noisy_retries`` times, and kept flagged as
    noisy if it never is. While the machine stays busy, no more time is spent
    waiting: trials are then flagged straight away.
    """

    #: After a wait for quiet failed, timings are not redone for this long.
    BUSY_BACKOFF_S = 30.0

    def __init__(
        self, options: MeasureOptions = MeasureOptions(), num_threads: int | None = None, cpus: set[int] | None = None
    ) -> None:
        self.options = options
        self.cpus = set(cpus) if cpus else None
        # TVM's thread pool defaults to half the logical CPUs (it assumes hyper-threading):
        # one thread on a 2-vCPU machine. Kernels run with the target's core count instead.
        env = {"TVM_NUM_THREADS": str(num_threads)} if num_threads else {}
        if self.cpus:
            env["TVM_BIND_THREADS"] = "0"  # else TVM re-binds its threads to cores 0..n-1
        nice = HIGHEST_PRIORITY if options.priority else None
        self._worker = IsolatedWorker(preload=("tvm",), env=env, cpus=self.cpus, nice=nice)
        self._task: tuple | None = None
        self._primed_generation = -1
        self._busy_until = 0.0

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

    @property
    def task(self) -> tuple:
        """``(reference, args, func_name)`` of the prepared task."""
        if self._task is None:
            raise RuntimeError("Runner.prepare() must be called before run()")
        return self._task

    def _call(self, fn, *args, timeout: float):
        """``(value, None)``, or ``(None, failed RunResult)`` when the worker could not deliver."""
        start = time.perf_counter()
        try:
            self._prime()
        except (RemoteError, WorkerCrash, WorkerTimeout) as exc:
            return None, RunResult((), RUN, f"reference implementation failed: {exc}", time.perf_counter() - start)
        start = time.perf_counter()
        try:
            return self._worker.call(fn, *args, timeout=timeout), None
        except WorkerTimeout as exc:
            return None, RunResult((), TIMEOUT, f"run timed out: {exc}", time.perf_counter() - start)
        except (RemoteError, WorkerCrash) as exc:
            return None, RunResult((), RUN, str(exc), time.perf_counter() - start)

    def _attempt(self, artifact: str) -> RunResult:
        reference, args, func_name = self.task
        start = time.perf_counter()
        value, failed = self._call(
            check_and_time, artifact, func_name, args, reference, self.options, timeout=self.options.run_timeout_s
        )
        if failed is not None:
            return failed
        secs, mismatch, interference = value
        if mismatch is not None:
            return RunResult((), WRONG, mismatch, time.perf_counter() - start)
        return RunResult(secs, None, None, time.perf_counter() - start, interference, interference >= NOISY_CORES)

    def _quiet_again(self) -> bool:
        """Wait (a bounded time) for other work to leave; remember when it does not."""
        if time.monotonic() < self._busy_until:
            return False
        wait = self.options.quiet_wait_s
        value, failed = self._call(wait_for_quiet, wait, timeout=wait + 30.0)
        if failed is None and value:
            return True
        self._busy_until = time.monotonic() + self.BUSY_BACKOFF_S
        return False

    def run(self, artifact: str) -> RunResult:
        result = self._attempt(artifact)
        run_s, retries = result.run_s, 0
        while result.noisy and retries < self.options.noisy_retries and self._quiet_again():
            retries += 1
            again = self._attempt(artifact)
            run_s += again.run_s
            if again.error is not None:
                break  # it ran once, checked and timed: a flaky second run does not undo that
            if not again.noisy or min(again.run_secs) < min(result.run_secs):
                result = again
        return replace(result, run_s=run_s)

    def retime(self, artifacts: list[str], rounds: int) -> list[RunResult]:
        reference, args, func_name = self.task
        start = time.perf_counter()
        timeout = self.options.run_timeout_s * (1 + rounds) * max(1, len(artifacts))
        value, failed = self._call(
            retime_side_by_side, artifacts, func_name, args, reference, self.options, rounds, timeout=timeout
        )
        if failed is not None:
            return [failed] * len(artifacts)
        each_s = (time.perf_counter() - start) / max(1, len(artifacts))
        results = []
        for samples, mismatch, interference in value:
            if mismatch is not None:
                results.append(RunResult((), WRONG, mismatch, each_s))
            else:
                kept, seen, noisy = keep_quiet(samples, interference)
                results.append(RunResult(kept, None, None, each_s, seen, noisy))
        return results

    def close(self) -> None:
        self._worker.close()
