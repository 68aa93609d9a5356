"""AutoTVM's simulated annealing over the cost model (the ``sa`` baseline).

AutoTVM left TVM in 0.20, so this is a reimplementation of its
``SimulatedAnnealingOptimizer`` with its defaults: 128 parallel chains, up to
500 steps, temperature 1 -> 0, stop after 50 steps without a new top-k entry,
chains persisting across iterations. Chains move in lockstep, so each step is
one batched cost-model call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cost_model import XGBoostCostModel
from ..space import Config, Space
from .base import TaskContext, register
from .model_based import ModelBasedStrategy, TopK


@dataclass(frozen=True)
class AnnealingConfig:
    parallel_size: int = 128
    """Chains walked in lockstep."""
    n_iter: int = 500
    """Maximum annealing steps per search."""
    temp: tuple[float, float] = (1.0, 0.0)
    """Start and end temperature (linear cooling)."""
    early_stop: int = 50
    """Stop after this many steps without improving the top list."""
    persistent: bool = True
    """Start each search from where the chains ended the previous one."""


class SimulatedAnnealing:
    def __init__(self, space: Space, rng: np.random.Generator, config: AnnealingConfig = AnnealingConfig()) -> None:
        self.space = space
        self.rng = rng
        self.config = config
        self.points: np.ndarray | None = None

    def find_maximums(self, model: XGBoostCostModel, n: int, exclude: set[Config]) -> np.ndarray:
        cfg = self.config
        points = self.points if cfg.persistent and self.points is not None else self.space.sample(self.rng, cfg.parallel_size)
        scores = np.array(model.predict(points), dtype=np.float64)
        top = TopK(self.space, n, exclude)
        top.offer(points, scores)
        temp, cool = cfg.temp[0], (cfg.temp[0] - cfg.temp[1]) / (cfg.n_iter + 1)
        step = last_improved = 0
        while step < cfg.n_iter and step < last_improved + cfg.early_stop:
            moved = self.space.random_neighbour(points, self.rng)
            moved_scores = model.predict(moved)
            accept_prob = np.exp(np.minimum((moved_scores - scores) / (temp + 1e-5), 1))
            accept = self.rng.random(len(points)) < accept_prob
            points[accept], scores[accept] = moved[accept], moved_scores[accept]
            if top.offer(moved, moved_scores):
                last_improved = step
            step += 1
            temp -= cool
        self.points = points
        return top.best()


def annealing_for(task: TaskContext) -> SimulatedAnnealing:
    return SimulatedAnnealing(task.space, np.random.default_rng(task.seed + 1))


@register("sa")
def simulated_annealing(task: TaskContext) -> ModelBasedStrategy:
    """AutoTVM's XGBTuner: XGBoost (rank loss) + simulated annealing, epsilon-greedy."""
    return ModelBasedStrategy(task, annealing_for(task))
