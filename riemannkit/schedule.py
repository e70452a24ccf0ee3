"""RiemannOpt (Swain & Singhi, arXiv 2410.04118): where to put the n gradient evaluations.

The left-rule error on [α_i, α_{i+1}] is ½ g'(ξ_i) Δα_i² for some ξ_i in the interval, so the paper
bounds the total error by  B(α) = ½ Σ_i |g'(α_i)| (α_{i+1} − α_i)²,  estimates the mean |g'| once per
model and path (Algorithm 1) and places the points by minimising B with Powell's method.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn

from . import integrate as I
from . import paths as P


def estimate_gprime(
    model: nn.Module,
    x: torch.Tensor,
    path: str = "ig",
    k: int = 128,
    target=None,
    output: str = "prob",
    batch_size: int = 64,
    **path_kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 1: mean |g'(α)| over features and the m images ``x``, at k equispaced α.

    g(α) = ∇f(γ(α)) ⊙ γ'(α) is evaluated at α_j = j/k, j = 0..k; |g'(α_j)| is the element-wise
    absolute forward difference |g(α_{j+1}) − g(α_j)| / (1/k), averaged over the features of each
    image and then over the m images.  Returns ``(alpha_grid, gprime)``, both of length k; use
    :func:`gprime_at` to interpolate linearly in between.
    """
    if int(k) != k or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    path = P.check_path_name(path)
    x, target = I._prepare(model, x, target, batch_size)
    if x.shape[0] > batch_size:
        # The mean over m images is the size-weighted mean of per-batch means.
        parts = [
            (len(xc), estimate_gprime(model, xc, path, k, tc, output, batch_size, **path_kwargs))
            for xc, tc in zip(x.split(batch_size), target.split(batch_size))
        ]
        grid = parts[0][1][0]
        return grid, sum(m * gp for m, (_, gp) in parts) / x.shape[0]
    alphas = torch.linspace(0, 1, int(k) + 1, dtype=torch.float64)
    dalpha = 1.0 / k
    total = torch.zeros(int(k), dtype=torch.float64, device=x.device)
    if path == "guidedig":
        # The adaptive path exists only at its own steps: g on segment j is grad_j ⊙ Δx_j / Δα.
        grads, deltas = P.guided_ig(
            lambda pts: I.gradients(model, pts, target, output), x, alphas[:-1], **path_kwargs
        )
        g = grads * deltas / dalpha
        diff = (g[1:] - g[:-1]).abs() / dalpha  # (k-1, B, ...)
        total[: k - 1] = diff.flatten(2).mean(2).mean(1).double()
        total[k - 1] = total[k - 2]
        return alphas[:-1].numpy(), total.cpu().numpy()
    prev = None
    for sl, g in I.integrand_chunks(model, x, alphas, target, path, output, batch_size, **path_kwargs):
        seq = g if prev is None else torch.cat([prev, g])
        start = sl.start - (0 if prev is None else 1)
        d = (seq[1:] - seq[:-1]).abs().flatten(2).mean(2).mean(1).double() / dalpha
        total[start : start + len(d)] = d
        prev = g[-1:]
    return alphas[:-1].numpy(), total.cpu().numpy()


def gprime_at(alpha, grid: np.ndarray, gprime: np.ndarray) -> np.ndarray:
    """|g'| interpolated linearly at ``alpha`` (held constant past the grid's last point)."""
    return np.interp(alpha, grid, gprime)


def paper_bound(alphas, grid: np.ndarray, gprime: np.ndarray) -> float:
    """B(α) = ½ Σ_i |g'(α_i)| (α_{i+1} − α_i)² with α_n = 1 (the paper's bound)."""
    a = np.asarray(alphas, dtype=np.float64)
    d = np.diff(np.append(a, 1.0))
    return float(0.5 * np.sum(gprime_at(a, grid, gprime) * d**2))


def sup_bound(alphas, grid: np.ndarray, gprime: np.ndarray) -> float:
    """½ Σ_i max_{[α_i, α_{i+1}]} |g'| (α_{i+1} − α_i)²: the rigorous form of the bound (ξ_i anywhere
    in its interval), with |g'| taken as the linear interpolant of the estimate."""
    a = np.append(np.asarray(alphas, dtype=np.float64), 1.0)
    grid, gprime = np.asarray(grid, np.float64), np.asarray(gprime, np.float64)
    lo = np.searchsorted(grid, a[:-1], side="right")
    hi = np.searchsorted(grid, a[1:], side="left")
    ends = np.maximum(gprime_at(a[:-1], grid, gprime), gprime_at(a[1:], grid, gprime))
    # Max over the grid points strictly inside each interval, one reduceat for all intervals.
    padded = np.append(gprime, 0.0)
    inner = np.maximum.reduceat(padded, np.ravel(np.column_stack([lo, hi])))[::2]
    peak = np.where(hi > lo, np.maximum(ends, inner), ends)
    return float(0.5 * np.sum(peak * np.diff(a) ** 2))


