"""The gradient-based task scheduler on fake tasks: no TVM, no measurements."""

import numpy as np
import pytest

from chameleon_tune.task_scheduler import GradientScheduler, SchedulerConfig


def simulate(scheduler, latency, budget, round_trials, size=None):
    """Spend ``budget`` trials; ``latency(task, trial)`` is what trial number ``trial`` of a task measures."""
    n = len(scheduler.weights)
    measured = [[] for _ in range(n)]
    order = []
    finished = set()
    while sum(map(len, measured)) < budget:
        curves = [np.minimum.accumulate(m) if m else [] for m in measured]
        task = scheduler.next_task(curves, finished)
        if task is None:
            break
        order.append(task)
        for _ in range(min(round_trials, budget - sum(map(len, measured)))):
            measured[task].append(latency(task, len(measured[task])))
        if size is not None and len(measured[task]) >= size[task]:
            finished.add(task)
    return [len(m) for m in measured], order


def decaying(scales):
    """Task i's trial t finds scales[i] * (1 + 4 / (1 + t)): fast early gains, then a floor."""
    return lambda task, t: scales[task] * (1.0 + 4.0 / (1.0 + t))


def test_every_task_gets_a_first_round_before_any_second():
    scheduler = GradientScheduler([1, 1, 1, 1], SchedulerConfig(round_trials=4))
    _, order = simulate(scheduler, decaying([1e-3, 2e-3, 3e-3, 4e-3]), budget=40, round_trials=4)
    assert order[:4] == [0, 1, 2, 3]


def test_budget_follows_share_of_end_to_end_latency_not_an_equal_split():
    # task 0 is slow and called 3 times per run; task 2 is a cheap elementwise op
    scheduler = GradientScheduler([3, 1, 1], SchedulerConfig(round_trials=4))
    spent, _ = simulate(scheduler, decaying([10e-3, 2e-3, 0.05e-3]), budget=200, round_trials=4)
    assert sum(spent) == 200
    assert spent[0] > spent[1] > spent[2]
    assert spent[0] >= 100 and spent[2] <= 12


def test_weight_alone_changes_the_split():
    same = decaying([1e-3, 1e-3])
    light, _ = simulate(GradientScheduler([1, 1], SchedulerConfig(round_trials=4)), same, 80, 4)
    heavy, _ = simulate(GradientScheduler([5, 1], SchedulerConfig(round_trials=4)), same, 80, 4)
    assert abs(light[0] - light[1]) <= 8 and heavy[0] > heavy[1] + 20


def test_finished_tasks_get_nothing_more():
    scheduler = GradientScheduler([10, 1], SchedulerConfig(round_trials=4))
    spent, _ = simulate(scheduler, decaying([1e-3, 1e-3]), budget=60, round_trials=4, size=[4, 1000])
    assert spent == [4, 56]


def test_a_task_without_valid_kernels_is_retried_then_given_up():
    cfg = SchedulerConfig(round_trials=4, patience=2)
    scheduler = GradientScheduler([1, 1], cfg)

    def latency(task, t):
        return np.inf if task == 0 else 1e-3

    spent, order = simulate(scheduler, latency, budget=40, round_trials=4)
    assert order[:3] == [0, 1, 0]  # an invalid task comes first while it has patience left
    assert spent[0] == cfg.patience * cfg.round_trials and spent[1] == 32
    assert scheduler.next_task([[np.inf] * 8, [1e-3] * 32], {1}) is None  # nothing left to tune: stop


def test_gradient_combines_observed_and_optimistic_terms():
    cfg = SchedulerConfig(round_trials=1, alpha=0.5, window=2)
    scheduler = GradientScheduler([2.0], cfg)
    curve = [8.0, 6.0, 4.0, 4.0]  # best after each of 4 rounds
    observed = (6.0 - 4.0) / 2  # over the last 2 rounds
    optimistic = 4.0 / 4
    assert scheduler.gradient(curve, 2.0) == pytest.approx(2.0 * (0.5 * observed + 0.5 * optimistic))
