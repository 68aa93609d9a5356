"""XGBoost cost models: on configuration features (AutoTVM's XGBTuner model), and on program
features (``ProgramCostModel``: any task's programs, described by ``measure/program_features.py``).

The search agents query it tens of thousands of times per iteration, always in
batches; prediction goes through ``inplace_predict`` on a NumPy array, which
skips building a DMatrix per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .space import Space


@dataclass(frozen=True)
class CostModelConfig:
    """AutoTVM's XGBoost settings."""

    loss: str = "rank"
    """``rank`` (pairwise ranking, AutoTVM's default) or ``reg`` (squared error)."""
    max_depth: int = 3
    """Depth of each tree."""
    eta: float = 0.3
    """Learning rate."""
    gamma: float = 0.0001
    """Minimum loss reduction for a split."""
    min_child_weight: float = 1.0
    """Minimum hessian sum in a leaf."""
    num_boost_round: int = 100
    """Trees per fit (refit from scratch after every measured batch)."""
    transfer_prior: float | None = 16.0
    """With other tasks' measurements (``related``): how many of its own measurements a task
    needs before they weigh as much as each other task's. Each other task weighs
    ``prior / (prior + n_own)``, from as much as the task's own at the start to little once the
    task knows its own space. None: other tasks weigh as much as the task's own throughout.
    Of 4, 8, 16, 32, 64 and None, replayed with the other GPU's measurements on the two recorded
    GPU spaces (20 seeds), 16 was best on both: the W6600 space's mean fraction of the optimum
    0.902 (None: 0.877, cold: 0.805), and on the A4000 space, where the W6600's data mislead,
    0.848 with every seed at 95% (None: 0.812, 16 of 20; cold: 0.887, 18 of 20); BENCHMARKS.md
    section 28."""


_OBJECTIVES = {"rank": "rank:pairwise", "reg": "reg:squarederror"}


RelatedTask = tuple[Space, np.ndarray, np.ndarray]
"""Another task's measurements: its space, its configurations and their latencies (``inf``: failed)."""


class XGBoostCostModel:
    """Predicts a score (higher is faster) for configurations of one space.

    With ``related`` (a callable returning other tasks' measurements, see :data:`RelatedTask`),
    the model is shared: it learns from those tasks as well as from its own, on features that
    mean the same in every space of the same knobs (``Space.transferable_features``), so it
    ranks a task's configurations before the task has measured anything. Each task's scores are
    scaled to its own best and, for the ranking loss, compared only within the task.
    """

    def __init__(
        self,
        space: Space,
        config: CostModelConfig = CostModelConfig(),
        *,
        seed: int = 0,
        related: Callable[[], Sequence[RelatedTask]] | None = None,
    ) -> None:
        if config.loss not in _OBJECTIVES:
            raise ValueError(f"unknown cost-model loss {config.loss!r}; choose from {sorted(_OBJECTIVES)}")
        self.space = space
        self.config = config
        self.seed = seed
        self.related = related
        self._booster = None

    @property
    def trained(self) -> bool:
        return self._booster is not None

    def _features(self, space: Space, configs: np.ndarray) -> np.ndarray:
        return space.transferable_features(configs) if self.related is not None else space.features(configs)

    def fit(self, configs: np.ndarray, latencies: np.ndarray) -> None:
        """Refit on every measurement so far (and the related tasks'); failed trials score 0.

        The target is throughput relative to the best seen, as in AutoTVM, so the
        scale does not change between workloads.
        """
        tasks = [(self.space, configs, latencies), *(self.related() if self.related is not None else ())]
        width = self._features(self.space, np.zeros((1, self.space.n_knobs), dtype=np.int64)).shape[1]
        rows, targets, groups, weights = [], [], [], []
        others = self.transfer_weight(len(latencies))
        for index, (space, task_configs, task_latencies) in enumerate(tasks):
            target = _relative_throughput(task_latencies)
            if target is None or (features := self._features(space, task_configs)).shape[1] != width:
                continue  # nothing valid to learn from yet, or not the same knobs
            rows.append(features)
            targets.append(target)
            groups.append(len(target))
            weights.append(1.0 if index == 0 else others)
        if rows:
            self._booster = _train(self.config, self.seed, rows, targets, groups, weights if self.related is not None else None)

    def transfer_weight(self, own: int) -> float:
        """The weight of each other task's measurements when this task has ``own``."""
        prior = self.config.transfer_prior
        return 1.0 if prior is None else prior / (prior + own)

    def predict(self, configs: np.ndarray) -> np.ndarray:
        """Scores of a batch of configurations (zeros before the first fit)."""
        configs = np.atleast_2d(configs)
        if self._booster is None:
            return np.zeros(len(configs), dtype=np.float32)
        return self._booster.inplace_predict(self._features(self.space, configs))


class ProgramCostModel:
    """Predicts a score (higher is faster) for programs of any task from their program features
    (``measure/program_features.py``): trained on other tasks' measured programs, whatever their
    knobs, it ranks a new task's candidates before the task has measured anything. Each task's
    scores are scaled to its own best and compared only within the task, as in
    :class:`XGBoostCostModel` with ``related``."""

    def __init__(self, config: CostModelConfig = CostModelConfig(), *, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        self._booster = None

    @property
    def trained(self) -> bool:
        return self._booster is not None

    def fit(self, tasks: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Fit on ``(features, latencies)`` per task (``inf``: failed); rows without features
        (NaN) are left out."""
        rows, targets, groups = [], [], []
        for features, latencies in tasks:
            described = ~np.isnan(features).any(axis=1)
            target = _relative_throughput(np.asarray(latencies)[described])
            if target is None:
                continue
            rows.append(features[described].astype(np.float32))
            targets.append(target)
            groups.append(len(target))
        if rows:
            self._booster = _train(self.config, self.seed, rows, targets, groups, [1.0] * len(groups))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Scores of a batch of programs (zeros before the first fit)."""
        if self._booster is None:
            return np.zeros(len(features), dtype=np.float32)
        return self._booster.inplace_predict(np.asarray(features, dtype=np.float32))


def _relative_throughput(latencies) -> np.ndarray | None:
    """Throughput relative to the task's best (AutoTVM's target, the same scale in every task),
    0 for failed trials; None where none is valid."""
    latencies = np.asarray(latencies, dtype=np.float64)
    ok = np.isfinite(latencies) & (latencies > 0)
    if not ok.any():
        return None
    throughput = np.zeros_like(latencies)
    throughput[ok] = 1.0 / latencies[ok]
    return throughput / throughput.max()


def _train(config: CostModelConfig, seed: int, rows: list, targets: list, groups: list, weights: list | None):
    """An XGBoost booster on the rows of one or more tasks (``weights``: one per task, the
    tasks then ranked apart; None: one task)."""
    import xgboost as xgb

    params = {
        "objective": _OBJECTIVES[config.loss],
        "max_depth": config.max_depth,
        "eta": config.eta,
        "gamma": config.gamma,
        "min_child_weight": config.min_child_weight,
        "tree_method": "hist",
        # Hundreds of rows: threads cost more than they save, and they spin
        # against the compiler workers on a small machine.
        "nthread": 1,
        "seed": seed,
        "verbosity": 0,
    }
    data = xgb.DMatrix(np.concatenate(rows), label=np.concatenate(targets))
    if weights is not None:
        data.set_group(groups)  # ranking pairs within a task: latencies of two tasks do not compare
        # a ranking loss weighs groups, a regression rows
        data.set_weight(weights if config.loss == "rank" else np.repeat(weights, groups))
    return xgb.train(params, data, num_boost_round=config.num_boost_round)
