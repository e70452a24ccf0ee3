"""riemannkit.stats: bootstrap CIs, paired differences and verdicts, with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from riemannkit import stats as ST


def test_deterministic_given_seed_and_torch_input():
    v = np.random.default_rng(0).normal(size=30)
    a = ST.bootstrap_ci(v, seed=3)
    assert a == ST.bootstrap_ci(torch.tensor(v), seed=3)
    assert a != ST.bootstrap_ci(v, seed=4)
    assert a.low < a.estimate < a.high and a.n == 30 and a.stat == "mean"
    assert a.estimate == pytest.approx(v.mean())


def test_ci_width_matches_normal_theory():
    v = np.random.default_rng(1).normal(2.0, 1.0, size=400)
    ci = ST.bootstrap_ci(v, n_boot=4000, seed=0)
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v))
    assert (ci.high - ci.low) / 2 == pytest.approx(half, rel=0.1)
    med = ST.bootstrap_ci(v, stat="median", n_boot=2000)
    assert med.estimate == pytest.approx(np.median(v))


def test_coverage_on_normal_samples():
    # 200 samples of size 40 from N(0, 1): the 95 % interval should contain 0 about 95 % of the time
    rng = np.random.default_rng(7)
    hits = sum(
        ci.low <= 0 <= ci.high
        for ci in (ST.bootstrap_ci(rng.normal(size=40), n_boot=1000, seed=s) for s in range(200))
    )
    assert 0.88 <= hits / 200 <= 0.99  # the percentile bootstrap undercovers slightly at n = 40


def test_verdicts():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.5, 1.0, size=24)
    better = base * 0.5 + rng.normal(0, 0.01, size=24)  # a large per-image reduction
    noisy = base + rng.normal(0, 0.05, size=24)
    noisy = noisy - (noisy - base).mean()  # paired differences centred exactly at 0
    claim_lower = -1  # "method errs less than baseline": a − b < 0
    assert ST.verdict(ST.paired_difference(better, base), claim_lower) == "holds"
    assert ST.verdict(ST.paired_difference(noisy, base), claim_lower) == "inconclusive"
    assert ST.verdict(ST.paired_difference(base, better), claim_lower) == "does not hold"
    assert ST.verdict(ST.paired_difference(base, better), "higher") == "holds"
    assert ST.verdict((-0.1, 0.0), "lower") == "inconclusive"  # touching 0 is not enough


def test_bad_input_named():
    with pytest.raises(ValueError, match="values"):
        ST.bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="values"):
        ST.bootstrap_ci([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="values"):
        ST.bootstrap_ci(np.ones((3, 2)))
    with pytest.raises(ValueError, match="stat"):
        ST.bootstrap_ci([1.0, 2.0], stat="mode")
    with pytest.raises(ValueError, match="n_boot"):
        ST.bootstrap_ci([1.0, 2.0], n_boot=10)
    with pytest.raises(ValueError, match="level"):
        ST.bootstrap_ci([1.0, 2.0], level=95)
    with pytest.raises(ValueError, match="a and b"):
        ST.paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="direction"):
        ST.verdict((0.1, 0.2), "up")
    with pytest.raises(ValueError, match="ci"):
        ST.verdict((0.3, 0.2), 1)
