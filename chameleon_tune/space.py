"""Knob spaces: ordered discrete knobs, configurations as integer index vectors.

Nothing here imports TVM, so every search algorithm also runs on recorded spaces.
A configuration is a vector of choice indices, one per knob; batches of them are
``(n, n_knobs)`` int64 arrays so that agents can move thousands at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

Config = tuple[int, ...]


@dataclass(frozen=True)
class Knob:
    """One tunable decision: a name and its ordered list of legal choices.

    The order matters: search agents move a knob by +-1, so neighbouring
    choices should be similar (e.g. tilings that differ in one factor).
    """

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"knob {self.name!r} has no choices")

    def __len__(self) -> int:
        return len(self.choices)

    def features(self) -> np.ndarray:
        """Numeric description of every choice, one row each (for the cost model).

        Tile factorizations become log2 of their factors and numbers log2(1+|x|), so
        the trees split on magnitudes; anything else is described by its index alone.
        """
        if all(_is_number(c) for c in self.choices):
            return np.log2(np.abs(np.asarray(self.choices, dtype=np.float64)) + 1.0)[:, None]
        arity = {len(c) if isinstance(c, tuple) else -1 for c in self.choices}
        if len(arity) == 1 and all(_is_number(v) for c in self.choices for v in c):
            return np.log2(np.abs(np.asarray(self.choices, dtype=np.float64)) + 1.0)
        return np.zeros((len(self.choices), 0))


@dataclass(frozen=True)
class Space:
    """An ordered product of knobs, with optional conditional knobs.

    ``conditions[i] = (j, v)`` means knob ``i`` only matters when knob ``j`` has
    index ``v`` (e.g. a knob of one sketch among several). Inactive knobs are set
    to 0 by :meth:`canonical`, so configurations that denote the same program
    share one key and are measured once.
    """

    knobs: tuple[Knob, ...]
    conditions: dict[int, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.knobs:
            raise ValueError("a space needs at least one knob")
        object.__setattr__(self, "dims", np.array([len(k) for k in self.knobs], dtype=np.int64))
        tables = [k.features() for k in self.knobs]
        object.__setattr__(self, "_feature_tables", tables)

    dims: np.ndarray = field(init=False, repr=False, compare=False)
    _feature_tables: list = field(init=False, repr=False, compare=False)

    @property
    def n_knobs(self) -> int:
        return len(self.knobs)

    @property
    def size(self) -> int:
        """Number of index vectors (conditional knobs not collapsed)."""
        return math.prod(int(d) for d in self.dims)

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.knobs]

    # -- sampling and moves -------------------------------------------------
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniformly random configurations."""
        return self.canonical(rng.integers(0, self.dims, size=(n, self.n_knobs)))

    def clip(self, configs: np.ndarray) -> np.ndarray:
        return np.clip(configs, 0, self.dims - 1)

    def canonical(self, configs: np.ndarray) -> np.ndarray:
        """Set inactive conditional knobs to index 0 (works on one config or a batch)."""
        configs = np.array(configs, dtype=np.int64, copy=True)
        if not self.conditions:
            return configs
        batch = configs.reshape(-1, self.n_knobs)
        for i, (j, v) in self.conditions.items():
            batch[batch[:, j] != v, i] = 0
        return batch.reshape(configs.shape)

    def neighbours(self, config: Sequence[int]) -> np.ndarray:
        """All configurations one knob step (+-1) away, canonical and in range."""
        config = np.asarray(config, dtype=np.int64)
        steps = np.concatenate([np.eye(self.n_knobs, dtype=np.int64), -np.eye(self.n_knobs, dtype=np.int64)])
        moved = config[None, :] + steps
        ok = np.all((moved >= 0) & (moved < self.dims), axis=1)
        moved = self.canonical(moved[ok])
        return np.unique(moved[np.any(moved != self.canonical(config), axis=1)], axis=0)

    def random_neighbour(self, configs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each row, another choice of one random knob (AutoTVM's SA move)."""
        configs = np.array(configs, dtype=np.int64, copy=True)
        movable = np.flatnonzero(self.dims > 1)
        if not len(movable):
            return configs
        rows = np.arange(len(configs))
        knob = movable[rng.integers(0, len(movable), size=len(configs))]
        # Draw among the dims-1 other choices so that every move changes the config.
        new = rng.integers(0, self.dims[knob] - 1)
        new = np.where(new >= configs[rows, knob], new + 1, new)
        configs[rows, knob] = new
        return self.canonical(configs)

    # -- descriptions ---------------------------------------------------------
    def normalized(self, configs: np.ndarray) -> np.ndarray:
        """Knob indices scaled to [0, 1] (the RL state)."""
        return np.asarray(configs, dtype=np.float32) / np.maximum(self.dims - 1, 1).astype(np.float32)

    def features(self, configs: np.ndarray) -> np.ndarray:
        """Cost-model features: normalized indices plus each knob's choice features."""
        configs = np.atleast_2d(np.asarray(configs, dtype=np.int64))
        parts = [self.normalized(configs)]
        parts += [table[configs[:, i]] for i, table in enumerate(self._feature_tables) if table.shape[1]]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def key(self, config: Iterable[int]) -> Config:
        """Hashable identity of a configuration (after canonicalization)."""
        return tuple(int(v) for v in self.canonical(np.fromiter(config, dtype=np.int64)))

    def keys(self, configs: np.ndarray) -> list[Config]:
        return [tuple(row) for row in self.canonical(configs).tolist()]

    def choices_of(self, config: Sequence[int]) -> dict[str, Any]:
        """The choice each knob takes, by knob name (for people and records)."""
        return {k.name: k.choices[int(i)] for k, i in zip(self.knobs, config)}

    def to_json(self) -> dict:
        return {
            "knobs": [{"name": k.name, "choices": [_jsonable(c) for c in k.choices]} for k in self.knobs],
            "conditions": {str(i): list(c) for i, c in self.conditions.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> "Space":
        knobs = tuple(Knob(k["name"], tuple(_from_jsonable(c) for c in k["choices"])) for k in data["knobs"])
        conditions = {int(i): (int(c[0]), int(c[1])) for i, c in data.get("conditions", {}).items()}
        return cls(knobs, conditions)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _jsonable(choice: Any) -> Any:
    return list(choice) if isinstance(choice, tuple) else choice


def _from_jsonable(choice: Any) -> Any:
    return tuple(choice) if isinstance(choice, list) else choice


def perfect_tilings(extent: int, n: int, max_innermost: int | None = None) -> list[tuple[int, ...]]:
    """Every way to write ``extent`` as an ordered product of ``n`` factors.

    With ``max_innermost`` the innermost factor is capped (MetaSchedule's
    ``max_innermost_factor``). Sorted innermost factor first, so that neighbours
    in the list keep the inner (cache- and vector-facing) tiles and differ
    outside: a +-1 step is a small change of tiling.
    """
    if extent < 1 or n < 1:
        raise ValueError("extent and n must be positive")

    def split(rest: int, parts: int) -> list[tuple[int, ...]]:
        if parts == 1:
            return [(rest,)]
        return [(d, *tail) for d in _divisors(rest) for tail in split(rest // d, parts - 1)]

    tilings = [t for t in split(extent, n) if max_innermost is None or t[-1] <= max_innermost]
    return sorted(tilings, key=lambda t: tuple(reversed(t)))


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
