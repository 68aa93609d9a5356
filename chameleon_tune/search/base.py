"""The strategy interface and the name registry the CLI and the Python API use.

A strategy proposes configurations and hears back what they measured; it never
counts trials or de-duplicates against the budget: the tuner loop does. All it
sees of the past is the shared :class:`~chameleon_tune.database.History`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..cost_model import RelatedTask
from ..database import History
from ..measure.types import MeasureResult
from ..space import Space


class PolicyError(ValueError):
    """A saved policy that cannot be loaded here: not a policy file, or one of another architecture."""


@dataclass(frozen=True)
class TaskContext:
    """What a strategy may know of its task beyond the space."""

    space: Space
    history: History
    seed: int = 0
    tvm_space: Any = None
    """The TVM adapter, for strategies that drive MetaSchedule itself (else None)."""
    is_valid: Callable[[np.ndarray], bool] | None = None
    """A validity check too costly to sample or walk with (TVM: does the configuration
    schedule?), applied to a configuration before it is measured; None: none. Restrictions
    known up front belong to the space itself (``Space.valid``), which every strategy honours."""
    work_dir: str | None = None
    """Where a strategy may keep state that a resumed run reloads (e.g. a policy)."""
    warm_start: str | None = None
    """A saved policy to start from (strategies that learn one)."""
    related: Callable[[], Sequence[RelatedTask]] | None = None
    """Other tasks' measurements, for a cost model shared across tasks (``cost_model.py``);
    None: the task learns from its own measurements alone."""
    program_features: Callable[[np.ndarray], np.ndarray] | None = None
    """The program features of candidate configurations (``measure/program_features.py``; TVM:
    each scheduled and described, a row of NaN where one does not schedule); None: none."""
    related_programs: Callable[[], Sequence[tuple[np.ndarray, np.ndarray]]] | None = None
    """Other tasks' measured programs whatever their knobs, ``(features, latencies)`` each, for
    the program cost model that ranks a task's first candidates; None: none."""


class Strategy(abc.ABC):
    """Proposes what to measure next."""

    def __init__(self, task: TaskContext) -> None:
        self.task = task
        self.space = task.space
        self.history = task.history
        self.rng = np.random.default_rng(task.seed)

    @abc.abstractmethod
    def propose(self, n: int) -> np.ndarray:
        """Up to ``n`` configurations not measured yet (fewer is fine; none ends tuning)."""

    def update(self, configs: np.ndarray, results: list[MeasureResult]) -> None:
        """Hear the results of measured configurations (already in the history)."""

    def random_unmeasured(self, n: int, exclude: set | None = None) -> np.ndarray:
        """Up to ``n`` distinct random configurations that are neither measured nor excluded."""
        taken = set(exclude or ())
        picked: list[np.ndarray] = []
        for _attempt in range(64 if n > 0 else 0):
            for config in self.space.sample(self.rng, max(2 * n, 16)):
                key = self.space.key(config)
                if key not in taken and config not in self.history:
                    taken.add(key)
                    picked.append(config)
                    if len(picked) == n:
                        return np.array(picked, dtype=np.int64)
        return np.array(picked, dtype=np.int64).reshape(-1, self.space.n_knobs)


StrategyFactory = Callable[[TaskContext], Strategy]
_REGISTRY: dict[str, StrategyFactory] = {}


def register(name: str) -> Callable[[StrategyFactory], StrategyFactory]:
    def decorator(factory: StrategyFactory) -> StrategyFactory:
        _REGISTRY[name] = factory
        return factory

    return decorator


def strategy_names() -> list[str]:
    _load_builtin()
    return list(_REGISTRY)


def make_strategy(name: str, task: TaskContext) -> Strategy:
    _load_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"unknown strategy {name!r}; choose from: {', '.join(_REGISTRY)}")
    return _REGISTRY[name](task)


def _load_builtin() -> None:
    # Importing the modules runs their @register decorators.
    from . import annealing, chameleon, evolutionary, exhaustive, random  # noqa: F401
