"""Knob spaces: ordered discrete knobs, configurations as integer index vectors.

Nothing here imports TVM, so every search algorithm also runs on recorded spaces.
A configuration is a vector of choice indices, one per knob; batches of them are
``(n, n_knobs)`` int64 arrays so that agents can move thousands at once.

A space may carry restrictions known up front (:class:`ValidSet`: the configurations
a Kernel Tuner cache holds, say): sampling, moves and neighbours then stay inside
them, so no strategy ever proposes a configuration that does not exist.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

Config = tuple[int, ...]

#: Redraws of a random one-knob move that left a restricted space, before the row stays put.
NEIGHBOUR_TRIES = 16


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
        if len(arity) == 1 and -1 not in arity and all(_is_number(v) for c in self.choices for v in c):
            return np.log2(np.abs(np.asarray(self.choices, dtype=np.float64)) + 1.0)
        return np.zeros((len(self.choices), 0))


class ValidSet:
    """Restrictions known up front, as the explicit set of valid configurations.

    Held as the sorted mixed-radix codes of the index vectors (row-major, so code
    order is index order): membership of a batch is one ``searchsorted`` and a
    uniform draw one index into the set, fast with tens of thousands of valid
    configurations among millions, where rejection sampling in the product is not.
    """

    def __init__(self, configs: np.ndarray, dims: np.ndarray) -> None:
        self.dims = np.asarray(dims, dtype=np.int64)
        if math.prod(int(d) for d in self.dims) >= 2**63:
            raise ValueError("the space has too many configurations for an explicit set of valid ones")
        self.codes = np.unique(self.encode(configs))
        if not len(self.codes):
            raise ValueError("a restricted space needs at least one valid configuration")

    def __len__(self) -> int:
        return len(self.codes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValidSet) and np.array_equal(self.dims, other.dims) and np.array_equal(self.codes, other.codes)

    def encode(self, configs: np.ndarray) -> np.ndarray:
        configs = np.asarray(configs, dtype=np.int64).reshape(-1, len(self.dims))
        return np.ravel_multi_index(tuple(configs.T), tuple(self.dims)) if len(configs) else np.zeros(0, dtype=np.int64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.stack(np.unravel_index(codes, tuple(self.dims)), axis=1).astype(np.int64).reshape(-1, len(self.dims))

    def contains(self, configs: np.ndarray) -> np.ndarray:
        """One bool per row of ``configs`` (in range, canonical)."""
        codes = self.encode(configs)
        at = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        return self.codes[at] == codes

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.decode(self.codes[rng.integers(0, len(self.codes), size=n)])


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
    valid: ValidSet | None = None
    """The only configurations that exist (None: every one does); see :meth:`restricted`."""

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
        """Number of index vectors (conditional knobs not collapsed; restrictions not applied)."""
        return math.prod(int(d) for d in self.dims)

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.knobs]

    def restricted(self, configs: np.ndarray) -> "Space":
        """This space with only ``configs`` valid (canonicalized; duplicates are fine).

        A set that excludes nothing is no restriction: the space stays unrestricted
        and samples exactly as before.
        """
        valid = ValidSet(self.canonical(configs), self.dims)
        return Space(self.knobs, self.conditions, None if len(valid) == self.size else valid)

    # -- sampling and moves -------------------------------------------------
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniformly random valid configurations."""
        if self.valid is not None:
            return self.valid.sample(rng, n)
        return self.canonical(rng.integers(0, self.dims, size=(n, self.n_knobs)))

    def valid_mask(self, configs: np.ndarray) -> np.ndarray:
        """One bool per configuration (a batch, or one as a batch of one): does it satisfy the restrictions?"""
        configs = self.canonical(np.atleast_2d(np.asarray(configs, dtype=np.int64)))
        return np.ones(len(configs), dtype=bool) if self.valid is None else self.valid.contains(configs)

    def configurations(self) -> Iterator[np.ndarray]:
        """Every valid configuration in index order, canonical (conditional duplicates not removed)."""
        if self.valid is not None:
            yield from self.valid.decode(self.valid.codes)
            return
        for index in itertools.product(*(range(int(d)) for d in self.dims)):
            yield self.canonical(np.array(index, dtype=np.int64))

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
        """All valid configurations one knob step (+-1) away, canonical and in range."""
        config = np.asarray(config, dtype=np.int64)
        steps = np.concatenate([np.eye(self.n_knobs, dtype=np.int64), -np.eye(self.n_knobs, dtype=np.int64)])
        moved = config[None, :] + steps
        ok = np.all((moved >= 0) & (moved < self.dims), axis=1)
        moved = self.canonical(moved[ok])
        moved = moved[self.valid_mask(moved)]
        return np.unique(moved[np.any(moved != self.canonical(config), axis=1)], axis=0)

    def random_neighbour(self, configs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each row, another choice of one random knob (AutoTVM's SA move).

        In a restricted space a move that leaves it is drawn again, up to
        ``NEIGHBOUR_TRIES`` times (the first valid draw is uniform over the valid
        moves); a row without one in that many stays where it is.
        """
        configs = np.array(configs, dtype=np.int64, copy=True).reshape(-1, self.n_knobs)
        movable = np.flatnonzero(self.dims > 1)
        if not len(movable):
            return configs
        moved, pending = configs.copy(), np.arange(len(configs))
        for _try in range(NEIGHBOUR_TRIES if self.valid is not None else 1):
            rows, index = configs[pending], np.arange(len(pending))
            knob = movable[rng.integers(0, len(movable), size=len(rows))]
            # Draw among the dims-1 other choices so that every move changes the config.
            new = rng.integers(0, self.dims[knob] - 1)
            rows[index, knob] = np.where(new >= rows[index, knob], new + 1, new)
            rows = self.canonical(rows)
            ok = self.valid_mask(rows)
            moved[pending[ok]] = rows[ok]
            pending = pending[~ok]
            if not len(pending):
                break
        return moved

    def step(self, configs: np.ndarray, steps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each row moved by its per-knob ``steps``, held at each knob's bounds.

        In a restricted space the restrictions are a wall like the bounds: a row
        whose whole move leaves the space takes its knob steps one at a time, in
        a random order per row, keeping each that stays inside.
        """
        configs = np.asarray(configs, dtype=np.int64)
        moved = self.canonical(np.clip(configs + steps, 0, self.dims - 1))
        outside = np.flatnonzero(~self.valid_mask(moved))
        if not len(outside):
            return moved
        current, rows = configs[outside].copy(), np.arange(len(outside))
        for knob in np.argsort(rng.random((len(outside), self.n_knobs)), axis=1).T:
            trial = current.copy()
            trial[rows, knob] = np.clip(current[rows, knob] + steps[outside, knob], 0, self.dims[knob] - 1)
            trial = self.canonical(trial)
            ok = self.valid_mask(trial)
            current[ok] = trial[ok]
        moved[outside] = current
        return moved

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

    def transferable_features(self, configs: np.ndarray) -> np.ndarray:
        """Cost-model features that mean the same in every space of the same knobs (a model's
        convolutions: the same sketches over other extents), so that measurements of one task
        rank the configurations of another: each choice by its value (log2 of tile factors and
        numbers; its normalized index only where it has no value), then the task's shape (log2
        of the extent each tiling splits, 0 for other knobs), the same in every row."""
        configs = np.atleast_2d(np.asarray(configs, dtype=np.int64))
        scaled = self.normalized(configs)
        parts = [table[configs[:, i]] if table.shape[1] else scaled[:, i : i + 1] for i, table in enumerate(self._feature_tables)]
        parts.append(np.broadcast_to(np.log2(self.tiling_extents()), (len(configs), self.n_knobs)))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def tiling_extents(self) -> np.ndarray:
        """The extent each tiling knob splits (its factors' product); 1 for other knobs."""
        return np.array([float(np.prod(k.choices[0])) if isinstance(k.choices[0], tuple) else 1.0 for k in self.knobs])

    def key(self, config: Iterable[int]) -> Config:
        """Hashable identity of a configuration (after canonicalization)."""
        return tuple(int(v) for v in self.canonical(np.fromiter(config, dtype=np.int64)))

    def keys(self, configs: np.ndarray) -> list[Config]:
        return [tuple(row) for row in self.canonical(configs).tolist()]

    def choices_of(self, config: Sequence[int]) -> dict[str, Any]:
        """The choice each knob takes, by knob name (for people and records)."""
        return {k.name: k.choices[int(i)] for k, i in zip(self.knobs, config)}

    def to_json(self) -> dict:
        data = {
            "knobs": [{"name": k.name, "choices": [_jsonable(c) for c in k.choices]} for k in self.knobs],
            "conditions": {str(i): list(c) for i, c in self.conditions.items()},
        }
        if self.valid is not None:
            data["valid"] = self.valid.decode(self.valid.codes).tolist()
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Space":
        knobs = tuple(Knob(k["name"], tuple(_from_jsonable(c) for c in k["choices"])) for k in data["knobs"])
        conditions = {int(i): (int(c[0]), int(c[1])) for i, c in data.get("conditions", {}).items()}
        space = cls(knobs, conditions)
        return space.restricted(np.array(data["valid"], dtype=np.int64)) if "valid" in data else space


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
