"""Figures the chapters share."""
from __future__ import annotations

import numpy as np
import torch


def gprime_with_points(ax, grid: np.ndarray, gprime: np.ndarray, schedules: dict, title: str = "",
                       legend: str | None = "best") -> None:
    """|g'(α)| curve with each schedule's points as a row of ticks below it (RiemannOpt's Figure 2).

    ``legend``: "best" (inside the axes), "outside" (right of the axes, never over the curve) or None
    (no legend: a figure with several panels draws one for all, e.g. ``fig.legend(*ax.get_legend_handles_labels())``)."""
    if legend not in ("best", "outside", None):
        raise ValueError(f"legend={legend!r}; accepted values: 'best', 'outside', None")
    ax.plot(grid, gprime, color="k", lw=1.5, label=r"$|g'(\alpha)|$")
    top = float(np.max(gprime)) or 1.0
    for i, (name, alphas) in enumerate(schedules.items()):
        y = -top * (0.08 + 0.1 * i)
        ax.plot(alphas, np.full(len(alphas), y), "|", ms=10, mew=1.5, label=f"{name} ({len(alphas)} points)")
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel(r"mean $|g'(\alpha)|$")
    ax.set_xlim(0, 1)
    ax.set_title(title)
    if legend == "best":
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    elif legend == "outside":
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def saliency_image(attr: torch.Tensor, q: float = 0.99) -> np.ndarray:
    """(C, H, W) attribution → (H, W) map of Σ_c |attr| scaled to [0, 1] at its ``q`` quantile."""
    m = attr.detach().abs().sum(0).cpu().numpy()
    hi = np.quantile(m, q)
    return np.clip(m / hi, 0, 1) if hi > 0 else m


def show_image(ax, x: torch.Tensor, title: str = "") -> None:
    """Show a (3, H, W) colour or (1, H, W) grey [0, 1] image without axes."""
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"x must be a (3, H, W) or (1, H, W) image, got shape {tuple(x.shape)}")
    img = x.detach().clamp(0, 1).cpu()
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def saliency_grid(x: torch.Tensor, maps: dict, names: list | None = None, q: float = 0.99, size: float = 1.8):
    """Rows = images, columns = the image then :func:`saliency_image` of each (B, C, H, W) map (the IDGI study's Figure 1)."""
    import matplotlib.pyplot as plt

    b = x.shape[0]
    for k, a in maps.items():
        if a.shape[0] != b:
            raise ValueError(f"maps[{k!r}] holds {a.shape[0]} maps for {b} images")
    fig, axes = plt.subplots(b, 1 + len(maps), figsize=(size * (1 + len(maps)), size * b), squeeze=False)
    for i in range(b):
        show_image(axes[i, 0], x[i], names[i] if names is not None else "")
        for j, (label, a) in enumerate(maps.items(), 1):
            axes[i, j].imshow(saliency_image(a[i], q), cmap="gray", vmin=0, vmax=1)
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(label, fontsize=9)
    fig.tight_layout()
    return fig


