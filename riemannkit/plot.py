"""Figures the chapters share."""
from __future__ import annotations

import numpy as np
import torch


def gprime_with_points(ax, grid: np.ndarray, gprime: np.ndarray, schedules: dict, title: str = "") -> None:
    """|g'(α)| curve with each schedule's points as a row of ticks below it (RiemannOpt's Figure 2)."""
    ax.plot(grid, gprime, color="k", lw=1.5, label=r"$|g'(\alpha)|$")
    top = float(np.max(gprime)) or 1.0
    for i, (name, alphas) in enumerate(schedules.items()):
        y = -top * (0.08 + 0.1 * i)
        ax.plot(alphas, np.full(len(alphas), y), "|", ms=10, mew=1.5, label=f"{name} ({len(alphas)} points)")
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel(r"mean $|g'(\alpha)|$")
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best", framealpha=0.85)


def saliency_image(attr: torch.Tensor, q: float = 0.99) -> np.ndarray:
    """(C, H, W) attribution → (H, W) map of Σ_c |attr| scaled to [0, 1] at its ``q`` quantile."""
    m = attr.detach().abs().sum(0).cpu().numpy()
    hi = np.quantile(m, q)
    return np.clip(m / hi, 0, 1) if hi > 0 else m


def show_image(ax, x: torch.Tensor, title: str = "") -> None:
    """Show a (3, H, W) [0, 1] image without axes."""
    ax.imshow(x.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    ax.set_title(title, fontsize=9)
    ax.axis("off")
