"""Program features (issue 13, item 1): what a scheduled program does, the same in every task,
kept with each trial, and a cost model on them that ranks another task's programs."""

import json

import numpy as np
import pytest

from chameleon_tune.cost_model import ProgramCostModel
from chameleon_tune.database import History
from chameleon_tune.measure import program_features
from chameleon_tune.measure.types import MeasureResult
from chameleon_tune.search.base import TaskContext
from chameleon_tune.search.model_based import ModelBasedStrategy
from chameleon_tune.search.annealing import annealing_for
from chameleon_tune.space import Knob, Space


def test_features_are_identical_for_identical_programs_and_differ_across_tasks(matmul_space):
    from chameleon_tune.tvm_space import TVMSpace
    from chameleon_tune.workloads import get_workload

    configs = matmul_space.space.sample(np.random.default_rng(3), 3)
    first, again = matmul_space.program_features(configs), matmul_space.program_features(configs)
    assert first.shape == (3, program_features.WIDTH) and not np.isnan(first).any()
    assert np.array_equal(first, again)
    assert not np.array_equal(first[0], first[1])  # other schedules, other programs
    other = TVMSpace(get_workload("matmul.128").prim_func(), matmul_space.target)
    same_choices = other.program_features(other.space.sample(np.random.default_rng(3), 3))
    assert not np.array_equal(first, same_choices)


def test_the_builder_describes_what_it_compiles_as_the_search_does(matmul_space):
    from chameleon_tune.measure.builder import LocalBuilder

    configs = matmul_space.space.sample(np.random.default_rng(4), 2)
    builder = LocalBuilder(matmul_space.target, n_workers=1)
    try:
        built = builder.build([matmul_space.schedule(c)[0].mod for c in configs], describe=True)
        plain = builder.build([matmul_space.schedule(configs[0])[0].mod])
    finally:
        builder.close()
    assert np.array_equal(np.array([b.features for b in built]), matmul_space.program_features(configs))
    assert plain[0].features is None and plain[0].error_msg is None  # not asked: not described


def test_a_trial_keeps_its_features_in_the_history_and_in_the_record_store(tmp_path, capsys):
    from chameleon_tune.model.record_store import RecordStore

    space = Space((Knob("a", (1, 2, 4)), Knob("b", (0, 1))))
    features = tuple(float(v) for v in np.linspace(0, 1, program_features.WIDTH))
    history = History(space, str(tmp_path / "history.jsonl"))
    history.append((1, 0), MeasureResult(2e-3, (2e-3,), features=features), 0.0, 1.0)
    history.append((2, 1), MeasureResult.failed("build", "no"), 0.0, 1.0)
    reread = History(space, str(tmp_path / "history.jsonl"))
    assert reread.trials[0].result.features == features
    assert np.isnan(reread.program_features[1]).all() and np.array_equal(reread.program_features[0], features)

    store = RecordStore(str(tmp_path / "store"), "llvm-x-2-warm-0")
    writer = store.writer("hash", "task", space, str(tmp_path / "run"))
    writer.append((1, 0), 2e-3, features)
    writer.append((2, 1), None)
    with open(writer.path, "a") as f:
        f.write(json.dumps({"config": [0, 1], "latency_s": 1e-3, "features": [0.0] * 3}) + "\n")  # damaged
    (stored,) = store.load()
    assert "skipped 1 unreadable line" in capsys.readouterr().err
    assert stored.features.shape == (2, program_features.WIDTH)
    assert np.array_equal(stored.features[0], features) and np.isnan(stored.features[1]).all()
    assert np.array_equal(stored.latest(1).features, stored.features[1:], equal_nan=True)


def _programs(rng, n, shift):
    """Synthetic programs of one task: throughput rises with feature 0 in every task; the
    other features sit elsewhere in each (``shift``)."""
    features = rng.random((n, program_features.WIDTH)) + shift
    features[:, 0] -= shift
    latencies = 1e-3 / (0.1 + features[:, 0]) * (1 + shift)
    return features, latencies


def test_a_program_cost_model_ranks_a_task_it_never_measured():
    rng = np.random.default_rng(0)
    tasks = [_programs(rng, 60, shift) for shift in (0.0, 0.5, 1.0)]
    tasks[0][0][:5] = np.nan  # trials without features are left out, not learned as zeros
    model = ProgramCostModel(seed=0)
    assert not model.trained and not model.predict(tasks[0][0][5:]).any()
    model.fit(tasks)
    features, latencies = _programs(rng, 40, 2.0)
    rank = np.corrcoef(np.argsort(np.argsort(model.predict(features))), np.argsort(np.argsort(-latencies)))[0, 1]
    assert rank > 0.8


class _Described:
    """A knob space whose programs' feature 0 is the throughput (knob ``a``'s choice)."""

    def __init__(self):
        self.space = Space((Knob("a", tuple(range(40))), Knob("b", tuple(range(40)))))
        self.described = 0

    def features(self, configs):
        self.described += len(configs)
        rows = np.zeros((len(configs), program_features.WIDTH))
        rows[:, 0] = configs[:, 0] / 40
        rows[configs[:, 1] == 39] = np.nan  # does not schedule
        return rows


def _strategy(described, history, programs, related=None):
    task = TaskContext(
        described.space, history, seed=0, program_features=described.features,
        related_programs=(lambda: programs) if programs is not None else None, related=related,
    )  # fmt: skip
    return ModelBasedStrategy(task, annealing_for(task))


def test_a_task_first_batch_comes_from_the_program_model_where_nothing_else_can_pick_it():
    described = _Described()
    history = History(described.space)
    rng = np.random.default_rng(1)
    programs = [_programs(rng, 80, 0.3)]
    batch = _strategy(described, history, programs).propose(8)
    assert described.described > 0 and len(batch) == 8
    assert batch[:, 0].min() >= 20  # the better half by the program model (feature 0)
    assert not (batch[:, 1] == 39).any()  # never a candidate that does not schedule

    cold = History(described.space)
    cold_batch = _strategy(_Described(), cold, None).propose(8)
    assert cold_batch[:, 0].min() < 20  # without other tasks' programs: a random first batch

    # a task with the same knobs measured: the shared knob model picks, as before
    same_knobs = [(described.space, described.space.sample(rng, 20), np.linspace(1e-3, 2e-3, 20))]
    before = described.described
    _strategy(described, History(described.space), programs, related=lambda: same_knobs).propose(8)
    assert described.described == before

    # once the task has measured its own, its own model picks
    for config in described.space.sample(rng, 8):
        history.append(config, MeasureResult(1e-3, (1e-3,)), 0.0, 0.0)
    strategy = _strategy(described, history, programs)
    strategy.update(history.configs, [])
    strategy.propose(8)
    assert described.described == before
