"""Shared fixtures: one TVM space per session (building one costs seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from chameleon_tune.measure.base import Measurer
from chameleon_tune.measure.types import MeasureResult
from chameleon_tune.space import Knob, Space


@pytest.fixture(scope="session")
def matmul_space():
    from chameleon_tune.tvm_space import TVMSpace, host_target
    from chameleon_tune.workloads import get_workload

    return TVMSpace(get_workload("matmul.64").prim_func(), host_target(num_cores=2))


class SyntheticMeasurer(Measurer):
    """A noiseless landscape with one known optimum: no TVM, deterministic.

    Latency grows with the squared distance of each knob from its optimum;
    configurations whose first knob is 0 are invalid.
    """

    def __init__(self, dims=(12, 10, 8, 6, 5), optimum=(7, 2, 5, 3, 1)) -> None:
        self.space = Space(tuple(Knob(f"k{i}", tuple(range(d))) for i, d in enumerate(dims)))
        self.optimum = np.array(optimum)
        self.flops = 1e9
        self.calls = 0

    def latency(self, config) -> float:
        return 1e-3 * (1.0 + float(np.sum((np.asarray(config) - self.optimum) ** 2)))

    def measure(self, configs, on_result=None):
        results = []
        for i, config in enumerate(configs):
            self.calls += 1
            if config[0] == 0:
                result = MeasureResult.failed("invalid", "knob k0 may not be 0")
            else:
                latency = self.latency(config)
                result = MeasureResult(latency, (latency,))
            results.append(result)
            if on_result is not None:
                on_result(i, result)
        return results


@pytest.fixture
def synthetic():
    return SyntheticMeasurer()


def chameleon_in_process(*args: str, env: dict | None = None):
    """``chameleon ARGS`` through the command line's entry point (``cli.main``) in this process:
    what a user's ``chameleon`` runs but for the interpreter start and the imports (TVM, PyTorch:
    seconds a run). For the runs whose outcome, not the process, is under test; returns a
    ``CompletedProcess`` as ``subprocess.run`` would, stdout and stderr captured. ``env`` is set
    for the run only; so is ``TVM_NUM_THREADS``, which tune-model pins."""
    import contextlib
    import io
    import os
    import subprocess

    from chameleon_tune.cli import main

    saved = {name: os.environ.get(name) for name in ("TVM_NUM_THREADS", *(env or {}))}
    os.environ.update(env or {})
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return subprocess.CompletedProcess(["chameleon", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def tuned_matmul(tmp_path_factory):
    """One real tuning run, ``chameleon tune --workload matmul.128 --strategy random --trials 6``
    (its trials also exported as a Kernel Tuner cache), that several tests read instead of each
    tuning from scratch: ``(finished run, work directory, exported cache)``. Nothing may write to it."""
    root = tmp_path_factory.mktemp("tuned_matmul")
    out = chameleon_in_process(
        "tune", "--workload", "matmul.128", "--strategy", "random", "--trials", "6", "--work-dir", str(root / "w"),
        "--seed", "2", "--export-cache", str(root / "c.json"), "--json",
    )  # fmt: skip
    return out, root / "w", root / "c.json"


@pytest.fixture(scope="session", autouse=True)
def record_store_of_the_session(tmp_path_factory):
    """tune-model appends to a record store under the user's cache directory by default: the
    tests' runs (and their subprocesses) use a fresh one, never the machine's."""
    import os

    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield os.environ["XDG_CACHE_HOME"]
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before
