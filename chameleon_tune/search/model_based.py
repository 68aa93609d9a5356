"""Model-based search, AutoTVM style: fit the cost model, search it, measure a plan.

Each iteration refits the XGBoost model on every measurement so far, asks an
*optimizer* (simulated annealing, or Chameleon's PPO agent) for the
``plan_size`` best-predicted unmeasured configurations, and measures them,
the last ``epsilon`` share replaced by random picks to keep exploring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..cost_model import CostModelConfig, XGBoostCostModel
from ..measure.types import MeasureResult
from ..space import Config
from .base import Strategy, TaskContext


class Optimizer(Protocol):
    def find_maximums(self, model: XGBoostCostModel, n: int, exclude: set[Config]) -> np.ndarray:
        """Up to ``n`` distinct configurations with the best predicted scores, best first."""


@dataclass(frozen=True)
class ModelBasedConfig:
    plan_size: int = 64
    """Candidates the optimizer returns per iteration (AutoTVM: 64)."""
    epsilon: float = 0.05
    """Share of each measured batch drawn at random (AutoTVM's epsilon-greedy)."""
    cost_model: CostModelConfig = field(default_factory=CostModelConfig)
    """The XGBoost model's settings."""


class ModelBasedStrategy(Strategy):
    def __init__(self, task: TaskContext, optimizer: Optimizer, config: ModelBasedConfig = ModelBasedConfig()) -> None:
        super().__init__(task)
        self.config = config
        self.optimizer = optimizer
        self.model = XGBoostCostModel(self.space, config.cost_model, seed=task.seed)

    def propose(self, n: int) -> np.ndarray:
        if not self.model.trained:
            return self.random_unmeasured(n)  # nothing to search on before the first measurements
        plan = self.optimizer.find_maximums(self.model, self.config.plan_size, self.measured_keys())
        return self.select(plan, n)

    def select(self, plan: np.ndarray, n: int) -> np.ndarray:
        """The batch to measure from the plan: its best, with an epsilon share random."""
        n_random = int(self.config.epsilon * n)
        chosen = plan[: n - n_random]
        extra = self.random_unmeasured(n - len(chosen), exclude=set(self.space.keys(chosen)))
        return np.concatenate([chosen, extra]) if len(extra) else chosen

    def measured_keys(self) -> set[Config]:
        return {t.config for t in self.history.trials}

    def update(self, configs: np.ndarray, results: list[MeasureResult]) -> None:
        self.model.fit(self.history.configs, self.history.latencies)
