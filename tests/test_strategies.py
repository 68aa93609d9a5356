"""One suite over every registered strategy: budget, no repeats, reproducibility."""

import numpy as np
import pytest

from chameleon_tune.database import History
from chameleon_tune.measure.types import MeasureOptions
from chameleon_tune.space import Space
from chameleon_tune.search.base import TaskContext, make_strategy, strategy_names
from chameleon_tune.tuner import tune
from conftest import SyntheticMeasurer

NEEDS_TVM = {"evolutionary"}
SPACE_ONLY = [name for name in strategy_names() if name not in NEEDS_TVM]
DETERMINISTIC = {"exhaustive"}


def _run(name, seed, trials=48, batch_size=16, measurer=None):
    measurer = measurer or SyntheticMeasurer()
    history = History(measurer.space)
    strategy = make_strategy(name, TaskContext(measurer.space, history, seed=seed))
    result = tune(measurer, strategy, history, trials=trials, batch_size=batch_size)
    return result, history


def test_registry_names_the_baselines():
    assert {"random", "sa", "evolutionary"} <= set(strategy_names())
    with pytest.raises(KeyError, match="choose from"):
        make_strategy("nope", None)


@pytest.mark.parametrize("name", SPACE_ONLY)
def test_budget_is_spent_exactly_without_repeats(name):
    result, history = _run(name, seed=0)
    assert result.trials == 48 == len(history)
    assert len({t.config for t in history.trials}) == 48
    assert result.valid + sum(result.errors.values()) == 48


@pytest.mark.parametrize("name", SPACE_ONLY)
def test_same_seed_same_result(name):
    _, a = _run(name, seed=3)
    _, b = _run(name, seed=3)
    _, c = _run(name, seed=4)
    assert [t.config for t in a.trials] == [t.config for t in b.trials]
    if name not in DETERMINISTIC:
        assert [t.config for t in a.trials] != [t.config for t in c.trials]


def _restricted_run(name, dims, share, trials):
    """A synthetic space of which only a random ``share`` exists (plus the optimum)."""
    measurer = SyntheticMeasurer(dims=dims, optimum=(1,) * len(dims))
    grid = np.array(list(np.ndindex(*dims)))
    keep = np.random.default_rng(7).random(len(grid)) < share
    keep[np.ravel_multi_index((1,) * len(dims), dims)] = True
    measurer.space = measurer.space.restricted(grid[keep])
    return _run(name, seed=0, trials=trials, measurer=measurer), measurer


@pytest.mark.parametrize("name", strategy_names())
def test_restricted_space_absent_configurations_are_never_proposed_nor_charged(name):
    if name in NEEDS_TVM:
        pytest.skip("drives MetaSchedule, whose design spaces carry no up-front restrictions")
    (result, history), measurer = _restricted_run(name, dims=(12, 10, 8, 6, 5), share=0.3, trials=48)
    assert measurer.space.valid_mask(history.configs).all()
    assert result.trials == 48 == measurer.calls
    # a space of 7 configurations is spent in 7 evaluations, none charged outside it
    (result, history), measurer = _restricted_run(name, dims=(4, 4, 4), share=0.08, trials=50)
    assert measurer.space.valid_mask(history.configs).all()
    assert result.trials == len(measurer.space.valid) == measurer.calls == 7


def test_model_based_search_beats_random_on_a_known_landscape():
    measurer = SyntheticMeasurer()
    best = {}
    for name in ("random", "sa"):
        runs = [_run(name, seed, trials=96, batch_size=16)[0].best_latency_s for seed in range(3)]
        best[name] = np.median(runs)
    assert best["sa"] < best["random"]
    assert best["sa"] <= 3 * measurer.latency(measurer.optimum)  # within 2 squared steps of the optimum


def test_exhaustive_measures_each_program_once_and_finds_the_optimum():
    measurer = SyntheticMeasurer(dims=(3, 4, 2), optimum=(2, 1, 1))
    # Knob 2 only matters when knob 1 is 3: 3 * (3 + 2) = 15 distinct programs.
    measurer.space = Space(measurer.space.knobs, conditions={2: (1, 3)})
    result, history = _run("exhaustive", seed=0, trials=100, batch_size=4, measurer=measurer)
    assert result.trials == 15 == len({t.config for t in history.trials})
    assert result.best_config == (2, 1, 0)


