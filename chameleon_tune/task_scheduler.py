"""A model's tuning tasks, and how one trial budget is spread over them.

Extraction legalizes and fuses the Relax module with the very passes that
``ms.relax_integration.compile_relax`` runs before it applies a database, so
the tasks tuned here are the functions it looks up (by structural hash) when
the model is compiled.

The budget goes by Ansor's gradient-based task scheduler (Zheng et al., OSDI
2020, Sec. 6), as MetaSchedule's ``GradientBased`` scheduler implements it:
after one round for every task, the next round goes to the task whose weighted
latency is expected to drop most, from how fast it dropped lately and an
optimistic share of its current latency. The algorithm needs no TVM.
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


def fuse(mod, target):
    """Legalize and fuse a Relax module as ``compile_relax`` does before applying a database."""
    import tvm
    from tvm import relax
    from tvm.relax import pipeline

    passes = [
        *pipeline.library_dispatch_passes(target),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    with target:
        return tvm.transform.Sequential(passes)(mod)


def extract_tasks(fused_mod, target) -> list[ModelTask]:
    """The distinct fused operators of ``fuse``'s result, each with its call count."""
    from .tvm_space import load_tensor_intrinsics

    load_tensor_intrinsics(target)
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks as ms_extract_tasks

    return [ModelTask(t.task_name, t.dispatched[0], int(t.weight)) for t in ms_extract_tasks(fused_mod, target)]


@dataclass(frozen=True)
class SchedulerConfig:
    round_trials: int = 16
    """Trials a task is given per turn."""
    alpha: float = 0.2
    """Weight of the observed (backward) gradient against the optimistic one (MetaSchedule: 0.2)."""
    window: int = 3
    """Rounds over which the observed gradient is taken (MetaSchedule: 3)."""
    patience: int = 2
    """Rounds a task may spend without one valid kernel before it is left to its default schedule."""


class GradientScheduler:
    """Picks which task gets the next round of trials."""

    def __init__(self, weights: Sequence[float], config: SchedulerConfig = SchedulerConfig()) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        self.config = config

    def next_task(self, curves: Sequence[Sequence[float]], finished: set[int] = frozenset()) -> int | None:
        """The task for the next round, or None when no task can use one.

        ``curves[i]`` is task ``i``'s best latency after each of its trials so far
        (``inf`` until one is valid); ``finished`` tasks have exhausted their space.
        """
        open_tasks = [i for i in range(len(self.weights)) if i not in finished]
        for i in open_tasks:
            if not len(curves[i]):
                return i  # the first round goes round-robin: nothing is known of a task before
        gradients = {i: self.gradient(curves[i], self.weights[i]) for i in open_tasks}
        gradients = {i: g for i, g in gradients.items() if g is not None}
        return max(gradients, key=lambda i: (gradients[i], -i)) if gradients else None

    def gradient(self, curve: Sequence[float], weight: float) -> float | None:
        """Expected drop of ``weight`` x latency per round (None: give the task up)."""
        cfg = self.config
        trials = len(curve)
        best = float(curve[-1])
        if not np.isfinite(best):
            # Its default schedule is the untuned one, likely slow: retry it before other work.
            return np.inf if trials < cfg.patience * cfg.round_trials else None
        rounds = trials / cfg.round_trials
        optimistic = best / rounds
        back = cfg.window * cfg.round_trials
        before = float(curve[trials - 1 - back]) if trials > back else np.inf
        observed = (before - best) / cfg.window if np.isfinite(before) else 0.0
        return weight * (cfg.alpha * observed + (1 - cfg.alpha) * optimistic)
