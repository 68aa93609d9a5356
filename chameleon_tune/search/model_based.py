"""Model-based search, AutoTVM style: fit the cost model, search it, measure a plan.

Each iteration refits the XGBoost model on every measurement so far, asks an
*optimizer* (simulated annealing, or Chameleon's PPO agent) for the
``plan_size`` best-predicted unmeasured configurations, and measures them,
the last ``epsilon`` share replaced by random picks to keep exploring.
With ``local_share``, part of each batch goes to local refinement instead: the
best-predicted unmeasured one-knob neighbours of the best measured configurations.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from ..cost_model import CostModelConfig, ProgramCostModel, XGBoostCostModel
from ..measure.types import MeasureResult
from ..space import Config, Space
from .base import Strategy, TaskContext


class Sampler(Protocol):
    def select(
        self, candidates: np.ndarray, is_measured: Callable[[Config], bool], is_valid: Callable[[np.ndarray], bool] | None
    ) -> np.ndarray:
        """The configurations to measure out of an optimizer's candidates."""


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
    local_share: float = 0.0
    """Share of each batch given to local refinement (0: none, as in AutoTVM and the paper):
    the best-predicted unmeasured one-knob neighbours of the ``local_top`` best measured
    configurations. A cost model that ranks a plateau of near-equal configurations cannot tell
    which of them sits one step from something better; measuring the steps can."""
    local_top: int = 16
    """How many of the best measured configurations' neighbourhoods local refinement searches."""


PROGRAM_POOL = 128
"""Random candidates the program cost model ranks for a task's first batch; the better half goes
to the usual selection."""


class ModelBasedStrategy(Strategy):
    """Cost model + optimizer (+ optional sampler): ``sa``, ``rl`` and the Chameleon variants."""

    def __init__(
        self,
        task: TaskContext,
        optimizer: Optimizer,
        config: ModelBasedConfig = ModelBasedConfig(),
        sampler: Sampler | None = None,
    ) -> None:
        super().__init__(task)
        self.config = config
        self.optimizer = optimizer
        self.sampler = sampler
        self.model = XGBoostCostModel(self.space, config.cost_model, seed=task.seed, related=task.related)
        self.programs: ProgramCostModel | None = None

    def propose(self, n: int) -> np.ndarray:
        if not self.model.trained and self.task.related is not None:
            self.model.fit(self.history.configs, self.history.latencies)  # other tasks' measurements
        if self.program_phase():
            return self.program_pick(n)
        if not self.model.trained:
            return self.random_unmeasured(n)  # nothing to search on before the first measurements
        plan = self.optimizer.find_maximums(self.model, self.config.plan_size, self.history.keys)
        return self.select(plan, n)

    def program_phase(self) -> bool:
        """Whether the program cost model picks this batch: only when nothing else can, the
        task's first batch where no other task shares its knobs (BENCHMARKS.md §39: on later
        batches, and mixed with the task's own model, it held the search back)."""
        if self.task.program_features is None or self.task.related_programs is None:
            return False
        if len(self.history) or self.model.trained:
            return False
        if self.programs is None:
            self.programs = ProgramCostModel(self.config.cost_model, seed=self.task.seed)
            self.programs.fit(self.task.related_programs())
        return self.programs.trained

    def program_pick(self, n: int) -> np.ndarray:
        """The first batch from random candidates: the better half by the program model, of
        those that schedule, to the usual selection (sampler or plan order)."""
        pool = self.random_unmeasured(PROGRAM_POOL)
        features = self.task.program_features(pool)
        scheduled = ~np.isnan(features).any(axis=1)
        pool, features = pool[scheduled], features[scheduled]
        if not len(pool):
            return self.random_unmeasured(n)
        ordered = pool[np.argsort(-self.programs.predict(features), kind="stable")]
        return self.select(ordered[: max(n, len(ordered) // 2)], n)

    def select(self, plan: np.ndarray, n: int) -> np.ndarray:
        """The batch to measure from the plan: a sampler's choice, or (AutoTVM) the
        plan's best with an epsilon share random; then the local-refinement share."""
        if self.sampler is not None:
            batch = self.sampler.select(plan, self.history.keys.__contains__, self.task.is_valid)[:n]
        else:
            n_random = int(self.config.epsilon * n)
            chosen = plan[: n - n_random]
            extra = self.random_unmeasured(n - len(chosen), exclude=set(self.space.keys(chosen)))
            batch = np.concatenate([chosen, extra]) if len(extra) else chosen
        local = self.local_refinement(round(self.config.local_share * n), exclude=set(self.space.keys(batch)))
        return np.concatenate([batch[: n - len(local)], local]) if len(local) else batch

    def local_refinement(self, k: int, exclude: set[Config]) -> np.ndarray:
        """Up to ``k`` unmeasured one-knob neighbours of the best measured configurations,
        best predicted first, each passing the task's validity check."""
        best = self.history.top(self.config.local_top) if k > 0 and self.model.trained else []
        if not best:
            return np.zeros((0, self.space.n_knobs), dtype=np.int64)
        candidates = np.unique(np.concatenate([self.space.neighbours(t.config) for t in best]), axis=0)
        measured = self.history.keys
        keep = [i for i, key in enumerate(self.space.keys(candidates)) if key not in measured and key not in exclude]
        candidates = candidates[keep]
        picked = []
        for i in np.argsort(-self.model.predict(candidates), kind="stable")[: 4 * k]:  # few checks, however many fail
            if self.task.is_valid is None or self.task.is_valid(candidates[i]):
                picked.append(candidates[i])
                if len(picked) == k:
                    break
        return np.array(picked, dtype=np.int64).reshape(-1, self.space.n_knobs)

    def update(self, configs: np.ndarray, results: list[MeasureResult]) -> None:
        self.model.fit(self.history.configs, self.history.latencies)


class TopK:
    """The ``k`` best-scored distinct configurations not in ``exclude``.

    Offered batches are first cut to the rows that beat the current k-th
    score, so the per-row Python work stays small however many walkers step.
    """

    def __init__(self, space: Space, k: int, exclude: set[Config]) -> None:
        self.space = space
        self.k = k
        self.exclude = exclude
        self.heap: list[tuple[float, Config]] = []
        self.members: set[Config] = set()

    def offer(self, configs: np.ndarray, scores: np.ndarray) -> bool:
        """Consider a batch; True if the top list changed."""
        scores = np.asarray(scores, dtype=np.float64)
        if len(self.heap) == self.k:
            better = scores > self.heap[0][0]
            configs, scores = configs[better], scores[better]
        changed = False
        for key, score in zip(self.space.keys(configs), scores.tolist()):
            if key in self.members or key in self.exclude:
                continue
            if len(self.heap) < self.k:
                heapq.heappush(self.heap, (score, key))
            elif score > self.heap[0][0]:
                _, dropped = heapq.heapreplace(self.heap, (score, key))
                self.members.discard(dropped)
            else:
                continue
            self.members.add(key)
            changed = True
        return changed

    def best(self) -> np.ndarray:
        ordered = sorted(self.heap, key=lambda item: -item[0])
        return np.array([key for _, key in ordered], dtype=np.int64).reshape(len(ordered), self.space.n_knobs)
