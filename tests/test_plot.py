"""RiemannOpt's Figure 2 panel: where its legend goes."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from riemannkit import plot  # noqa: E402


def panel(legend):
    fig, ax = plt.subplots()
    grid = np.linspace(0, 1, 9)
    plot.gprime_with_points(ax, grid, grid ** 2, {"linear": np.linspace(0, 1, 4, endpoint=False)}, legend=legend)
    return fig, ax


def test_legend_outside_lies_right_of_the_axes_and_none_draws_none():
    fig, ax = panel("outside")
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    assert box.x0 >= ax.get_window_extent().x1
    _, ax = panel(None)
    assert ax.get_legend() is None and len(ax.get_legend_handles_labels()[0]) == 2
    plt.close("all")


def test_unknown_legend_place_is_rejected():
    with pytest.raises(ValueError, match="legend="):
        panel("top")
