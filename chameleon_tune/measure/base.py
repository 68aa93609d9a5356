"""The measurement interface the tuner loop sees: configurations in, results out."""

from __future__ import annotations

import abc
from typing import Callable

import numpy as np

from ..space import Space
from .types import MeasureResult

#: Called with (index in batch, result) as soon as each trial is finished.
OnResult = Callable[[int, MeasureResult], None]


class Measurer(abc.ABC):
    """Evaluates configurations of one task's :class:`Space`.

    The TVM measurer compiles and times real kernels; a replay measurer looks
    recorded measurements up. Strategies never see which one they run on.
    """

    space: Space
    flops: float | None = None
    """Floating-point operations of one kernel call, for GFLOPS (None: unknown)."""
    build_s: float = 0.0
    """Wall time spent preparing and compiling so far (parallel builds count once)."""
    run_s: float = 0.0
    """Wall time spent running and timing kernels so far."""

    @abc.abstractmethod
    def measure(self, configs: np.ndarray, on_result: OnResult | None = None) -> list[MeasureResult]:
        """Evaluate each configuration; failures are results, never exceptions."""

    def retime(self, configs: np.ndarray, rounds: int) -> list[MeasureResult] | None:
        """Time ``configs`` again side by side, in ``rounds`` interleaved rounds.

        None where a timing cannot come out differently (a recorded space).
        """
        return None

    def close(self) -> None:
        """Release worker processes."""

    def __enter__(self) -> "Measurer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