BOUNDS = {"paper": paper_bound, "sup": sup_bound}


def _increments(theta: np.ndarray, floor: float) -> np.ndarray:
    w = np.abs(theta)
    s = w.sum()
    w = np.full_like(w, 1.0 / len(w)) if s == 0 else w / s
    return floor + (1.0 - floor * len(w)) * w


def fit_schedule(
    grid: np.ndarray, gprime: np.ndarray, n: int, min_gap: float = 0.2, maxiter: int | None = None,
    bound: str = "paper",
) -> np.ndarray:
    """Powell's method on B(α): n sorted left-rule points with α_0 = 0, started from linear spacing.

    ``bound='paper'`` minimises the paper's B (|g'| at each interval's left point); ``bound='sup'``
    minimises :func:`sup_bound`, which cannot be lowered by starting a long interval where |g'| ≈ 0
    just before a rise (the paper's bound can: see the error-bound chapter).

    The points are parameterised by n positive increments that sum to 1, each at least
    ``min_gap / n``: they stay ordered and distinct, and no point can collapse onto a neighbour
    (where |g'| ≈ 0 an unconstrained fit would otherwise pile points up and leave one huge interval).
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if bound not in BOUNDS:
        raise ValueError(f"unknown bound={bound!r}; accepted values: {', '.join(BOUNDS)}")
    if not 0 <= min_gap < 1:
        raise ValueError(f"min_gap must be in [0, 1) (a fraction of the linear spacing 1/n), got {min_gap!r}")
    grid, gprime = np.asarray(grid, np.float64), np.asarray(gprime, np.float64)
    if grid.shape != gprime.shape or grid.ndim != 1:
        raise ValueError(f"grid and gprime must be 1-D of equal length, got {grid.shape} and {gprime.shape}")
    if not np.isfinite(gprime).all() or (gprime < 0).any():
        raise ValueError("gprime must be finite and non-negative")
    n = int(n)
    if n == 1:
        return np.zeros(1)
    floor = min_gap / n

    def alphas_of(theta: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(_increments(theta, floor))[:-1]])

    def objective(theta: np.ndarray) -> float:
        return BOUNDS[bound](alphas_of(theta), grid, gprime)

    res = minimize(
        objective,
        np.ones(n),
        method="Powell",
        options={"maxiter": maxiter or 50 * n, "xtol": 1e-6, "ftol": 1e-10},
    )
    best = res.x if res.fun <= objective(np.ones(n)) else np.ones(n)
    return alphas_of(best)


def linear_schedule(n: int) -> np.ndarray:
    """The left rule's equispaced points 0, 1/n, …, (n−1)/n."""
    return np.arange(int(n)) / int(n)


def save_schedule(file: str | Path, alphas, *, model: str, path: str, k: int, m: int, grid, gprime, **extra) -> None:
    """Write a schedule and the |g'| estimate it came from as JSON."""
    a = I.check_alphas(alphas).numpy()
    record = {
        "model": model,
        "path": path,
        "k": int(k),
        "m": int(m),
        "n": len(a),
        "alphas": a.tolist(),
        "grid": np.asarray(grid).tolist(),
        "gprime": np.asarray(gprime).tolist(),
        "bound": paper_bound(a, np.asarray(grid), np.asarray(gprime)),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    Path(file).parent.mkdir(parents=True, exist_ok=True)
    Path(file).write_text(json.dumps(record, indent=1))


def load_schedule(file: str | Path) -> dict:
    """Read a schedule written by :func:`save_schedule`; ``alphas`` is validated and a numpy array."""
    p = Path(file)
    if not p.is_file():
        raise FileNotFoundError(f"schedule file {str(p)!r} does not exist")
    record = json.loads(p.read_text())
    missing = {"model", "path", "k", "m", "n", "alphas"} - set(record)
    if missing:
        raise ValueError(f"schedule file {str(p)!r} lacks {sorted(missing)}")
    record["alphas"] = I.check_alphas(record["alphas"]).numpy()
    if len(record["alphas"]) != record["n"]:
        raise ValueError(f"schedule file {str(p)!r}: n={record['n']} but {len(record['alphas'])} alphas")
    return record
