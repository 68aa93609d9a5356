"""Plot helpers shared by the reports: a median line with a band over seeds."""

from __future__ import annotations

import numpy as np


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# From this many seeds on, the band is the interquartile range: over many seeds
# the full range is set by one lucky and one unlucky seed and hides the rest.
QUARTILE_BAND_FROM = 5


def band_name(n_seeds: int) -> str:
    """What :func:`median_band` shades for ``n_seeds`` rows, for plot titles."""
    return "interquartile range" if n_seeds >= QUARTILE_BAND_FROM else "range"


def median_band(ax, x: np.ndarray, curves: np.ndarray, label: str, **style) -> None:
    """Median over rows of ``curves`` as a line, the band named by :func:`band_name` shaded."""
    (line,) = ax.plot(x, np.median(curves, axis=0), label=label, **style)
    if len(curves) >= QUARTILE_BAND_FROM:
        low, high = np.percentile(curves, [25, 75], axis=0)
    else:
        low, high = curves.min(axis=0), curves.max(axis=0)
    ax.fill_between(x, low, high, alpha=0.2, color=line.get_color(), linewidth=0)
