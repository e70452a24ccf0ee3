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


def test_integrand_with_nodes_draws_each_curve_rule_and_zoom():
    alpha = np.linspace(0, 1, 257)
    spike = np.exp(-((alpha - 0.3) / 0.01) ** 2) * 40
    curves = {"float64": spike, "float32": spike * (1 + 1e-3)}
    nodes = {"left": (np.arange(8) / 8, np.interp(np.arange(8) / 8, alpha, spike)),
             "right": (np.arange(1, 9) / 8, np.interp(np.arange(1, 9) / 8, alpha, spike))}
    gprime = {"float64": np.abs(np.diff(spike)) * 256}
    fig = plot.integrand_with_nodes(alpha, curves, nodes, gprime, zoom=(0.25, 0.35), title="synthetic")
    axes = fig.axes
    assert len(axes) == 4
    labels = axes[0].get_legend_handles_labels()[1]
    assert labels == ["float64", "float32", "left (8 nodes)", "right (8 nodes)"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == labels  # one legend, below the panels
    assert axes[1].get_xlim() == pytest.approx((0.25, 0.35)) and axes[1].get_ylim()[1] == pytest.approx(1.1 * curves["float32"].max())
    assert axes[2].get_yscale() == "log" and axes[0].get_xlim() == (0, 1)
    # the nodes sit on the curve; their tick rows lie below the axis
    xs, ys = axes[0].lines[2].get_data()
    assert np.allclose(ys, np.interp(xs, alpha, spike)) and (axes[0].lines[3].get_data()[1] < 0).all()
    one = plot.integrand_with_nodes(alpha, curves, nodes)
    assert len(one.axes) == 1
    plt.close("all")


def test_integrand_with_nodes_rejects_bad_shapes_and_zoom():
    alpha = np.linspace(0, 1, 9)
    with pytest.raises(ValueError, match="curve 'x' must be 1-D"):
        plot.integrand_with_nodes(alpha, {"x": np.ones(10)}, {})
    with pytest.raises(ValueError, match="zoom must be"):
        plot.integrand_with_nodes(alpha, {"x": np.ones(9)}, {}, zoom=(0.5, 0.2))
    plt.close("all")


def test_claim_intervals_draws_one_interval_per_cell_the_papers_marks_and_zero():
    import matplotlib

    matplotlib.use("Agg")
    from riemannkit import plot as PL

    cells = [{"row": "IG, n = 16", "series": "cpu", "mean": -0.1, "low": -0.2, "high": 0.01, "paper": -0.3},
             {"row": "IG, n = 16", "series": "cuda", "mean": -0.09, "low": -0.19, "high": 0.02, "paper": -0.3},
             {"row": "IG, n = 32", "series": "cpu", "mean": 0.05, "low": 0.01, "high": 0.1, "paper": None}]
    fig = PL.claim_intervals(cells, title="t")
    ax = fig.axes[0]
    assert "\n" in PL.claim_intervals(cells, title="word " * 30).axes[0].get_title()  # wrapped, not cut off
    assert [t.get_text() for t in ax.get_yticklabels()] == ["IG, n = 16", "IG, n = 32"]
    assert len(ax.containers) == 2  # one errorbar series per variant
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.lines)  # the zero line
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cpu", "cuda", "paper"]
    with pytest.raises(ValueError, match="lacks \\['high'\\]"):
        PL.claim_intervals([{"row": "a", "series": "s", "mean": 0, "low": 0}])
    with pytest.raises(ValueError, match="low <= mean <= high"):
        PL.claim_intervals([{"row": "a", "series": "s", "mean": 1, "low": 0, "high": 0.5}])
    with pytest.raises(ValueError, match="empty"):
        PL.claim_intervals([])
