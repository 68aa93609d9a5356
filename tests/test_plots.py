"""The band drawn around a median curve: the range over a few seeds, the quartiles over many."""

import numpy as np
import pytest

from chameleon_tune.evaluation.plots import band_name, median_band, pyplot


@pytest.mark.parametrize(
    "rows, low, high",
    [
        ([[0.0, 0.0], [1.0, 1.0], [4.0, 4.0]], 0.0, 4.0),  # 3 seeds: min..max
        ([[0.0] * 2, [1.0] * 2, [2.0] * 2, [3.0] * 2, [100.0] * 2], 1.0, 3.0),  # 5 seeds: quartiles, outlier ignored
    ],
)
def test_median_band_shades_range_or_quartiles(rows, low, high):
    plt = pyplot()
    fig, ax = plt.subplots()
    median_band(ax, np.arange(2), np.array(rows), "s")
    shaded = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert (shaded.min(), shaded.max()) == (low, high)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.median(rows, axis=0))
    plt.close(fig)
    assert band_name(len(rows)) == ("range" if len(rows) < 5 else "interquartile range")
