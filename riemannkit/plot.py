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
