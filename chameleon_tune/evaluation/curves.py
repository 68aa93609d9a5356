"""Best-so-far curves and "reached at": the arithmetic behind every comparison.

Shared by ``chameleon replay`` (against a recorded space's optimum) and
``chameleon compare`` (against the reference strategy's final best), so both
answer "when was this level first met?" the same way.
"""

from __future__ import annotations

import numpy as np


def fraction_of(latencies: np.ndarray, target_s: float) -> np.ndarray:
    """After each trial: ``target_s`` over the best latency so far (0 before any valid trial).

    1.0 means the target was met; failed trials are ``inf`` latencies.
    """
    best = np.minimum.accumulate(np.asarray(latencies, dtype=np.float64)) if len(latencies) else np.zeros(0)
    with np.errstate(divide="ignore"):
        return np.where(np.isfinite(best), target_s / best, 0.0)


def reached(fraction: np.ndarray, clock: np.ndarray, level: float = 1.0) -> tuple[int | None, float | None]:
    """(trials, clock value) when ``fraction >= level`` first held; ``(None, None)``: never."""
    hits = np.flatnonzero(np.asarray(fraction) >= level - 1e-12)
    if not len(hits):
        return None, None
    return int(hits[0]) + 1, float(clock[hits[0]])


def median_cost(costs: list[float | None]) -> float | None:
    """Median cost over runs, a run that never reached (``None``) counting as infinitely costly.

    ``None`` when that median is infinite: more runs failed than succeeded, so no
    honest typical cost exists.
    """
    if not costs:
        return None
    median = float(np.median([np.inf if c is None else c for c in costs]))
    return median if np.isfinite(median) else None


def mean_fraction(fraction: np.ndarray, length: int) -> float:
    """Area under a best-so-far fraction curve over ``length`` trials, as a mean in [0, 1].

    A curve shorter than ``length`` (a run that stopped early) is held at its
    last value. Unlike "reached at", this credits getting close without hitting
    a level, so it stays stable on spaces where few configurations are near the
    optimum and a single lucky trial decides when a level is first met.
    """
    fraction = np.asarray(fraction, dtype=np.float64)[:length]
    if not len(fraction):
        return 0.0
    return float((fraction.sum() + fraction[-1] * (length - len(fraction))) / length)


def mean_and_sem(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    sem = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return float(values.mean()), float(sem)
