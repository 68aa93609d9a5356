"""The gradient-based task scheduler on fake tasks (no TVM, no measurements), and its cost estimate."""

from dataclasses import replace

import numpy as np
import pytest

from chameleon_tune.model.scheduler import GradientScheduler, SchedulerConfig, warmup_trials


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


def warm_up(scheduler, budget, size):
    """Spend ``budget`` trials as tune-model does: each turn as long as ``turn_trials`` says, capped by the
    budget and the task's space; every trial finds 1 ms."""
    measured = [[] for _ in size]
    order, finished = [], {i for i, n in enumerate(size) if n == 0}
    while sum(map(len, measured)) < budget:
        task = scheduler.next_task([np.minimum.accumulate(m) if m else [] for m in measured], finished)
        if task is None:
            break
        order.append(task)
        turn = min(scheduler.turn_trials(len(measured[task])), budget - sum(map(len, measured)), size[task] - len(measured[task]))
        measured[task] += [1e-3] * turn
        if len(measured[task]) >= size[task]:
            finished.add(task)
    return [len(m) for m in measured], order


def test_warm_up_goes_to_the_heaviest_expected_share_first():
    # weight x estimated cost: task 1 (1 x 10) before task 2 (2 x 3) before task 0 (1 x 1)
    scheduler = GradientScheduler([1, 1, 2], SchedulerConfig(round_trials=8, warmup_trials=2), costs=[1.0, 10.0, 3.0])
    spent, order = warm_up(scheduler, budget=5, size=[100, 100, 100])
    assert order[:3] == [1, 2, 0] and spent == [1, 2, 2]


def test_warm_up_is_short_and_never_exceeds_the_budget():
    config = SchedulerConfig(round_trials=16, warmup_trials=4)
    assert [warmup_trials(b, 39, config) for b in (10, 100, 400, 1000, 10000)] == [1, 1, 2, 4, 4]
    # 39 tasks, 100 trials: every task is measured before any gets a full round
    scheduler = GradientScheduler([1] * 39, replace(config, warmup_trials=warmup_trials(100, 39, config)))
    spent, order = warm_up(scheduler, budget=100, size=[1000] * 39)
    assert sum(spent) == 100 and min(spent) >= 1 and sorted(order[:39]) == list(range(39))
    # a budget smaller than the warm-up: spent exactly, heaviest first
    scheduler = GradientScheduler([1] * 39, config, costs=[1.0] * 38 + [9.0])
    spent, order = warm_up(scheduler, budget=10, size=[1000] * 39)
    assert sum(spent) == 10 and order[0] == 38 and spent[38] == 4


def test_the_allocation_before_the_ranked_warm_up_is_kept_for_ablations():
    # a full first round for every task, in the model's order, whatever the estimates and the budget
    config = SchedulerConfig(round_trials=16, ranked_warmup=False)
    assert warmup_trials(400, 39, config) == 16
    scheduler = GradientScheduler([1, 1, 2], replace(config, warmup_trials=16), costs=[1.0, 10.0, 3.0])
    spent, order = warm_up(scheduler, budget=40, size=[100, 100, 100])
    assert order == [0, 1, 2] and spent == [16, 16, 8]
    assert "in the model's order" in scheduler.reason(2, [[1.0] * 16, [1.0] * 16, []])


def test_a_single_configuration_task_costs_one_trial():
    scheduler = GradientScheduler([5, 1], SchedulerConfig(round_trials=16, warmup_trials=4))
    spent, _ = warm_up(scheduler, budget=40, size=[1, 1000])
    assert spent == [1, 39]


def test_cost_estimate_ranks_a_bigger_operator_higher():
    import tvm

    from chameleon_tune.model.scheduler import estimate_cost_s
    from chameleon_tune.workloads import get_workload

    small, large = (tvm.IRModule({"main": get_workload(name).prim_func()}) for name in ("matmul.64", "matmul.121"))
    assert 0 < estimate_cost_s(small) < estimate_cost_s(large)


def test_latency_curve_sums_weighted_bests_once_every_task_is_measured():
    from chameleon_tune.database import History
    from chameleon_tune.measure.types import MeasureResult
    from chameleon_tune.evaluation.model_curve import latency_curve, time_to_beat
    from chameleon_tune.space import Knob, Space

    space = Space((Knob("a", (1, 2, 3)),))
    a, b = History(space), History(space)
    # one run: a batch started at t=0 for task a, then one at t=10 for task b, then task a again at t=20
    a.append(np.array([0]), MeasureResult(4e-3, (4e-3,)), started=0.0, finished=1.0)
    b.append(np.array([0]), MeasureResult.failed("build", "x"), started=10.0, finished=11.0)
    b.append(np.array([1]), MeasureResult(1e-3, (1e-3,)), started=10.0, finished=12.0)
    a.append(np.array([1]), MeasureResult(2e-3, (2e-3,)), started=20.0, finished=23.0)
    seconds, estimate = latency_curve([1, 3], [a, b])
    # the curve starts when b has its first valid trial: 1 s of a's batch + 2 s of b's
    assert seconds.tolist() == [3.0, 6.0] and estimate.tolist() == pytest.approx([4e-3 + 3e-3, 2e-3 + 3e-3])
    assert time_to_beat(seconds, estimate, {"fast": 6e-3, "faster": 1e-3}) == {"fast": 6.0, "faster": None}
    assert latency_curve([1, 3], [a, History(space)])[0].size == 0  # a task never measured: no curve


def test_each_choice_comes_with_its_reason():
    scheduler = GradientScheduler([1, 3], SchedulerConfig(round_trials=4, warmup_trials=1), costs=[1.0, 1.0])
    curves = [[], []]
    assert scheduler.next_task(curves) == 1 and scheduler.reason(1, curves).startswith("warm-up, 1 of 2")
    curves = [[2e-3], [np.inf]]
    assert scheduler.reason(1, curves).startswith("no valid kernel yet")
    curves = [[2e-3], [1e-3] * 4]
    index = scheduler.next_task(curves)
    assert scheduler.reason(index, curves).startswith("largest expected gain") and "calls x" in scheduler.reason(index, curves)