def test_exhausted_space_ends_tuning():
    measurer = SyntheticMeasurer(dims=(2, 3), optimum=(1, 1))
    result, history = _run("random", seed=0, trials=50, batch_size=4, measurer=measurer)
    assert result.trials == 6 == len(history)


@pytest.fixture(scope="module")
def real_measurer(matmul_space):
    """One set of compiler and runner processes for every strategy (each run has its own history)."""
    from chameleon_tune.measure.tvm_measurer import TVMMeasurer

    measurer = TVMMeasurer(matmul_space, MeasureOptions(number=1, repeat=2, min_repeat_ms=5), flops=2 * 64**3)
    yield measurer
    measurer.close()


@pytest.mark.parametrize("name", strategy_names())
def test_every_strategy_tunes_a_real_workload(name, matmul_space, real_measurer):
    history = History(matmul_space.space)
    strategy = make_strategy(name, TaskContext(matmul_space.space, history, seed=0, tvm_space=matmul_space))
    result = tune(real_measurer, strategy, history, trials=8, batch_size=4)
    assert result.trials == 8, result
    assert result.valid == 8, [t.result.error_msg for t in history.trials if not t.result.valid]
    assert len({t.config for t in history.trials}) == 8
    assert result.best_gflops > 0.1


def test_early_stopping_ends_a_stalled_run():
    measurer = SyntheticMeasurer()
    history = History(measurer.space)
    strategy = make_strategy("random", TaskContext(measurer.space, history, seed=0))
    result = tune(measurer, strategy, history, trials=500, batch_size=4, early_stopping=12)
    assert result.stopped_early and result.trials < 500
    latencies = history.latencies
    assert len(latencies) - 1 - int(np.argmin(latencies)) >= 12


def test_evolutionary_skips_candidates_outside_the_knob_space(matmul_space, monkeypatch):
    # MetaSchedule's mutators can reach programs that no configuration replays to;
    # here every other candidate is such a program.
    from chameleon_tune.search.evolutionary import EvolutionarySearch

    calls = []
    real = matmul_space.config_of

    def config_of(sch):
        calls.append(sch)
        if len(calls) % 2:
            raise ValueError("schedule does not come from one of this space's sketches")
        return real(sch)

    monkeypatch.setattr(matmul_space, "config_of", config_of)
    history = History(matmul_space.space)
    strategy = EvolutionarySearch(TaskContext(matmul_space.space, history, seed=0, tvm_space=matmul_space))
    proposed = strategy.propose(8)
    assert len(proposed) == 8 and len({tuple(c) for c in proposed}) == 8
    assert strategy.outside_space > 0


def test_local_refinement_measures_unmeasured_valid_neighbours_of_the_best():
    """``chameleon`` gives a quarter of each batch to one-knob neighbours of its best measured
    configurations: never a measured one, never one the task's check rejects."""
    measurer = SyntheticMeasurer()
    history = History(measurer.space)
    rejected = []

    def is_valid(config) -> bool:
        if config[1] == 4:  # the task's own check, like a TVM schedule that fails to apply
            rejected.append(tuple(config))
            return False
        return True

    strategy = make_strategy("chameleon", TaskContext(measurer.space, history, seed=0, is_valid=is_valid))
    tune(measurer, strategy, history, trials=32, batch_size=16)
    best = [t.config for t in history.top(16)]
    local = strategy.local_refinement(4, exclude=set())
    assert len(local) == 4
    for config in local:
        assert tuple(config) not in history.keys and config[1] != 4
        assert any(np.abs(np.asarray(config) - b).sum() == 1 for b in best)  # one knob, one step
    # the batch keeps room for them: the clusters' picks (adaptive sampling may pick fewer
    # than asked), then 4 from local refinement
    batch = strategy.propose(16)
    assert 4 < len(batch) <= 16 and len({tuple(c) for c in batch}) == len(batch)
    assert all(any(np.abs(c - b).sum() == 1 for b in best) for c in batch[-4:])
    # a strategy without the share (the paper's ablations) proposes none
    rl = make_strategy("rl", TaskContext(measurer.space, history, seed=0))
    assert rl.config.local_share == 0.0
