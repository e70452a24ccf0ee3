"""RiemannOpt (Swain & Singhi, arXiv 2410.04118): where to put the n gradient evaluations.

The left-rule error on [α_i, α_{i+1}] is ½ g'(ξ_i) Δα_i² for some ξ_i in the interval, so the paper
bounds the total error by  B(α) = ½ Σ_i |g'(α_i)| (α_{i+1} − α_i)²,  estimates the mean |g'| once per
model and path (Algorithm 1) and places the points by minimising B with Powell's method.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn
from tqdm.auto import tqdm

from . import integrate as I
from . import paths as P
from . import quadrature as Q
from . import validate as V


@V.evaluates_model
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
    grid, gprime, _ = per_image_derivatives(model, x, path, k, target, output, batch_size, **path_kwargs)
    return grid, gprime.mean(0)


def gprime_at(alpha, grid: np.ndarray, gprime: np.ndarray) -> np.ndarray:
    """|g'| interpolated linearly at ``alpha`` (held constant past the grid's last point)."""
    return np.interp(alpha, grid, gprime)


def paper_bound(alphas, grid: np.ndarray, gprime: np.ndarray) -> float:
    """B(α) = ½ Σ_i |g'(α_i)| (α_{i+1} − α_i)² with α_n = 1 (the paper's bound)."""
    grid, gprime = _check_curve(grid, gprime)
    return _paper(I.check_alphas(alphas).numpy(), grid, gprime)  # 0 first, increasing, < 1: α_n = 1 closes [0, 1]


def _paper(a: np.ndarray, grid: np.ndarray, gprime: np.ndarray) -> float:
    d = np.diff(np.append(a, 1.0))
    return float(0.5 * np.sum(gprime_at(a, grid, gprime) * d**2))


def sup_bound(alphas, grid: np.ndarray, gprime: np.ndarray) -> float:
    """½ Σ_i max_{[α_i, α_{i+1}]} |g'| (α_{i+1} − α_i)²: the rigorous form of the bound (ξ_i anywhere
    in its interval), with |g'| taken as the linear interpolant of the estimate."""
    grid, gprime = _check_curve(grid, gprime)
    return _sup(I.check_alphas(alphas).numpy(), grid, gprime)


def _sup(alphas: np.ndarray, grid: np.ndarray, gprime: np.ndarray) -> float:
    a = np.append(alphas, 1.0)
    lo = np.searchsorted(grid, a[:-1], side="right")
    hi = np.searchsorted(grid, a[1:], side="left")
    ends = np.maximum(gprime_at(a[:-1], grid, gprime), gprime_at(a[1:], grid, gprime))
    # Max over the grid points strictly inside each interval, one reduceat for all intervals.
    padded = np.append(gprime, 0.0)
    inner = np.maximum.reduceat(padded, np.ravel(np.column_stack([lo, hi])))[::2]
    peak = np.where(hi > lo, np.maximum(ends, inner), ends)
    return float(0.5 * np.sum(peak * np.diff(a) ** 2))


def _check_curve(grid, gprime) -> tuple[np.ndarray, np.ndarray]:
    """A |g'| (or |g''|) curve sampled on a grid that covers [0, 1]: it starts at 0, stays in [0, 1] and ends within
    one grid step of 1 (Algorithm 1's grid j/k stops at 1 − 1/k; past the last point the curve is held constant)."""
    grid, gprime = np.asarray(grid, np.float64), np.asarray(gprime, np.float64)
    if grid.shape != gprime.shape or grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"grid and gprime must be 1-D of equal length, got {grid.shape} and {gprime.shape}")
    if not np.isfinite(grid).all() or np.any(np.diff(grid) <= 0):
        raise ValueError("grid must be finite and strictly increasing")
    step = np.diff(grid).max() if grid.size > 1 else 1.0
    if grid[0] != 0 or grid[-1] > 1 or 1 - grid[-1] > step * (1 + 1e-9):
        raise ValueError(f"grid must cover [0, 1]: start at 0, end at most one grid step below 1 and never pass 1 "
                         f"(Algorithm 1's j/k, j = 0..k−1), got [{grid[0]:.6g}, {grid[-1]:.6g}] with steps up to {step:.6g}")
    if not np.isfinite(gprime).all() or (gprime < 0).any():
        raise ValueError("gprime must be finite and non-negative")
    return grid, gprime


