"""The tuning loop on real TVM measurements: records, resume, survival of failures."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from chameleon_tune.api import tune_workload
from chameleon_tune.database import History
from chameleon_tune.measure.types import MeasureOptions
from chameleon_tune.search.base import Strategy, TaskContext
from chameleon_tune.tuner import tune
from failing_kernels import failing_module


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def workers():
    """One set of compiler and runner processes for a test's runs (each set takes seconds to start)."""
    from chameleon_tune.measure.tvm_measurer import Workers
    from chameleon_tune.tvm_space import parse_target

    with Workers.open(parse_target("llvm"), MeasureOptions()) as shared:  # tune_workload's target and options
        yield shared


def test_tune_writes_records_that_stock_tvm_applies(tmp_path, workers):
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from chameleon_tune.tvm_space import host_target, load_tensor_intrinsics
    from chameleon_tune.workloads import get_workload

    work = tmp_path / "run"
    result = tune_workload("matmul.64", "sa", trials=10, batch_size=5, work_dir=str(work), seed=1, workers=workers)
    assert result.trials == 10 and result.valid == 10 and result.best_gflops > 0
    history = _lines(work / "history.jsonl")
    assert len(history) == 10 and len({tuple(t["config"]) for t in history}) == 10
    assert all(t["latency_s"] > 0 and t["finished"] >= t["started"] for t in history)

    # MetaSchedule's own database reads the records back and compiles the best.
    mod = tvm.IRModule({"main": get_workload("matmul.64").prim_func()})
    target = host_target(num_cores=2)
    load_tensor_intrinsics(target)
    database = ms.database.JSONDatabase(work_dir=str(work))
    assert len(database) == 10
    (best,) = database.get_top_k(database.commit_workload(mod), 1)
    assert np.mean([float(s) for s in best.run_secs]) == pytest.approx(
        min(np.mean(t["run_secs"]) for t in history), rel=1e-6
    )
    lib = tvm.compile(ms.tir_integration.compile_tir(database, mod, target).mod, target)
    a, b = np.random.rand(64, 64).astype("float32"), np.random.rand(64, 64).astype("float32")
    dev = tvm.cpu()
    c = tvm.runtime.tensor(np.zeros((64, 64), "float32"), dev)
    lib["main"](tvm.runtime.tensor(a, dev), tvm.runtime.tensor(b, dev), c)
    np.testing.assert_allclose(c.numpy(), a @ b, rtol=1e-4)

    # A rerun over the same work directory resumes: old trials count, none is re-measured. (It
    # opens the directory afresh, as a new process would; only the worker processes are reused.)
    again = tune_workload("matmul.64", "sa", trials=14, batch_size=5, work_dir=str(work), seed=1, workers=workers)
    assert again.resumed == 10 and again.trials == 14
    history = _lines(work / "history.jsonl")
    assert len(history) == 14 and len({tuple(t["config"]) for t in history}) == 14
    assert len(ms.database.JSONDatabase(work_dir=str(work))) == 14


class _ScriptedFirst(Strategy):
    """Proposes the given configurations first, then random ones."""

    def __init__(self, task, first):
        super().__init__(task)
        self.first = list(first)

    def propose(self, n):
        head, self.first = self.first[:n], self.first[n:]
        rest = self.random_unmeasured(n - len(head), exclude=set(self.space.keys(np.array(head))) if head else None)
        return np.concatenate([np.array(head, dtype=np.int64).reshape(-1, self.space.n_knobs), rest])


def test_tuning_survives_every_kind_of_failure(matmul_space, tmp_path, monkeypatch):
    from chameleon_tune.measure.tvm_measurer import TVMMeasurer

    space = matmul_space.space
    kinds = ["invalid", "build", "crash", "hang", "wrong"]
    bad = dict(zip(space.keys(space.sample(np.random.default_rng(9), len(kinds))), kinds))
    original = matmul_space.schedule

    def schedule(config):
        kind = bad.get(space.key(config))
        if kind == "invalid":
            return None, "rejected by the test"
        # The measurer only needs the scheduled module (a broken one cannot be a Schedule).
        return (SimpleNamespace(mod=failing_module(kind)), None) if kind else original(config)

    monkeypatch.setattr(matmul_space, "schedule", schedule)
    history = History(space, str(tmp_path / "history.jsonl"))
    measurer = TVMMeasurer(matmul_space, MeasureOptions(run_timeout_s=3.0), flops=2 * 64**3, database_dir=str(tmp_path))
    strategy = _ScriptedFirst(TaskContext(space, history, seed=0), [np.array(k) for k in bad])
    try:
        result = tune(measurer, strategy, history, trials=9, batch_size=6)
    finally:
        measurer.close()
    assert result.trials == 9
    assert result.errors == {"invalid": 1, "build": 1, "run": 1, "timeout": 1, "wrong_result": 1}
    assert result.valid == 4 and result.best_latency_s > 0
    by_config = {tuple(t["config"]): t for t in _lines(tmp_path / "history.jsonl")}
    expected = {"invalid": "invalid", "build": "build", "crash": "run", "hang": "timeout", "wrong": "wrong_result"}
    for key, kind in bad.items():
        assert by_config[key]["error"] == expected[kind] and by_config[key]["error_msg"]
