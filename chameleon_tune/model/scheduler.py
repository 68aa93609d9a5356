"""A model's tuning tasks, and how one trial budget is spread over them.

Tasks are extracted from the module ``Pipeline.fuse`` made, with the passes that
``Pipeline.compile`` runs before it applies the tuning records, so the tasks tuned
are the functions looked up (by structural hash) when the model is compiled.

The budget goes by Ansor's gradient-based task scheduler (Zheng et al., OSDI
2020, Sec. 6), as MetaSchedule's ``GradientBased`` scheduler implements it:
after a first turn for every task, the next round goes to the task whose weighted
latency is expected to drop most, from how fast it dropped lately and an
optimistic share of its current latency. The first turn (the warm-up) is short
(``warmup_trials``) and goes to the tasks in order of their expected share of
the model's latency (calls per run x a FLOP-and-byte estimate of one call), so
that a model with dozens of tasks is not mostly warm-up, and a budget smaller
than the warm-up reaches the tasks that matter first. The algorithm needs no TVM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelTask:
    """One distinct fused operator of a model."""

    name: str
    mod: Any
    """IRModule whose ``main`` is the fused PrimFunc: what is tuned and looked up."""
    weight: int
    """How many times one run of the model calls it."""
    cost_estimate_s: float = 0.0
    """A rough latency of one call before anything is measured (see :func:`estimate_cost_s`)."""


def extract_tasks(fused_mod, target) -> list[ModelTask]:
    """The distinct fused operators of a fused module (``Pipeline.fuse``), each with its call count."""
    from ..tvm_space import load_tensor_intrinsics

    load_tensor_intrinsics(target)
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks as ms_extract_tasks

    return [
        ModelTask(t.task_name, t.dispatched[0], int(t.weight), estimate_cost_s(t.dispatched[0]))
        for t in ms_extract_tasks(fused_mod, target)
    ]


#: Rough sustained rates of a CPU core pair, only to rank tasks before anything is measured.
_ASSUMED_FLOPS = 50e9
_ASSUMED_BYTES_PER_S = 10e9


def estimate_cost_s(mod) -> float:
    """Seconds one call of ``mod``'s ``main`` might take: its FLOPs and the bytes of its buffers
    at assumed rates. Only the order of tasks by it matters."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        flops = float(estimate_tir_flops(mod))
    except Exception:  # noqa: BLE001 - the estimator rejects some loop forms; the bytes still rank it
        flops = 0.0
    nbytes = sum(
        int(np.prod([int(d) for d in arg.shape])) * np.dtype(str(arg.dtype)).itemsize
        for arg in ms.arg_info.ArgInfo.from_prim_func(mod["main"])
    )
    return flops / _ASSUMED_FLOPS + nbytes / _ASSUMED_BYTES_PER_S


def warmup_trials(budget: int, n_tasks: int, config: SchedulerConfig) -> int:
    """Trials of each task's first turn: at most a quarter of the budget goes to the warm-up,
    never fewer than one trial a task (a task never measured gets only an unmeasured fallback schedule).
    Without ``ranked_warmup``, a full round."""
    if not config.ranked_warmup:
        return config.round_trials
    return int(np.clip(budget // (4 * max(n_tasks, 1)), 1, min(config.warmup_trials, config.round_trials)))


@dataclass(frozen=True)
class SchedulerConfig:
    round_trials: int = 16
    """Trials a task is given per turn after its first."""
    warmup_trials: int = 4
    """Trials of a task's first turn (fewer if its space holds fewer configurations)."""
    alpha: float = 0.2
    """Weight of the observed (backward) gradient against the optimistic one (MetaSchedule: 0.2)."""
    window: int = 3
    """Rounds over which the observed gradient is taken (MetaSchedule: 3)."""
    patience: int = 2
    """Rounds a task may spend without one valid kernel before it is left to a fallback schedule."""
    ranked_warmup: bool = True
    """The warm-up described above. False: the allocation before it, kept for ablations: every
    task's first turn a full round, in the model's order, however much of the budget that takes."""
    sane_fallbacks: bool = True
    """A task without a valid trial is built with a MetaSchedule schedule (``tuner.chosen_records``).
    False: it keeps TVM's unscheduled default (one thread, nothing vectorized), for ablations."""


class GradientScheduler:
    """Picks which task gets the next round of trials."""

    def __init__(
        self, weights: Sequence[float], config: SchedulerConfig = SchedulerConfig(), costs: Sequence[float] | None = None
    ) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        self.config = config
        costs = np.ones_like(self.weights) if costs is None else np.asarray(costs, dtype=np.float64)
        expected = self.weights * costs
        self.expected_share = expected / expected.sum() if expected.sum() > 0 else np.full_like(expected, 1 / len(expected))
        """Each task's expected share of the model's latency, before anything is measured."""
        # Heaviest expected share first; ties keep the model's order.
        order = np.argsort(-expected, kind="stable") if config.ranked_warmup else range(len(expected))
        self.warmup_order = [int(i) for i in order]

    def turn_trials(self, trials_so_far: int) -> int:
        """How many trials a task's next turn gets: a short first one, then full rounds."""
        return self.config.warmup_trials if trials_so_far == 0 else self.config.round_trials

    def next_task(self, curves: Sequence[Sequence[float]], finished: set[int] = frozenset()) -> int | None:
        """The task for the next round, or None when no task can use one.

        ``curves[i]`` is task ``i``'s best latency after each of its trials so far
        (``inf`` until one is valid); ``finished`` tasks have exhausted their space.
        """
        open_tasks = [i for i in range(len(self.weights)) if i not in finished]
        for i in self.warmup_order:
            if i not in finished and not len(curves[i]):
                return i  # every task's first turn before any second, heaviest expected share first
        gradients = {i: self.gradient(curves[i], self.weights[i]) for i in open_tasks}
        gradients = {i: g for i, g in gradients.items() if g is not None}
        return max(gradients, key=lambda i: (gradients[i], -i)) if gradients else None

    def reason(self, index: int, curves: Sequence[Sequence[float]]) -> str:
        """Why ``next_task`` chose task ``index``: one line for the scheduler's log."""
        curve = curves[index]
        if not len(curve):
            rank = self.warmup_order.index(index) + 1
            order = "by expected share of the model's latency" if self.config.ranked_warmup else "in the model's order"
            return f"warm-up, {rank} of {len(self.weights)} {order}"
        best = float(curve[-1])
        if not np.isfinite(best):
            return "no valid kernel yet: it would run an unmeasured fallback schedule"
        gradient = self.gradient(curve, self.weights[index])
        return (
            f"largest expected gain: {gradient * 1e3:.4g} ms of model latency per round "
            f"({self.weights[index]:g} calls x {best * 1e3:.4g} ms best after {len(curve)} trials)"
        )

    def gradient(self, curve: Sequence[float], weight: float) -> float | None:
        """Expected drop of ``weight`` x latency per round (None: give the task up)."""
        cfg = self.config
        trials = len(curve)
        best = float(curve[-1])
        if not np.isfinite(best):
            # Only an unmeasured fallback schedule so far, likely slow: retry it before other work.
            return np.inf if trials < cfg.patience * cfg.round_trials else None
        rounds = trials / cfg.round_trials
        optimistic = best / rounds
        back = cfg.window * cfg.round_trials
        before = float(curve[trials - 1 - back]) if trials > back else np.inf
        observed = (before - best) / cfg.window if np.isfinite(before) else 0.0
        return weight * (cfg.alpha * observed + (1 - cfg.alpha) * optimistic)