def _pieces(ends: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted breakpoints: ``ends`` plus the grid points strictly inside (ends[0], ends[-1]).

    Between consecutive breakpoints the |g'| interpolant of :func:`gprime_at` is linear (it is
    constant outside the grid), so anything linear in |g'| can be integrated exactly piece by piece.
    Also returns, per piece, the index i of the schedule interval [ends[i], ends[i+1]] holding it.
    """
    inner = grid[(grid > ends[0]) & (grid < ends[-1])]
    pts = np.union1d(ends, inner)
    idx = np.searchsorted(ends, pts[:-1], side="right") - 1
    return pts, idx


def faithful_bound(alphas, grid: np.ndarray, gprime: np.ndarray) -> float:
    """Σ_i ∫_{α_i}^{α_{i+1}} |g'(t)| (α_{i+1} − t) dt with α_n = 1: the exact left-rule error kernel.

    The left rule's error on one interval is E_i = ∫ g'(t) (α_{i+1} − t) dt (Taylor with integral
    remainder), so this is a bound on Σ_i |E_i| ≥ |E| for the |g'| it is given.  It is computed exactly
    for the piecewise-linear |g'| interpolant of :func:`gprime_at`: on each piece the integrand is a
    product of two linear functions, which Simpson's rule integrates without error.  It never exceeds
    :func:`sup_bound` (same interpolant; the weight α_{i+1} − t integrates to ½Δα²) and has no fixed
    order with the paper's bound; unlike the paper's bound it sees a peak of |g'| anywhere inside an
    interval, weighted by its distance from the interval's right end.  The grid should cover [0, 1]:
    past its last point |g'| is held constant (Algorithm 1's grid stops at 1 − 1/k), which can put the
    bound below the true error of a |g'| that keeps rising there.
    """
    grid, gprime = _check_curve(grid, gprime)
    return _faithful(I.check_alphas(alphas).numpy(), grid, gprime)


def _faithful(a: np.ndarray, grid: np.ndarray, gprime: np.ndarray) -> float:
    ends = np.append(a, 1.0)
    pts, idx = _pieces(ends, grid)
    u, v = pts[:-1], pts[1:]
    b = ends[idx + 1]
    pu, pv = gprime_at(u, grid, gprime), gprime_at(v, grid, gprime)
    wu, wv = b - u, b - v
    # ∫_u^v p w for linear p, w: (v − u)/6 · (p_u w_u + 4 p_m w_m + p_v w_v) = (v − u)/6 · (2 p_u w_u + p_u w_v + p_v w_u + 2 p_v w_v)
    return float(np.sum((v - u) / 6.0 * (2 * pu * wu + pu * wv + pv * wu + 2 * pv * wv)))


def density_schedule(n: int, grid: np.ndarray, gprime: np.ndarray, power: float = 0.5, floor: float = 0.1) -> np.ndarray:
    """Left-rule points α_i = F⁻¹(i/n), i = 0..n−1, for the point density ρ ∝ |g'|^power mixed with uniform.

    In the continuum limit a schedule is a density ρ (∫ρ = 1) with spacing Δα ≈ 1/(nρ), and every bound
    here (paper, faithful, sup) tends to ½ Σ |g'| Δα² ≈ (1/2n) ∫ |g'|/ρ dα.  Minimising that under
    ∫ρ = 1 (Lagrange, or Cauchy–Schwarz) gives ρ* ∝ |g'|^{1/2} and the bound (1/2n)(∫ |g'|^{1/2})²:
    ``power=0.5`` is that optimum, and no optimiser is needed.

    ``floor`` ∈ [0, 1] mixes in the uniform density: ρ = (1 − floor)·|g'|^p / ∫|g'|^p + floor.  Where
    |g'| ≈ 0 the pure optimum would leave one interval as long as the flat region (the estimate of |g'|
    can be wrong there, and the left rule then misses whatever it missed); with ``floor`` > 0 every
    interval is at most 1/(n·floor) long, and ``floor=1`` is the linear schedule.  If |g'| is zero
    everywhere the schedule is linear.  |g'| is the piecewise-linear interpolant of :func:`gprime_at`
    over [0, 1]; F is integrated exactly per linear piece and inverted by bisection within its piece
    (to ~1e-15), so the result is exact for that interpolant.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not (np.isfinite(power) and power >= 0):
        raise ValueError(f"power must be a finite number >= 0, got {power!r}")
    if not (np.isfinite(floor) and 0 <= floor <= 1):
        raise ValueError(f"floor must be in [0, 1] (the weight of the uniform density), got {floor!r}")
    grid, gprime = _check_curve(grid, gprime)
    n = int(n)
    pts, _ = _pieces(np.array([0.0, 1.0]), grid)
    vals = gprime_at(pts, grid, gprime)
    pu, pv, width = vals[:-1], vals[1:], np.diff(pts)
    q = power + 1.0

    def piece_integral(pu, pv, width):
        # ∫ over a piece of (linear p)^power: width·(p_v^q − p_u^q)/(q (p_v − p_u)), or width·p^power if flat.
        dp = pv - pu
        # (nearly) flat pieces by the midpoint value: relative error ~ (dp/p)² / 24 < 1e-13, no cancellation
        flat = np.abs(dp) <= 1e-6 * np.maximum(np.maximum(pu, pv), 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = width * (pv**q - pu**q) / (q * dp)
        return np.where(flat, width * (0.5 * (pu + pv)) ** power, slope)

    mass = piece_integral(pu, pv, width)
    total = mass.sum()
    if total <= 0 or floor == 1:
        return linear_schedule(n)
    # F at the breakpoints; (1 − floor)·mass/total + floor·width sums to 1 over the pieces.
    cdf_pts = np.concatenate([[0.0], np.cumsum((1 - floor) * mass / total + floor * width)])
    targets = np.arange(1, n) / n
    # The piece holding each target, then bisection on the exact CDF within it.
    j = np.clip(np.searchsorted(cdf_pts, targets, side="left") - 1, 0, len(width) - 1)
    lo, hi = pts[j], pts[j + 1]
    u, w, a, b = pts[j], width[j], pu[j], pv[j]

    def cdf(t):
        part = piece_integral(a, a + (b - a) * (t - u) / w, t - u)
        return cdf_pts[j] + (1 - floor) * part / total + floor * (t - u)

    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = cdf(mid) < targets
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    alphas = np.concatenate([[0.0], 0.5 * (lo + hi)])
    # Strictly increasing by construction (F is strictly increasing where it matters); guard round-off.
    if np.any(np.diff(alphas) <= 0) or alphas[-1] >= 1:
        raise FloatingPointError("density_schedule produced coincident points; raise floor")
    return alphas


def _faithful_objective(grid: np.ndarray, gprime: np.ndarray):
    """A fast form of :func:`faithful_bound` for the optimiser: O(n log k) per schedule.

    With M0(t) = ∫_0^t |g'| and M1(t) = ∫_0^t u |g'(u)| du (piecewise cubic, exact from cumulative sums
    at the breakpoints), interval i contributes α_{i+1}(M0(α_{i+1}) − M0(α_i)) − (M1(α_{i+1}) − M1(α_i)).
    This agrees with the Simpson form to ~1e-10 relative (cancellation in the differences).
    """
    xs, _ = _pieces(np.array([0.0, 1.0]), grid)
    ps = gprime_at(xs, grid, gprime)
    w = np.diff(xs)
    slope = np.diff(ps) / w
    c0 = np.concatenate([[0.0], np.cumsum(w * (ps[:-1] + ps[1:]) / 2)])
    c1 = np.concatenate([[0.0], np.cumsum(w / 6 * (xs[:-1] * ps[:-1] + (xs[:-1] + xs[1:]) * (ps[:-1] + ps[1:]) + xs[1:] * ps[1:]))])

    def moments(t):
        k = np.clip(np.searchsorted(xs, t, side="right") - 1, 0, len(w) - 1)
        d = t - xs[k]
        pt = ps[k] + slope[k] * d
        m0 = c0[k] + d * (ps[k] + pt) / 2
        m1 = c1[k] + d / 6 * (xs[k] * ps[k] + (2 * xs[k] + d) * (ps[k] + pt) + t * pt)
        return m0, m1

    def value(alphas) -> float:
        ends = np.append(np.asarray(alphas, np.float64), 1.0)
        m0, m1 = moments(ends)
        return float(np.sum(ends[1:] * np.diff(m0) - np.diff(m1)))

    return value


BOUNDS = {"paper": paper_bound, "sup": sup_bound, "faithful": faithful_bound}
INITS = ("linear", "density")


def _increments(theta: np.ndarray, floor: float) -> np.ndarray:
    w = np.abs(theta)
    s = w.sum()
    w = np.full_like(w, 1.0 / len(w)) if s == 0 else w / s
    return floor + (1.0 - floor * len(w)) * w


def fit_schedule(
    grid: np.ndarray, gprime: np.ndarray, n: int, min_gap: float = 0.2, maxiter: int | None = None,
    bound: str = "paper", init: str = "linear",
) -> np.ndarray:
    """Powell's method on a bound: n sorted left-rule points with α_0 = 0.

    ``bound='paper'`` minimises the paper's B (|g'| at each interval's left point); ``bound='sup'``
    minimises :func:`sup_bound`, and ``bound='faithful'`` the exact left-rule error kernel
    :func:`faithful_bound`.  Neither of the last two can be lowered by starting a long interval where
    |g'| ≈ 0 just before a rise (the paper's bound can: see the error-bound chapter).

    ``init='linear'`` starts Powell from equal spacing (RiemannOpt); ``init='density'`` starts it from
    :func:`density_schedule` (the continuum optimum of all three bounds, ρ ∝ √|g'|, with its default
    uniform floor), projected onto the ``min_gap`` constraint.  The result is never worse in the
    chosen bound than its start.

    The points are parameterised by n positive increments that sum to 1, each at least
    ``min_gap / n``: they stay ordered and distinct, and no point can collapse onto a neighbour
    (where |g'| ≈ 0 an unconstrained fit would otherwise pile points up and leave one huge interval).
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if bound not in BOUNDS:
        raise ValueError(f"unknown bound={bound!r}; accepted values: {', '.join(BOUNDS)}")
    if init not in INITS:
        raise ValueError(f"unknown init={init!r}; accepted values: {', '.join(INITS)}")
    if not 0 <= min_gap < 1:
        raise ValueError(f"min_gap must be in [0, 1) (a fraction of the linear spacing 1/n), got {min_gap!r}")
    grid, gprime = _check_curve(grid, gprime)
    n = int(n)
    if n == 1:
        return np.zeros(1)
    floor = min_gap / n

    def alphas_of(theta: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(_increments(theta, floor))[:-1]])

    if bound == "faithful":
        value = _faithful_objective(grid, gprime)
    else:  # the unchecked forms: alphas_of always gives a valid partition, and Powell calls this thousands of times
        value = lambda a: {"paper": _paper, "sup": _sup}[bound](a, grid, gprime)  # noqa: E731

    def objective(theta: np.ndarray) -> float:
        return value(alphas_of(theta))

    if init == "linear":
        start = np.ones(n)
    else:
        gaps = np.diff(np.append(density_schedule(n, grid, gprime), 1.0))
        start = np.maximum(gaps - floor, 0.0)  # increments = floor + (1 − n·floor)·start/Σstart
        if start.sum() == 0:
            start = np.ones(n)
    res = minimize(
        objective,
        start,
        method="Powell",
        options={"maxiter": maxiter or 50 * n, "xtol": 1e-6, "ftol": 1e-10},
    )
    best = res.x if res.fun <= objective(start) else start
    return alphas_of(best)


def linear_schedule(n: int) -> np.ndarray:
    """The left rule's equispaced points 0, 1/n, …, (n−1)/n (n >= 1)."""
    n = V.check_count(n, "n")
    return np.arange(n) / n


def save_schedule(
    file: str | Path, alphas, *, model: str, path: str, k: int, m: int, grid, gprime, overwrite: bool = False, **extra
) -> None:
    """Write a schedule and the |g'| estimate it came from as JSON; never replaces a file unless ``overwrite``."""
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite={overwrite!r} must be True or False")
    if Path(file).exists() and not overwrite:
        raise FileExistsError(
            f"schedule file {str(file)!r} exists and would be replaced; pass overwrite=True to replace it, "
            f"or choose a new file name"
        )
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
    try:
        record = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"schedule file {str(p)!r} is not valid JSON ({err}); rewrite it with save_schedule") from None
    if not isinstance(record, dict):
        raise ValueError(f"schedule file {str(p)!r} holds a {type(record).__name__}, not a schedule record")
    missing = {"model", "path", "k", "m", "n", "alphas"} - set(record)
    if missing:
        raise ValueError(f"schedule file {str(p)!r} lacks {sorted(missing)}")
    try:
        record["alphas"] = I.check_alphas(record["alphas"]).numpy()
    except (ValueError, TypeError) as err:
        raise ValueError(f"schedule file {str(p)!r}: {err}") from None
    if len(record["alphas"]) != record["n"]:
        raise ValueError(f"schedule file {str(p)!r}: n={record['n']} but {len(record['alphas'])} alphas")
    return record