def integrand_with_nodes(alpha: np.ndarray, curves: dict, nodes: dict, gprime: dict | None = None,
                         zoom: tuple[float, float] | None = None, title: str = "", size: tuple[float, float] = (9.0, 6.5)):
    """The summed integrand h(α) = Σ_i g_i(α) = d f(γ(α))/dα with each rule's nodes marked, and |g'(α)| beneath.

    ``curves``: {label: h on ``alpha``} (one line per arithmetic variant); ``nodes``: {rule: (nodes, h at the nodes)}:
    markers on the curve and, below the axis, a row of ticks per rule; ``gprime``: {label: Algorithm 1's |g'| on
    alpha[:len]} drawn on a log scale (where the error bound is large); ``zoom``: an (α_lo, α_hi) window drawn again,
    enlarged, on the right.  Returns the figure."""
    import matplotlib.pyplot as plt

    alpha = np.asarray(alpha, dtype=float)
    for label, h in {**curves, **(gprime or {})}.items():
        if np.ndim(h) != 1 or not 0 < len(h) <= len(alpha):
            raise ValueError(f"curve {label!r} must be 1-D with at most len(alpha) = {len(alpha)} values, got shape {np.shape(h)}")
    if zoom is not None and not (len(zoom) == 2 and 0 <= zoom[0] < zoom[1] <= 1):
        raise ValueError(f"zoom must be (α_lo, α_hi) with 0 <= α_lo < α_hi <= 1, got {zoom!r}")
    rows, cols = (2 if gprime else 1), (2 if zoom else 1)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, sharex="col",
                             gridspec_kw={"width_ratios": [2, 1] if zoom else [1], "height_ratios": [3, 2] if gprime else [1]})
    markers = "ov^sDP*Xh"
    top = max(float(np.max(np.abs(h))) for h in curves.values()) or 1.0
    for j, ax in enumerate(axes[0]):
        for label, h in curves.items():
            ax.plot(alpha[: len(h)], h, lw=1.0, label=label, alpha=0.9)
        for i, (rule, (a, v)) in enumerate(nodes.items()):
            a, v = np.asarray(a, dtype=float), np.asarray(v, dtype=float)
            line, = ax.plot(a, v, markers[i % len(markers)], ms=4, mfc="none", label=f"{rule} ({len(a)} nodes)")
            ax.plot(a, np.full(len(a), -top * (0.06 + 0.06 * i)), "|", ms=6, color=line.get_color())
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel(r"$h(\alpha)=\sum_i g_i(\alpha)$" if j == 0 else "")
        if j == 1:
            ax.set_xlim(*zoom)
            inside = [np.asarray(h)[(alpha[: len(h)] >= zoom[0]) & (alpha[: len(h)] <= zoom[1])] for h in curves.values()]
            hi = max((float(np.max(v)) for v in inside if v.size), default=top)
            lo = min((float(np.min(v)) for v in inside if v.size), default=0.0)
            ax.set_ylim(min(1.1 * lo, -top * (0.08 + 0.06 * len(nodes))), 1.1 * hi)
            ax.set_title(f"α in [{zoom[0]:.3g}, {zoom[1]:.3g}]", fontsize=9)
        else:
            ax.set_xlim(0, 1)
            ax.set_title(title, fontsize=10)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=4, fontsize=7, frameon=False)
    if gprime:
        for j, ax in enumerate(axes[1]):
            for label, gp in gprime.items():
                ax.semilogy(alpha[: len(gp)], np.maximum(gp, np.finfo(float).tiny), lw=0.8, label=label)
            ax.set_xlabel(r"$\alpha$")
            ax.set_ylabel(r"mean $|g'(\alpha)|$" if j == 0 else "")
        axes[1, 0].legend(fontsize=7, loc="best")
    else:
        for ax in axes[0]:
            ax.set_xlabel(r"$\alpha$")
    fig.tight_layout(rect=(0, 0.04 + 0.025 * ((len(names) + 3) // 4), 1, 1))  # room for the legend below the panels
    return fig


def tolerance_dots(ax, names: list[str], gradients: np.ndarray, needed: dict[str, np.ndarray], n95: dict[str, float],
                   top: float, title: str = "") -> None:
    """Per photo (x), the adaptive run's gradients and the fixed n each fixed method needs for that photo (log₂ y; a
    photo beyond the largest stored n is drawn above ``top``), with a dashed line at each method's n for 95 % of photos."""
    x = np.arange(len(names))
    ax.plot(x, gradients, "o", color="k", ms=5, label="adaptive: gradients used", zorder=3)
    for (label, n), marker in zip(needed.items(), ("s", "^", "v")):
        shown = np.where(np.isfinite(n), n, 2 * top)
        line = ax.plot(x, shown, marker, ms=5, mfc="none", label=f"{label}: n this photo needs")[0]
        if np.isfinite(n95.get(label, np.inf)):
            ax.axhline(n95[label], ls="--", lw=1, color=line.get_color(), label=f"{label}: n for 95 % of photos")
    ax.axhline(top, ls=":", lw=0.8, color="0.5")
    ax.set_yscale("log", base=2)
    ax.set_xticks(x, names, rotation=90, fontsize=6)
    ax.set_ylabel("gradient evaluations per image")
    ax.set_title(title, fontsize=9)


def nodes_over_curve(ax, alpha: np.ndarray, curve: np.ndarray, nodes: dict[str, np.ndarray], title: str = "",
                     ylabel: str | None = None) -> None:
    """A photo's integrand size along the path with each tolerance's nodes as a row of ticks below it (``ylabel``
    None: the integrand's norm)."""
    # The default lives in the body: the API page shows signatures without MathJax, so TeX there shows raw.
    ylabel = r"$\|g(\alpha)\|_2$" if ylabel is None else ylabel
    ax.plot(alpha, curve, color="k", lw=1)
    top = float(np.max(curve)) or 1.0
    for i, (label, a) in enumerate(nodes.items()):
        ax.plot(a, np.full(len(a), -top * (0.08 + 0.1 * i)), "|", ms=8, mew=1, label=f"{label} ({len(a)} nodes)")
    ax.set_xlim(0, 1)
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best", framealpha=0.85)


def claim_intervals(cells: list[dict], title: str = "", xlabel: str = "mean paired difference (ours − baseline), 95 % CI",
                    width: float = 7.5, paper_label: str = "paper"):
    """Dot-and-interval picture of claim cells: per row (e.g. "IG, n = 32") the mean paired difference with its 95 % CI
    for each series (a numerics variant, a model), the paper's difference as a black ×, and the zero line, so a
    verdict is seen without reading numbers (an interval clear of 0 on the claim's side holds).

    ``cells``: dicts with 'row', 'series', 'mean', 'low', 'high' and optionally 'paper' (None: no marker).
    Rows and series are drawn in first-seen order; ``paper_label`` names the × in the legend.  Returns the figure."""
    import matplotlib.pyplot as plt

    need = ("row", "series", "mean", "low", "high")
    for i, c in enumerate(cells):
        missing = [k for k in need if k not in c]
        if missing:
            raise ValueError(f"cells[{i}] lacks {missing}; each cell needs {list(need)} (and optionally 'paper')")
        if not c["low"] <= c["mean"] <= c["high"]:
            raise ValueError(f"cells[{i}]: low <= mean <= high fails ({c['low']}, {c['mean']}, {c['high']})")
    if not cells:
        raise ValueError("cells is empty: nothing to draw")
    rows = list(dict.fromkeys(c["row"] for c in cells))
    series = list(dict.fromkeys(c["series"] for c in cells))
    fig, ax = plt.subplots(figsize=(width, 0.9 + 0.32 * len(rows) * max(1, len(series)) ** 0.5))
    step = 0.7 / max(len(series), 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for j, s in enumerate(series):
        mine = [c for c in cells if c["series"] == s]
        y = np.array([rows.index(c["row"]) for c in mine], dtype=float) - 0.35 + step * (j + 0.5)
        mean = np.array([c["mean"] for c in mine])
        err = np.array([[c["mean"] - c["low"] for c in mine], [c["high"] - c["mean"] for c in mine]])
        handles.append(ax.errorbar(mean, y, xerr=err, fmt="o", ms=4, capsize=2, lw=1.2, color=colours[j % len(colours)], label=s))
    paper = [(rows.index(c["row"]), c["paper"]) for c in cells if c.get("paper") is not None]
    if paper:
        seen = dict(paper)  # one marker a row
        handles += ax.plot(list(seen.values()), list(seen.keys()), "x", color="k", ms=7, mew=1.5, label=paper_label)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(xlabel, fontsize=9)
    if title:
        import textwrap

        ax.set_title(textwrap.fill(title, 80), fontsize=10)  # a long title wraps instead of running off the figure
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(axis="x", lw=0.3, alpha=0.5)
    fig.tight_layout()
    return fig
