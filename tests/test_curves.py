"""Best-so-far arithmetic and the tuning clock, on hand-made histories with known answers."""

import numpy as np

from chameleon_tune.evaluation.curves import fraction_of, reached
from chameleon_tune.database import History
from chameleon_tune.measure.types import MeasureResult
from chameleon_tune.space import Knob, Space

SPACE = Space((Knob("a", tuple(range(10))),))


def _history(latencies, times=None):
    history = History(SPACE)
    for i, latency in enumerate(latencies):
        result = MeasureResult(latency, (latency,)) if latency else MeasureResult.failed("invalid", "x")
        started, finished = times[i] if times else (0.0, 0.0)
        history.append([i], result, started, finished)
    return history


def test_fraction_and_reached_at_levels():
    history = _history([None, 4.0, 2.0, 1.05, 3.0, 1.0])
    fraction = fraction_of(history.latencies, 1.0)
    np.testing.assert_allclose(fraction, [0.0, 0.25, 0.5, 1 / 1.05, 1 / 1.05, 1.0])
    clock = np.arange(1.0, 7.0) * 10
    assert reached(fraction, clock, 0.90) == (4, 40.0)
    assert reached(fraction, clock, 0.99) == (6, 60.0)
    assert reached(fraction, clock) == (6, 60.0)
    assert reached(fraction[:5], clock[:5], 0.99) == (None, None)
    assert reached(fraction_of(np.array([np.inf, np.inf]), 1.0), np.ones(2)) == (None, None)


def test_tuning_clock_skips_the_pause_before_a_resumed_run():
    # Batch 1 starts at 100 (results at 103, 105); batch 2 at 106 (108);
    # a resumed run's batch starts at 500 (502): its 394 s pause is not tuning.
    times = [(100, 103), (100, 105), (106, 108), (500, 502)]
    history = _history([3.0, 2.0, 1.0, 0.5], times)
    np.testing.assert_allclose(history.tuning_clock(), [3, 5, 7, 9])
    assert len(_history([]).tuning_clock()) == 0


def test_median_cost_counts_never_as_infinite():
    from chameleon_tune.evaluation.curves import median_cost

    assert median_cost([3, 5, None]) == 5
    assert median_cost([3, None]) is None  # half missed: no typical cost
    assert median_cost([None, None, 2, 4, 6]) == 6
    assert median_cost([]) is None


def test_mean_fraction_is_the_area_under_the_curve():
    from chameleon_tune.evaluation.curves import mean_and_sem, mean_fraction

    assert mean_fraction([0.0, 0.5, 1.0, 1.0], 4) == 0.625
    assert mean_fraction([0.5, 1.0], 4) == 0.875  # a run that stopped early is held at its last value
    assert mean_fraction([0.5, 1.0, 1.0], 2) == 0.75  # only the budget counts
    assert mean_fraction([], 3) == 0.0
    mean, sem = mean_and_sem([0.5, 0.7, 0.9])
    np.testing.assert_allclose([mean, sem], [0.7, 0.2 / np.sqrt(3)])
    assert mean_and_sem([0.4]) == (0.4, 0.0)
