"""What one task of a model passes on to the others: starting schedules, and measurements
for a shared cost model.

A model's convolutions share MetaSchedule's sketch structure: the same knobs (tilings of
the same loops, unroll depth, compute location) over different extents. The tilings that
made one of them fast (inner tiles that fill vector registers, an outer extent that feeds
every core) are a much better first guess for its sibling than a random draw, and far
better than TVM's unscheduled default. So a task's first trial can be its most similar
measured task's best configurations, translated knob by knob to the nearest legal choice:
tilings by the distance of their factors' logarithms, inner factors weighing most, other
choices by value.

The same compatibility lets one cost model learn from all of them at once (``cost_model.py``,
``related``): it ranks a task's configurations before the task has measured anything.

Only knob spaces are involved: no TVM here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..space import Space


@dataclass(frozen=True)
class Transfer:
    """What tasks share while a model is tuned (each off is an ablation)."""

    starting_configs: bool = True
    """A task's first trials are its most similar measured task's best, translated."""
    shared_cost_model: bool = True
    """A task's cost model also learns from every compatible task's measurements."""
    policy: bool = True
    """A learning strategy's first turn on a task starts from the policy of the task tuned just
    before (``search/ppo.py``: one policy fits every space), not from random weights."""

    def to_json(self) -> dict:
        return asdict(self)


INNER_WEIGHT = 4.0
"""How much more a tiling factor weighs in the distance than the factor outside it."""
STARTING_CONFIGS = 2
"""Configurations a task's first turn takes from its most similar measured task."""
STORED_NEIGHBOURS = 8
"""Stored workloads (of earlier runs, see ``record_store.py``) a task's shared cost model learns
from: the nearest compatible ones."""
STORED_TRIALS = 256
"""The latest trials of each stored workload it learns from: bounded refits however large the store."""


def compatible(source: Space, target: Space) -> bool:
    """The two spaces come from the same sketches: the same knobs, tilings of the same depth."""
    if source.names != target.names:
        return False
    return all(_arity(a) == _arity(b) for a, b in zip(source.knobs, target.knobs))


def translate(config: Sequence[int], source: Space, target: Space) -> np.ndarray:
    """``config`` of ``source`` as the nearest configuration of a compatible ``target``."""
    out = np.zeros(target.n_knobs, dtype=np.int64)
    for k, (a, b) in enumerate(zip(source.knobs, target.knobs)):
        out[k] = _nearest(a.choices[int(config[k])], b.choices)
    return out


def distance(source: Space, target: Space) -> float:
    """How far apart two compatible spaces' loops are: the log-distance of the extents tiled."""
    return float(np.abs(np.log2(source.tiling_extents()) - np.log2(target.tiling_extents())).sum())


def starting_configs(
    target: Space, measured: Sequence[tuple[Space, Sequence[Sequence[int]]]], count: int = 2
) -> tuple[np.ndarray, int | None]:
    """Up to ``count`` configurations of ``target`` translated from the best ones of the most
    similar compatible measured task, and that task's index in ``measured`` (None: none fits).

    ``measured`` holds, per task, its space and its best configurations, best first.
    """
    fits = [i for i, (space, best) in enumerate(measured) if len(best) and compatible(space, target)]
    if not fits:
        return np.empty((0, target.n_knobs), dtype=np.int64), None
    source = min(fits, key=lambda i: distance(measured[i][0], target))
    space, best = measured[source]
    configs: list[np.ndarray] = []
    for config in best[:count]:
        translated = translate(config, space, target)
        if not any(np.array_equal(translated, c) for c in configs):
            configs.append(translated)
    return np.array(configs, dtype=np.int64), source


def nearest_stored(space: Space, stored: Sequence) -> list:
    """The stored workloads (``record_store.StoredWorkload``) a task with ``space`` learns from:
    compatible, nearest first, at most :data:`STORED_NEIGHBOURS`, each its latest
    :data:`STORED_TRIALS` trials."""
    fits = sorted((w for w in stored if len(w.latencies) and compatible(w.space, space)), key=lambda w: distance(w.space, space))
    return [w.latest(STORED_TRIALS) for w in fits[:STORED_NEIGHBOURS]]


def stored_measurements(neighbours: Sequence) -> list[tuple[Space, np.ndarray, np.ndarray]]:
    """The stored workloads' trials as the shared cost model's ``related`` takes them."""
    return [(w.space, w.configs, w.latencies) for w in neighbours]


def stored_programs(stored: Sequence) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every stored workload's described trials, whatever its knobs (the latest
    :data:`STORED_TRIALS` of each), as ``TaskContext.related_programs`` gives them."""
    return [(w.features, w.latencies) for w in (s.latest(STORED_TRIALS) for s in stored if s.features is not None)]


def stored_best(neighbours: Sequence) -> list[tuple[Space, np.ndarray]]:
    """The stored workloads' best configurations as :func:`starting_configs` takes them."""
    return [(w.space, w.best(STARTING_CONFIGS)) for w in neighbours]


def valid_starting_configs(
    target: Space, measured: Sequence[tuple[Space, Sequence[Sequence[int]]]], is_valid: Callable[[np.ndarray], bool]
) -> tuple[np.ndarray | None, int | None]:
    """:func:`starting_configs` that pass ``is_valid`` (TVM: the configuration schedules), and
    their source's index in ``measured``; ``(None, None)`` when none does."""
    configs, source = starting_configs(target, measured, STARTING_CONFIGS)
    configs = np.array([c for c in configs if is_valid(c)], dtype=np.int64)
    return (configs, source) if len(configs) else (None, None)


def _arity(knob) -> int:
    first = knob.choices[0]
    return len(first) if isinstance(first, tuple) else -1


def _nearest(choice, choices: tuple) -> int:
    if choice in choices:
        return choices.index(choice)
    if isinstance(choice, tuple):
        # Inner factors decide vector width and register blocking, outer ones only the split
        # between cores and cache: keep the inner ones first, adjust the outer ones.
        logs = np.log2(np.asarray(choices, dtype=np.float64))
        weights = INNER_WEIGHT ** np.arange(len(choice))
        return int(np.argmin((np.abs(logs - np.log2(np.asarray(choice, dtype=np.float64))) * weights).sum(axis=1)))
    if isinstance(choice, (int, float)) and all(isinstance(c, (int, float)) for c in choices):
        return int(np.argmin([abs(c - choice) for c in choices]))
    return 0
