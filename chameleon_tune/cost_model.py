"""XGBoost cost model on configuration features (AutoTVM's XGBTuner model).

The search agents query it tens of thousands of times per iteration, always in
batches; prediction goes through ``inplace_predict`` on a NumPy array, which
skips building a DMatrix per call.
"""

from __future__ import annotations

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


_OBJECTIVES = {"rank": "rank:pairwise", "reg": "reg:squarederror"}


class XGBoostCostModel:
    """Predicts a score (higher is faster) for configurations of one space."""

    def __init__(self, space: Space, config: CostModelConfig = CostModelConfig(), *, seed: int = 0) -> None:
        if config.loss not in _OBJECTIVES:
            raise ValueError(f"unknown cost-model loss {config.loss!r}; choose from {sorted(_OBJECTIVES)}")
        self.space = space
        self.config = config
        self.seed = seed
        self._booster = None

    @property
    def trained(self) -> bool:
        return self._booster is not None

    def fit(self, configs: np.ndarray, latencies: np.ndarray) -> None:
        """Refit on every measurement so far; failed trials (``inf`` latency) score 0.

        The target is throughput relative to the best seen, as in AutoTVM, so the
        scale does not change between workloads.
        """
        import xgboost as xgb

        latencies = np.asarray(latencies, dtype=np.float64)
        ok = np.isfinite(latencies) & (latencies > 0)
        if not ok.any():
            return  # nothing valid to learn from yet
        throughput = np.zeros_like(latencies)
        throughput[ok] = 1.0 / latencies[ok]
        target = throughput / throughput.max()
        params = {
            "objective": _OBJECTIVES[self.config.loss],
            "max_depth": self.config.max_depth,
            "eta": self.config.eta,
            "gamma": self.config.gamma,
            "min_child_weight": self.config.min_child_weight,
            "tree_method": "hist",
            # Hundreds of rows: threads cost more than they save, and they spin
            # against the compiler workers on a small machine.
            "nthread": 1,
            "seed": self.seed,
            "verbosity": 0,
        }
        data = xgb.DMatrix(self.space.features(configs), label=target)
        self._booster = xgb.train(params, data, num_boost_round=self.config.num_boost_round)

    def predict(self, configs: np.ndarray) -> np.ndarray:
        """Scores of a batch of configurations (zeros before the first fit)."""
        configs = np.atleast_2d(configs)
        if self._booster is None:
            return np.zeros(len(configs), dtype=np.float32)
        return self._booster.inplace_predict(self.space.features(configs))