# ------------------------------------------------------------------ higher-order rules on a schedule
# The midpoint and trapezoid rules on a partition 0 = α_0 < … < α_n = 1 (integrate.schedule_nodes) have
# per-interval errors  g''(ξ_i) Δα_i³ / 24  (midpoint) and  −g''(ξ_i) Δα_i³ / 12  (trapezoid), so their
# bounds read |g''| where the left rule's read |g'|.  Algorithm 1's analogue estimates the mean |g''|
# by second differences on the same grid, from the same gradient evaluations as |g'|.


@V.evaluates_model
def estimate_gderivatives(
    model: nn.Module,
    x: torch.Tensor,
    path: str = "ig",
    k: int = 128,
    target=None,
    output: str = "prob",
    batch_size: int = 64,
    **path_kwargs,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean |g'| and mean |g''| over features and images from one set of k + 1 integrand evaluations.

    Returns ``(grid, gprime, gsecond)``, each of length k with grid α_j = j/k (j = 0..k−1).  ``gprime`` is
    exactly :func:`estimate_gprime` (forward differences |g(α_{j+1}) − g(α_j)|·k).  ``gsecond[j]`` is the
    element-wise absolute second difference |g(α_{j+1}) − 2 g(α_j) + g(α_{j−1})|·k² (centred at α_j),
    averaged over the features of each image and then over the images; at j = 0, where no centred
    difference exists, it repeats j = 1.  Use :func:`gprime_at` to interpolate either curve.  Adaptive
    paths (Guided IG, SAMP) use their segment integrands, as :func:`estimate_gprime` does.
    """
    grid, gprime, gsecond = per_image_derivatives(model, x, path, k, target, output, batch_size, **path_kwargs)
    return grid, gprime.mean(0), gsecond.mean(0)


@V.evaluates_model
def per_image_derivatives(
    model: nn.Module,
    x: torch.Tensor,
    path: str = "ig",
    k: int = 128,
    target=None,
    output: str = "prob",
    batch_size: int = 64,
    **path_kwargs,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Algorithm 1 per image: ``(grid (k,), gprime (B, k), gsecond (B, k))``, |g'| and |g''| averaged over each
    image's features only; their means over the images are :func:`estimate_gderivatives`.

    One set of k + 1 integrand evaluations per image, images × alphas batched ``batch_size`` at a time."""
    k = V.check_count(k, "k", minimum=2, maximum=Q.MAX_EVALUATIONS, why_max="k + 1 gradient evaluations per image")
    alphas = torch.linspace(0, 1, k + 1, dtype=torch.float64)
    plan = I.make_plan(model, path, output=output, engine=I.Engine(batch_size=batch_size), nodes=alphas, **path_kwargs)
    checks = V.DeviceChecks()
    x, plan = plan.prepare(x, target, checks, total_per_image=k + 1)
    parts = [_per_image_derivatives(p, x[sl], k, checks) for sl, p in plan.batches(x)]
    checks.settle()
    return tuple([alphas[:-1].numpy()] + [torch.cat([p[j] for p in parts]).cpu().numpy() for j in (0, 1)])


def _per_image_derivatives(plan: I.Plan, x: torch.Tensor, k: int, checks: V.DeviceChecks) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`per_image_derivatives` on images that fit in a pass: (gprime (B, k), gsecond (B, k)) on the device."""
    alphas = plan.nodes
    dalpha = 1.0 / k
    d1 = torch.zeros(k, x.shape[0], dtype=torch.float64, device=x.device)
    d2 = torch.zeros(k, x.shape[0], dtype=torch.float64, device=x.device)

    def reduce(t: torch.Tensor) -> torch.Tensor:
        return t.abs().flatten(2).mean(2).double()  # (rows, B): the mean over each image's features

    if plan.path.adaptive:
        # An adaptive path (Guided IG, SAMP) exists only at its own steps: g on segment j is
        # grad_j ⊙ Δx_j / Δα (SAMP 'both': the mean of its two directions' segments).
        run = I.adaptive_run(plan, x, alphas[:-1], checks, ends=False)
        g = P.segment_integrands(run.grads, run.deltas, k) / dalpha  # (k, B, ...): g on each of the k segments
        d1[: k - 1] = reduce(g[1:] - g[:-1]) / dalpha
        d1[k - 1] = d1[k - 2]
        if k >= 3:
            d2[1 : k - 1] = reduce(g[2:] - 2 * g[1:-1] + g[:-2]) / dalpha**2
            d2[k - 1] = d2[k - 2]
        d2[0] = d2[1]
        checks.add(torch.isfinite(d1).all(), I._not_finite)
        return d1.T, d2.T
    tail = None  # the last (up to) two integrand rows of the previous chunk
    for sl, g in I.integrand_chunks(plan, x, checks=checks):
        seq = g if tail is None else torch.cat([tail, g])
        start = sl.start - (0 if tail is None else len(tail))
        if len(seq) >= 2:
            d = reduce(seq[1:] - seq[:-1]) / dalpha  # forward difference at α_{start + i}
            d1[start : start + len(d)] = d
        if len(seq) >= 3:
            c = reduce(seq[2:] - 2 * seq[1:-1] + seq[:-2]) / dalpha**2  # centred at α_{start + 1 + i}
            d2[start + 1 : start + 1 + len(c)] = c[: max(0, k - start - 1)]
        tail = seq[-2:]
    d2[0] = d2[1]
    return d1.T, d2.T


def estimate_gsecond(
    model: nn.Module,
    x: torch.Tensor,
    path: str = "ig",
    k: int = 128,
    target=None,
    output: str = "prob",
    batch_size: int = 64,
    **path_kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 1 for |g''|: ``(grid, gsecond)`` by second differences (see :func:`estimate_gderivatives`,
    which also returns |g'| from the same gradient evaluations)."""
    grid, _, g2 = estimate_gderivatives(model, x, path, k, target, output, batch_size, **path_kwargs)
    return grid, g2


def _partition(alphas) -> np.ndarray:
    """α_0 … α_n (α_n = 1 appended) of a validated schedule."""
    return np.append(I.check_alphas(alphas).numpy(), 1.0)


def _interval_peaks(ends: np.ndarray, grid: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """max over each [ends[i], ends[i+1]] of the linear interpolant of ``curve``."""
    lo = np.searchsorted(grid, ends[:-1], side="right")
    hi = np.searchsorted(grid, ends[1:], side="left")
    edge = np.maximum(gprime_at(ends[:-1], grid, curve), gprime_at(ends[1:], grid, curve))
    inner = np.maximum.reduceat(np.append(curve, 0.0), np.ravel(np.column_stack([lo, hi])))[::2]
    return np.where(hi > lo, np.maximum(edge, inner), edge)


def _cubic_bound(alphas, grid, gsecond, const: float, sup: bool) -> float:
    grid, gsecond = _check_curve(grid, gsecond)
    ends = _partition(alphas)
    d = np.diff(ends)
    val = _interval_peaks(ends, grid, gsecond) if sup else gprime_at(0.5 * (ends[:-1] + ends[1:]), grid, gsecond)
    return float(const * np.sum(val * d**3))


def midpoint_bound(alphas, grid: np.ndarray, gsecond: np.ndarray, sup: bool = False) -> float:
    """(1/24) Σ_i |g''| Δα_i³ on the partition α_0 … α_n = 1: the midpoint rule's error bound.

    |g''| is read at each interval's midpoint (the analogue of the paper's bound), or with ``sup=True``
    as its maximum over the interval (the rigorous form: ξ_i can be anywhere in it)."""
    return _cubic_bound(alphas, grid, gsecond, 1.0 / 24.0, sup)


def trapezoid_bound(alphas, grid: np.ndarray, gsecond: np.ndarray, sup: bool = False) -> float:
    """(1/12) Σ_i |g''| Δα_i³: the trapezoid rule's error bound on the partition (twice the midpoint's)."""
    return _cubic_bound(alphas, grid, gsecond, 1.0 / 12.0, sup)


def cubic_density_schedule(n: int, grid: np.ndarray, gsecond: np.ndarray, floor: float = 0.1) -> np.ndarray:
    """The partition α_0 … α_{n−1} (α_n = 1 implied) with point density ρ ∝ |g''|^{1/3} (mixed with uniform).

    For the midpoint and trapezoid rules the bound is c Σ |g''| Δα³ with Δα ≈ 1/(nρ), i.e. in the
    continuum (c/n²) ∫ |g''|/ρ² dα.  Under ∫ρ = 1 the Lagrange condition −2|g''|/ρ³ + λ = 0 gives
    ρ* ∝ |g''|^{1/3}, and the bound becomes (c/n²)(∫ |g''|^{1/3})³ (Hölder: never above the uniform
    spacing's (c/n²) ∫ |g''|).  This is :func:`density_schedule` with ``power=1/3``; ``floor`` as there.
    Pass the result as ``alphas`` with ``rule='midpoint'`` (n evaluations) or ``rule='trapezoid'`` (n + 1).
    """
    return density_schedule(n, grid, gsecond, power=1.0 / 3.0, floor=floor)


# ------------------------------------------------------------------ RiemannOpt as its authors run it
# The released code (ShreeSinghi/RiemannOpt, utils.py: compute_alphas; newig.py) differs from the paper's
# text (eq. 6–9, the left sum and its left-point bound) in three places: the |g'| profile is the median
# of per-image curves each divided by its own sum, smoothed in log space; the bound reads |g'| at the
# RIGHT end of each interval; and the attribution sums gradients at right ends.  Both are kept here:
# ``fit_released_schedule`` (the released recipe) and ``fit_schedule`` (the paper's left bound).
RELEASED_WINDOW = 11  # Bartlett window length in compute_alphas' smooth()


def smooth_log_bartlett(values, window: int = RELEASED_WINDOW) -> np.ndarray:
    """The reference's ``smooth``: Bartlett-weighted moving average with reflected ends, ``len + 1`` values.

    The series is padded with ``window − 1`` reflected samples each side (numpy 'reflect': the end sample is
    not repeated), convolved with ``bartlett(window) / sum`` ('valid') and sliced ``[window//2 : 1 − window//2]``.
    That slice keeps one value too many: output i (i < len) is the window centred on sample i, and the extra
    last value is the window centred on the first reflected sample (values[−2]).  Reproduced as released;
    ``window == 1`` returns the values unchanged (the reference's ``window_len < 3`` branch).
    """
    x = np.asarray(values, dtype=np.float64)
    if isinstance(window, bool) or int(window) != window or window < 1 or (window > 1 and window % 2 == 0):
        raise ValueError(f"window must be 1 (no smoothing) or an odd integer >= 3, got {window!r}")
    window = int(window)
    if x.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {x.shape}")
    if window == 1:
        return x.copy()
    if x.size < window:
        raise ValueError(f"values must have at least window={window} samples to be reflected, got {x.size}")
    padded = np.concatenate([x[window - 1 : 0 : -1], x, x[-2 : -window - 1 : -1]])
    w = np.bartlett(window)
    y = np.convolve(w / w.sum(), padded, mode="valid")
    return y[window // 2 : 1 - window // 2]


def released_gprime_profile(per_image_gprime, window: int = RELEASED_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """The released |g'| profile from per-image Algorithm-1 curves (m, k): ``(grid, profile)``.

    Each image's curve is divided by its own sum (so every image weighs the same whatever its scale), the
    element-wise median over images is taken, its log is smoothed by :func:`smooth_log_bartlett` and
    exponentiated.  With ``window`` > 1 the profile has k + 1 values (the reference's slice), placed on
    ``grid = linspace(0, 1, len(profile))`` as the reference's interp1d does: for curves on Algorithm 1's
    grid j/k (:func:`per_image_derivatives`) value j stays at j/k and α = 1 gets the mirrored value.
    (The reference also keeps only the first 5000 images, ``outputs[:sample]``: pass at most that many to match it.
    Its IG curve drops the last difference, ``magnitude[:, :-1]``: which curve to pass is the caller's choice.)
    """
    c = np.asarray(per_image_gprime, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 2:
        raise ValueError(f"per_image_gprime must be a 2-D array (m images, k values) with k >= 2, got shape {c.shape}")
    if not np.isfinite(c).all() or (c < 0).any():
        raise ValueError("per_image_gprime must be finite and non-negative")
    sums = c.sum(1, keepdims=True)
    if (sums <= 0).any():
        raise ValueError(f"per_image_gprime: image(s) {np.flatnonzero(sums[:, 0] <= 0).tolist()} have an all-zero curve")
    median = np.median(c / sums, axis=0)
    if (median <= 0).any():
        raise ValueError(
            f"per_image_gprime: the median profile is 0 at index {int(np.flatnonzero(median <= 0)[0])}; "
            "its log (the released smoothing) needs positive values"
        )
    profile = np.exp(smooth_log_bartlett(np.log(median), window))
    return np.linspace(0.0, 1.0, len(profile)), profile


def _released_interp(grid, profile):
    from scipy.interpolate import interp1d

    grid, profile = np.asarray(grid, np.float64), np.asarray(profile, np.float64)
    if grid.ndim != 1 or grid.shape != profile.shape or grid.size < 4:
        raise ValueError(f"grid and profile must be 1-D of equal length >= 4 (cubic), got {grid.shape} and {profile.shape}")
    if not (np.isfinite(grid).all() and np.isfinite(profile).all()) or np.any(np.diff(grid) <= 0):
        raise ValueError("grid must be finite and strictly increasing, and profile finite")
    if grid[0] != 0 or grid[-1] != 1:
        raise ValueError(f"grid must run from 0 to 1, got [{grid[0]:.6g}, {grid[-1]:.6g}]")
    return interp1d(grid, profile, kind="cubic")


def _check_released_alphas(alphas) -> np.ndarray:
    a = np.asarray(alphas, dtype=np.float64)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"alphas must be 1-D with n + 1 >= 2 points (0 first, 1 last), got shape {a.shape}")
    if not np.isfinite(a).all() or a[0] != 0 or np.any(np.diff(a) < 0) or abs(a[-1] - 1) > 1e-9:
        raise ValueError("alphas must be finite, non-decreasing, start at 0 and end at 1 (the released schedule)")
    return a


def released_bound(alphas, grid, profile) -> float:
    """½ Σ_i Δα_i² |g'(α_i)| with |g'| read at the RIGHT end α_i of interval i (the released objective).

    ``alphas`` is a released schedule α_0 = 0 ≤ α_1 ≤ … ≤ α_n = 1 (n + 1 points); |g'| is the cubic
    interpolant of ``(grid, profile)`` (:func:`released_gprime_profile`)."""
    a = _check_released_alphas(alphas)
    f = _released_interp(grid, profile)
    return float(np.sum(0.5 * np.diff(a) ** 2 * f(np.minimum(a[1:], 1.0))))


def fit_released_schedule(grid, profile, n: int) -> np.ndarray:
    """The released RiemannOpt schedule: n + 1 points 0 = α_0 ≤ … ≤ α_n = 1 minimising :func:`released_bound`.

    As ``compute_alphas``: ``minimize(error, x0=ones(n), bounds=[(0, None)]*n, method='Powell')`` (scipy's
    default options) over increments Δα, normalised to sum 1 inside the objective; α_i = cumsum(Δα)_i capped
    at 1 (the reference's ``np.clip(0, 1, alphas)`` has its arguments out of order: it computes
    min(alphas, 1), which is what is meant for round-off); error Σ ½ Δα_i² |g'(α_i)| with the cubic
    interp1d of the profile.  Returns ``append(0, cumsum(Δα/ΣΔα))``.  Increments may be exactly 0 (Powell's
    bound): :func:`released_attribute_args` merges such empty intervals.  An all-zero trial point (the
    reference would divide by 0) is given an infinite error.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer (intervals), got {n!r}")
    n = int(n)
    f = _released_interp(grid, profile)

    def error(d: np.ndarray) -> float:
        s = d.sum()
        if not s > 0:
            return np.inf
        d = d / s
        a = np.minimum(np.cumsum(d), 1.0)
        return float(np.sum(0.5 * np.square(d) * f(a)))

    res = minimize(error, x0=np.ones(n), bounds=[(0, None)] * n, method="Powell")
    d = np.asarray(res.x, dtype=np.float64)
    d = d / d.sum()
    return np.append(0.0, np.minimum(np.cumsum(d), 1.0))


def released_attribute_args(alphas, path: str = "ig") -> dict:
    """Keyword arguments for :func:`riemannkit.attribute` that compute the authors' sum at a released schedule.

    For a closed-form path: ``rule='right'`` on the partition, i.e. Σ_{i=1..n} g(α_i)·γ'(α_i)·(α_i − α_{i−1}),
    which for IG is the reference's Σ ∇f(γ(α_i))·(γ(α_i) − γ(α_{i−1})) exactly (its BlurIG also multiplies
    the σ-derivative by Δσ).  For an adaptive path (Guided IG) ``rule='left'``: the reference's NewGIG steps
    towards α_1 … α_n taking the gradient at each step's start, as Guided IG always does.  Empty intervals
    (Δα = 0, which contribute 0) are dropped and the last point is set to 1 exactly, so the call may make
    fewer than n gradient evaluations; ``alphas`` in the result excludes α_n = 1 (riemannkit's convention).
    """
    a = _check_released_alphas(alphas)
    keep = np.concatenate([[True], np.diff(a) > 0])
    pts = a[keep]
    if pts[-1] < 1.0:
        pts[-1] = 1.0  # cumsum may end at 1 − ε: the partition ends at 1
    rule = "left" if P.check_path_name(path) in P.ADAPTIVE_PATHS else "right"
    return {"rule": rule, "alphas": pts[:-1]}


class Recipe(NamedTuple):
    """A named way of placing n gradient evaluations and summing them."""

    label: str  # for a table row
    rule: str  # integration rule passed to riemannkit.attribute
    description: str


RECIPES: dict[str, Recipe] = {
    "linear_left": Recipe("left", "left", "n equispaced points 0, 1/n, …, (n−1)/n, left Riemann sum (the paper's eq. 6)."),
    "linear_right": Recipe(
        "right", "right",
        "n equispaced points 1/n, …, 1, right Riemann sum: the authors' IG and BlurIG baselines sum gradients at "
        "right ends (their IG also evaluates α = 0 and discards it); Guided IG takes only the left sum.",
    ),
    "riemannopt": Recipe(
        "RiemannOpt", "right",
        "RiemannOpt as released: median of per-image sum-normalised |g'| curves, log-Bartlett(11) smoothing, cubic "
        "interpolation, Powell on the right-endpoint bound, right sum (left for Guided IG) — fit_released_schedule.",
    ),
    "riemannopt_paper_left": Recipe(
        "RiemannOpt, paper's left bound", "left",
        "RiemannOpt as the paper writes it: mean |g'| (Algorithm 1), Powell on eq. 9's left-point bound with a gap "
        "floor of 0.2/n, left sum — fit_schedule(bound='paper').",
    ),
    "gausslegendre": Recipe("Gauss–Legendre", "gausslegendre", "n-point Gauss–Legendre nodes on [0, 1]; no schedule; closed-form paths only."),
    "density": Recipe(
        "√|g′| density", "left",
        "Left sum at the closed-form continuum optimum of the bound, point density ∝ √|g'| of the mean curve mixed "
        "with 10 % uniform — density_schedule(power=0.5, floor=0.1).",
    ),
}


# ------------------------------------------------------------------------------ schedules of a study
# Fitting several budgets at once, where along the path g changes, and how far apart two schedules are.
def fit_schedules(
    model: nn.Module, x_calib: torch.Tensor, paths: list[str], steps: list[int], k: int,
    batch_size: int = 64, path_kwargs: dict | None = None,
) -> dict:
    """Algorithm 1 on the calibration images, then Powell for each n on the paper's bound ('alphas') and
    on the sup bound ('alphas_sup'): {path: {grid, gprime, alphas: {n: …}, alphas_sup: {n: …}}}."""
    path_kwargs = path_kwargs or {}
    out = {}
    for path in tqdm(paths, desc="Algorithm 1"):
        grid, gp = estimate_gprime(model, x_calib, path, k=k, batch_size=batch_size, **path_kwargs.get(path, {}))
        out[path] = {
            "grid": grid,
            "gprime": gp,
            "alphas": {n: fit_schedule(grid, gp, n) for n in steps},
            "alphas_sup": {n: fit_schedule(grid, gp, n, bound="sup") for n in steps},
        }
    return out


def half_rise(alphas, values: torch.Tensor) -> torch.Tensor:
    """Per image, the first α where f(γ(α)) − f(γ(0)) reaches half of f(γ(1)) − f(γ(0)) (linear in between)."""
    a = torch.as_tensor(alphas, dtype=torch.float64)
    v = values.double()
    if v.ndim != 2 or v.shape[0] != len(a):
        raise ValueError(f"values must be (len(alphas), B) = ({len(a)}, B), got {tuple(v.shape)}")
    rel = (v - v[0]) / (v[-1] - v[0])
    above = rel >= 0.5
    j = above.double().argmax(0).clamp(min=1)  # first index reaching half (≥ 1 since rel[0] = 0)
    cols = torch.arange(v.shape[1])
    r0, r1 = rel[j - 1, cols], rel[j, cols]
    t = ((0.5 - r0) / (r1 - r0)).clamp(0, 1)
    return a[j - 1] + t * (a[j] - a[j - 1])


def gprime_summary(grid: np.ndarray, gprime: np.ndarray) -> dict:
    """Where the mean |g'| curve sits: the α of its peak and the α holding half of its mass."""
    grid, gprime = np.asarray(grid, dtype=float), np.asarray(gprime, dtype=float)
    if grid.ndim != 1 or grid.shape != gprime.shape or len(grid) < 2:
        raise ValueError(f"grid and gprime must be 1-D of the same length >= 2, got {grid.shape} and {gprime.shape}")
    # Algorithm 1's value at grid[j] stands for [grid[j], grid[j+1]) (the last for [grid[-1], 1]).
    edges = np.append(grid, 1.0)
    cum = np.concatenate([[0.0], np.cumsum(gprime * np.diff(edges))])
    return {"peak": float(grid[int(np.argmax(gprime))]), "median": float(np.interp(0.5 * cum[-1], cum, edges))}


# Algorithm 1's curve for a set of images is the mean of the per-image curves, so per-image curves of
# a pool give the curve of any subset (any calibration-set size m) without new gradients.
def per_image_gprime(
    model: nn.Module, x: torch.Tensor, path: str = "ig", k: int = 64, target=None, output: str = "prob",
    batch_size: int = 64, **path_kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 1 on each image alone: ``(grid (k,), curves (B, k))``; their mean is Algorithm 1 on all B."""
    grid, curves, _ = per_image_derivatives(model, x, path, k, target, output, batch_size, **path_kwargs)
    return grid, curves


def schedule_distance(a, b) -> float:
    """Mean |a_i − b_i| of two sorted n-point schedules (the 1-Wasserstein distance of their point sets)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"schedules must be 1-D of the same length, got {a.shape} and {b.shape}")
    return float(np.mean(np.abs(np.sort(a) - np.sort(b))))


def subset_schedules(
    grid: np.ndarray, curves: np.ndarray, sizes: list[int], draws: int, n: int, bound: str = "paper", seed: int = 0
) -> dict[int, list[np.ndarray]]:
    """{m: [schedule fitted on the mean curve of m images drawn at random without replacement] × draws}."""
    rng = np.random.default_rng(seed)
    out = {}
    for m in sizes:
        if not 1 <= m <= len(curves):
            raise ValueError(f"calibration size m={m} must be between 1 and the pool's {len(curves)} images")
        picks = [rng.choice(len(curves), size=m, replace=False) for _ in range(draws if m < len(curves) else 1)]
        out[m] = [fit_schedule(grid, curves[p].mean(0), n, bound=bound) for p in picks]
    return out
