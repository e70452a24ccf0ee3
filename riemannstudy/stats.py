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
    if np.isnan(lo) or np.isnan(hi) or lo > hi or lo == np.inf or hi == -np.inf:
        raise ValueError(f"ci must be an interval with low <= high (an infinite end allowed), got ({lo}, {hi})")
    if lo > 0:
        return "holds" if sign > 0 else "does not hold"
    if hi < 0:
        return "holds" if sign < 0 else "does not hold"
    return "inconclusive"


def bootstrap_statistic(fn, *columns, n_boot: int = 10_000, seed: int = 0, level: float = 0.95, name: str = "statistic") -> CI:
    """Percentile bootstrap CI of ``fn(*columns)`` over the images: each column holds one value (or row) per image, and a
    resample draws images with replacement, the same images in every column (paired), as :func:`bootstrap_ci` does.
    ``fn`` maps the resampled columns to one number (it may be ±inf: the quantiles keep it)."""
    cols = [np.asarray(c.detach().cpu().numpy() if hasattr(c, "detach") else c, dtype=np.float64) for c in columns]
    if not cols or any(c.ndim < 1 for c in cols) or len({c.shape[0] for c in cols}) != 1:
        raise ValueError("columns must be one or more arrays with one value (or row) per image, the same images in each")
    n = cols[0].shape[0]
    if n < 2:
        raise ValueError(f"columns need at least 2 images for a bootstrap, got {n}")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 100:
        raise ValueError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_boot), n))
    out = np.array([fn(*(c[i] for c in cols)) for i in idx], dtype=np.float64)
    lo, hi = np.quantile(out, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")  # no interpolation towards ±inf
    return CI(float(fn(*cols)), float(lo), float(hi), float(level), n, name)


# ----------------------------------------------------------------------------------- the numerical floor
# A claim judged on per-photo values that move with the arithmetic (float64 vs float32, threads, a GPU's TF32) is
# judged under every stored variant and against the numerical floor: see floor_verdict.
FLOOR_VERDICTS = (*VERDICTS, "device-sensitive")


class FloorVerdict(NamedTuple):
    """A claim judged under each arithmetic variant and against the numerical floor (:func:`floor_verdict`)."""

    verdict: str  # one of FLOOR_VERDICTS
    plain: dict  # variant -> the verdict of its own paired bootstrap CI
    judged: dict  # variant -> the verdict of that CI widened by the floor
    cis: dict  # variant -> CI of the statistic of its differences
    floor_cis: dict  # variant -> (low, high): the CI widened by the per-photo floor
    floor: np.ndarray  # the per-photo numerical uncertainty of a difference that was used


def floor_verdict(differences, direction, spread=None, stat: str = "mean", n_boot: int = 10_000, seed: int = 0,
                  level: float = 0.95) -> FloorVerdict:
    """Judge "the paired differences have sign ``direction``" under every arithmetic variant, against the floor.

    ``differences``: {variant: per-photo differences a − b} for the same photos in the same order (or one array:
    a single variant).  ``spread``: the per-photo numerical uncertainty of a difference (an array, or one value
    for every photo), e.g. the spread max − min of the difference across the variants of a floor study; the floor
    used is its element-wise maximum with the spread of the given variants' differences (zero for one variant).

    The rule: each variant's CI is the percentile bootstrap CI of ``stat`` over photos (:func:`paired_difference`);
    its floor CI runs from the low quantile of stat(d − s) to the high quantile of stat(d + s) over the same
    resamples (a photo's difference may lie anywhere in d ± s; the mean and the median are monotone, so this
    contains every such shift), and always contains stat(d − s) … stat(d + s).  Then
    * the variants' own verdicts differ → 'device-sensitive' (a rerun on other arithmetic gives another answer);
    * they agree but some floor CI reaches 0 → 'inconclusive' (the difference does not clear the floor);
    * else the common verdict.
    So a difference inside the floor (|d| ≤ s for every photo, or |stat(d)| ≤ stat(s)) is never 'holds'."""
    if isinstance(differences, dict):
        if not differences:
            raise ValueError("differences must hold at least one variant: {variant: per-photo differences}")
        diffs = {str(k): _as_array(v, f"differences[{k!r}]") for k, v in differences.items()}
    else:
        diffs = {"only": _as_array(differences, "differences")}
    sizes = {k: v.size for k, v in diffs.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"every variant must hold one difference per photo for the same photos, got sizes {sizes}")
    size = next(iter(sizes.values()))
    s = np.ptp(np.stack(list(diffs.values())), axis=0)
    if spread is not None:
        given = np.broadcast_to(np.asarray(spread, dtype=np.float64), (size,)) if np.ndim(spread) == 0 else _as_array(spread, "spread")
        if given.size != size or not np.isfinite(given).all() or (given < 0).any():
            raise ValueError(f"spread must be finite and >= 0, one value or one per photo ({size}), got {np.asarray(spread)!r}")
        s = np.maximum(s, given)
    fn = np.mean if stat == "mean" else np.median
    plain, judged, cis, floor_cis = {}, {}, {}, {}
    for name, d in diffs.items():
        ci = bootstrap_ci(d, stat=stat, n_boot=n_boot, seed=seed, level=level)
        lo = min(bootstrap_ci(d - s, stat=stat, n_boot=n_boot, seed=seed, level=level).low, float(fn(d - s)))
        hi = max(bootstrap_ci(d + s, stat=stat, n_boot=n_boot, seed=seed, level=level).high, float(fn(d + s)))
        cis[name], floor_cis[name] = ci, (lo, hi)
        plain[name], judged[name] = verdict(ci, direction), verdict((lo, hi), direction)
    if len(set(plain.values())) > 1:
        final = "device-sensitive"
    elif len(set(judged.values())) > 1 or set(judged.values()) != set(plain.values()):
        final = "inconclusive"
    else:
        final = next(iter(plain.values()))
    return FloorVerdict(final, plain, judged, cis, floor_cis, s)
