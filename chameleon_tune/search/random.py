"""Uniform random search: the floor every other strategy must beat."""

from __future__ import annotations

import numpy as np

from .base import Strategy, register


@register("random")
class RandomSearch(Strategy):
    def propose(self, n: int) -> np.ndarray:
        return self.random_unmeasured(n)
