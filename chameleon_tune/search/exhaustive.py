"""Exhaustive search (Kernel Tuner's brute force): every configuration in index order.

Only sensible on small spaces; it is how a space is measured completely so that
it can be exported with ``--export-cache`` and replayed.
"""

from __future__ import annotations

import numpy as np

from .base import Strategy, TaskContext, register


@register("exhaustive")
class ExhaustiveSearch(Strategy):
    def __init__(self, task: TaskContext) -> None:
        super().__init__(task)
        # A lazy walk over the valid index vectors; conditional knobs come folded.
        self._walk = self.space.configurations()

    def propose(self, n: int) -> np.ndarray:
        picked: dict = {}
        for config in self._walk:
            key = self.space.key(config)
            if key not in picked and config not in self.history:
                picked[key] = config
                if len(picked) == n:
                    break
        return np.array(list(picked.values()), dtype=np.int64).reshape(-1, self.space.n_knobs)
