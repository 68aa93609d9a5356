"""Exhaustive search (Kernel Tuner's brute force): every configuration in index order.

Only sensible on small spaces; it is how a space is measured completely so that
it can be exported with ``--export-cache`` and replayed.
"""

from __future__ import annotations

import itertools

import numpy as np

from .base import Strategy, TaskContext, register


@register("exhaustive")
class ExhaustiveSearch(Strategy):
    def __init__(self, task: TaskContext) -> None:
        super().__init__(task)
        # A lazy walk over index vectors; canonical() folds conditional knobs.
        self._walk = itertools.product(*(range(int(d)) for d in self.space.dims))

    def propose(self, n: int) -> np.ndarray:
        picked: dict = {}
        for index in self._walk:
            config = self.space.canonical(np.array(index, dtype=np.int64))
            key = self.space.key(config)
            if key not in picked and config not in self.history:
                picked[key] = config
                if len(picked) == n:
                    break
        return np.array(list(picked.values()), dtype=np.int64).reshape(-1, self.space.n_knobs)
