"""Plot helpers shared by the reports: a median line with a band over seeds."""

from __future__ import annotations

import numpy as np


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def median_band(ax, x: np.ndarray, curves: np.ndarray, label: str, **style) -> None:
    """Median over rows of ``curves`` as a line, min..max as a shaded band."""
    (line,) = ax.plot(x, np.median(curves, axis=0), label=label, **style)
    ax.fill_between(x, curves.min(axis=0), curves.max(axis=0), alpha=0.2, color=line.get_color(), linewidth=0)
