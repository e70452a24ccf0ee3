"""Per-image statistics for "the paper beside ours": bootstrap confidence intervals and verdicts.

Ground floor: numpy only (torch tensors are accepted through ``.detach().cpu().numpy()``), no other
riemannkit module.  A claim is a sign: "A is lower than B" is a claim about the paired per-image
differences d_b = a_b − b_b with direction −1.  Its verdict is 'holds' when the whole confidence interval
of the statistic of d lies on the claim's side of 0, 'does not hold' when it lies wholly on the other
side, and 'inconclusive' when it contains 0.  Everything is deterministic given ``seed``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

STATS = ("mean", "median")
VERDICTS = ("holds", "does not hold", "inconclusive")
_DIRECTIONS = {1: 1, -1: -1, "+": 1, "-": -1, "positive": 1, "negative": -1, "greater": 1, "less": -1,
               "higher": 1, "lower": -1}


class CI(NamedTuple):
    """A statistic with its percentile-bootstrap confidence interval."""

    estimate: float  # the statistic of the sample itself
    low: float
    high: float
    level: float
    n: int  # sample size (images)
    stat: str


def _as_array(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per image), got shape {v.shape}")
    if v.size < 2:
        raise ValueError(f"{name} needs at least 2 values for a bootstrap, got {v.size}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite (index {int(np.flatnonzero(~np.isfinite(v))[0])} is not)")
    return v


def bootstrap_ci(values, stat: str = "mean", n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> CI:
    """Percentile bootstrap CI of ``stat`` ('mean' or 'median') over the values (resampled with replacement).

    The (n_boot, n) resample indices come from ``numpy.random.default_rng(seed)``; the interval is the
    (1 − level)/2 and (1 + level)/2 quantiles (numpy's default linear interpolation) of the n_boot statistics."""
    v = _as_array(values, "values")
    if stat not in STATS:
        raise ValueError(f"unknown stat={stat!r}; accepted values: {', '.join(STATS)}")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 100:
        raise ValueError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    fn = np.mean if stat == "mean" else np.median
    rng = np.random.default_rng(seed)
    n, n_boot = v.size, int(n_boot)
    out = np.empty(n_boot)
    step = max(1, 2_000_000 // n)  # bounded memory: rows of resamples per draw
    for s in range(0, n_boot, step):
        m = min(step, n_boot - s)
        out[s : s + m] = fn(v[rng.integers(0, n, size=(m, n))], axis=1)
    lo, hi = np.quantile(out, [(1 - level) / 2, (1 + level) / 2])
    return CI(float(fn(v)), float(lo), float(hi), float(level), n, stat)


def paired_difference(a, b, stat: str = "mean", n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> CI:
    """Bootstrap CI of ``stat`` of the per-image differences a − b (same images, same order)."""
    a, b = _as_array(a, "a"), _as_array(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must hold one value per image for the same images, got {a.size} and {b.size}")
    return bootstrap_ci(a - b, stat=stat, n_boot=n_boot, seed=seed, level=level)


def verdict(ci, direction) -> str:
    """'holds' / 'does not hold' / 'inconclusive' for the claim that the statistic has sign ``direction``.

    ``ci`` is a :class:`CI` (or a (low, high) pair) of a paired difference; ``direction`` is the claim's
    sign: +1 ('positive', 'greater', 'higher') or −1 ('negative', 'less', 'lower').  An interval touching
    0 is inconclusive."""
    key = direction.lower() if isinstance(direction, str) else direction
    if isinstance(key, bool) or key not in _DIRECTIONS:
        raise ValueError(f"unknown direction={direction!r}; accepted values: +1, -1, '+', '-', 'positive', 'negative', "
                         "'greater', 'less', 'higher', 'lower'")
    sign = _DIRECTIONS[key]
    lo, hi = (ci.low, ci.high) if isinstance(ci, CI) else (float(ci[0]), float(ci[1]))
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ValueError(f"ci must be a finite interval with low <= high, got ({lo}, {hi})")
    if lo > 0:
        return "holds" if sign > 0 else "does not hold"
    if hi < 0:
        return "holds" if sign < 0 else "does not hold"
    return "inconclusive"
