"""Measurement that survives anything: worker isolation, builder and runner failures."""

import os
import signal
import time

import numpy as np
import pytest

from chameleon_tune.measure.types import MeasureOptions
from chameleon_tune.measure.worker import IsolatedWorker, RemoteError, WorkerCrash, WorkerTimeout, close_all
from failing_kernels import failing_module


def test_worker_survives_crash_timeout_and_exceptions():
    worker = IsolatedWorker()
    try:
        assert worker.call(pow, 2, 10, timeout=30) == 1024
        with pytest.raises(RemoteError, match="ZeroDivisionError"):
            worker.call(divmod, 1, 0, timeout=30)
        with pytest.raises(WorkerCrash, match="SIGABRT"):
            worker.call(os.abort, timeout=30)
        start = time.perf_counter()
        with pytest.raises(WorkerTimeout):
            worker.call(time.sleep, 60, timeout=1)
        assert time.perf_counter() - start < 20
        assert worker.call(pow, 3, 3, timeout=30) == 27  # restarted transparently
        assert worker.generation == 3
    finally:
        worker.close()


def test_close_all_lets_idle_workers_exit_and_kills_a_busy_one_after_the_grace():
    idle, busy = IsolatedWorker(), IsolatedWorker()
    for worker in (idle, busy):
        worker.start()
    processes = (idle._proc, busy._proc)
    busy._conn.send((time.sleep, (60,)))  # it would read the request to exit only a minute later
    start = time.perf_counter()
    close_all([idle, busy], grace_s=1.0)
    assert time.perf_counter() - start < 10
    assert processes[0].exitcode == 0 and processes[1].exitcode == -signal.SIGKILL
    assert idle._proc is None and busy._proc is None


@pytest.fixture(scope="module")
def measurer(matmul_space):
    from chameleon_tune.measure.tvm_measurer import TVMMeasurer

    # Long enough for a two-thread kernel on a loaded 2-core machine; the hang test waits it out.
    m = TVMMeasurer(matmul_space, MeasureOptions(run_timeout_s=8.0), flops=2 * 64**3)
    yield m
    m.close()


def test_builder_reports_compile_errors(measurer):
    good = measurer.tvm_space.schedule(measurer.space.sample(np.random.default_rng(0), 1)[0])[0].mod
    results = measurer.builder.build([failing_module("build"), good])
    assert results[0].artifact is None and "free" in results[0].error_msg
    assert results[1].error_msg is None and os.path.exists(results[1].artifact)


@pytest.mark.parametrize(
    "kind, error, message",
    [("crash", "run", "SIGABRT"), ("hang", "timeout", "timed out"), ("wrong", "wrong_result", "differs")],
)
def test_runner_turns_failures_into_results(measurer, kind, error, message):
    measurer.measure(measurer.space.sample(np.random.default_rng(1), 1))  # prepares the reference
    (built,) = measurer.builder.build([failing_module(kind)])
    assert built.error_msg is None, built.error_msg
    result = measurer.runner.run(built.artifact)
    assert result.error == error and message in result.error_msg
    # and the runner still works afterwards
    (ok,) = measurer.measure(measurer.space.sample(np.random.default_rng(2), 1))
    assert ok.valid and ok.latency_s > 0


def test_valid_kernels_are_timed_and_checked(measurer):
    results = measurer.measure(measurer.space.sample(np.random.default_rng(5), 4))
    assert all(r.valid for r in results), [r.error_msg for r in results]
    for r in results:
        assert len(r.run_secs) == measurer.options.repeat
        assert r.latency_s == min(r.run_secs)  # the fastest repeat: interference only ever slows
        assert r.build_s > 0 and r.run_s > 0


def test_cold_cache_timing_takes_one_flushed_call_per_sample(measurer):
    import tvm

    from chameleon_tune.measure.runner import random_arguments, time_module

    sch = measurer.tvm_space.schedule(measurer.space.sample(np.random.default_rng(5), 1)[0])[0]
    (built,) = measurer.builder.build([sch.mod])
    module, dev = tvm.runtime.load_module(built.artifact), tvm.cpu()
    args = [(tuple(int(d) for d in a.shape), str(a.dtype)) for a in measurer.args_info]
    tensors = [tvm.runtime.tensor(a, dev) for a in random_arguments(args)]
    options = MeasureOptions(number=2, repeat=3, min_repeat_ms=100, enable_cpu_cache_flush=True)
    samples = time_module(module, dev, "main", tensors, options)
    assert len(samples) == options.number * options.repeat  # one call per sample: min_repeat_ms unused
    assert all(0 < s < 0.5 for s in samples)


def test_kernels_with_prepacked_weights_are_checked_through_both_steps_and_time_compute(measurer):
    """A kernel whose weights RewriteLayout re-laid out is built as the model runs it: a
    ``prepack`` step, then ``compute`` on the re-laid-out weights (what is timed)."""
    import tvm
    from tvm import te

    from chameleon_tune.measure.builder import COMPUTE, layout_split
    from chameleon_tune.measure.tvm_measurer import TVMMeasurer
    from chameleon_tune.tvm_space import TVMSpace

    A, B, bias = te.placeholder((64, 64), name="A"), te.placeholder((64, 64), name="B"), te.placeholder((64,), name="bias")
    k = te.reduce_axis((0, 64), "k")
    C = te.compute((64, 64), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    D = te.compute((64, 64), lambda i, j: te.max(C[i, j] + bias[j], 0.0), name="D")
    func = te.create_prim_func([A, B, bias, D]).with_attr("layout_free_buffers", [1, 2])
    space = TVMSpace(tvm.IRModule({"main": func}), measurer.tvm_space.target)
    prepacked = TVMMeasurer(space, measurer.options, workers=measurer.workers)
    configs = space.space.sample(np.random.default_rng(0), 3)
    built = prepacked.builder.build([space.schedule(c)[0].mod for c in configs])
    splits = [layout_split(b.artifact) for b in built]
    assert all(s is not None and s.calls[-1][0] == COMPUTE for s in splits)
    # compute reads the re-laid-out weights (buffers after the 4 own arguments), not B or bias
    assert all(set(s.calls[-1][1]) & {1, 2} == set() for s in splits)
    results = prepacked.measure(configs)  # valid only if the output matches the unscheduled kernel's
    assert all(r.valid for r in results), [r.error_msg for r in results]
    measurer.prepare()  # the shared runner back on the module fixture's task
