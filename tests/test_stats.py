"""riemannstudy.stats: bootstrap CIs, paired differences and verdicts, with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from riemannstudy import stats as ST


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


# ----------------------------------------------------------------------------------- the numerical floor
def _clear_drop(size=24, seed=3):
    """Per-photo differences of a recipe that clearly lowers the error (every photo below 0)."""
    return -np.random.default_rng(seed).uniform(0.2, 0.4, size=size)


def test_a_difference_inside_the_floor_is_never_holds():
    rng = np.random.default_rng(4)
    for trial in range(20):
        s = rng.uniform(0.0, 0.05, size=16)
        d = -s * rng.uniform(0.0, 1.0, size=16)  # every photo's difference inside its own floor, all on the claim's side
        fv = ST.floor_verdict({"cpu": d}, "lower", spread=s, n_boot=500, seed=trial)
        assert fv.plain["cpu"] in ("holds", "inconclusive")  # without the floor it may well "hold" ...
        assert fv.verdict == "inconclusive" and fv.judged["cpu"] == "inconclusive"  # ... with it, never
    # also when only the mean lies inside the floor: |mean d| <= mean s
    d = np.full(10, -0.02) + np.linspace(-1e-3, 1e-3, 10)
    fv = ST.floor_verdict(d, "lower", spread=0.03, n_boot=500)
    assert fv.plain["only"] == "holds" and fv.verdict == "inconclusive"
    lo, hi = fv.floor_cis["only"]
    assert lo < 0 < hi and lo <= fv.cis["only"].low and hi >= fv.cis["only"].high


def test_the_spread_between_variants_is_a_floor_too():
    # Two variants that both "hold" on their own, but the photos move between them by more than the effect.
    d = np.linspace(-0.012, -0.008, 20)
    fv = ST.floor_verdict({"cpu": d, "cuda_tf32": d + 0.02 * (np.arange(20) % 2) - 0.01 * (np.arange(20) % 2)}, "lower", n_boot=500)
    assert set(fv.plain.values()) == {"holds"} and fv.verdict == "inconclusive"
    assert fv.floor == pytest.approx(0.01 * (np.arange(20) % 2))


def test_identical_verdicts_across_variants_give_that_verdict():
    d = _clear_drop()
    fv = ST.floor_verdict({"cpu": d, "cpu_fp64": d + 1e-4, "cuda_tf32": d - 1e-4}, "lower", spread=1e-3, n_boot=500)
    assert fv.verdict == "holds" and set(fv.plain.values()) == set(fv.judged.values()) == {"holds"}
    fv = ST.floor_verdict({"cpu": -d, "cuda_tf32": -d + 1e-4}, "lower", n_boot=500)
    assert fv.verdict == "does not hold"
    noise = np.random.default_rng(5).normal(0, 0.05, size=24)
    fv = ST.floor_verdict({"cpu": noise - noise.mean(), "cuda": noise - noise.mean() + 1e-6}, "lower", n_boot=500)
    assert fv.verdict == "inconclusive"


def test_differing_verdicts_across_variants_are_device_sensitive():
    d = _clear_drop()
    noise = np.random.default_rng(6).normal(0, 0.05, size=24)
    fv = ST.floor_verdict({"cpu": d, "cuda_tf32": noise - noise.mean()}, "lower", n_boot=500)
    assert fv.plain == {"cpu": "holds", "cuda_tf32": "inconclusive"} and fv.verdict == "device-sensitive"
    assert ST.floor_verdict({"cpu": d, "cuda_tf32": -d}, "lower", n_boot=500).verdict == "device-sensitive"
    assert set(ST.FLOOR_VERDICTS) == {"holds", "does not hold", "inconclusive", "device-sensitive"}


def test_floor_verdict_with_the_median_and_a_zero_floor_is_the_plain_verdict():
    d = _clear_drop()
    fv = ST.floor_verdict(d, "lower", spread=0.0, stat="median", n_boot=500, seed=2)
    ci = ST.bootstrap_ci(d, stat="median", n_boot=500, seed=2)
    assert fv.cis["only"] == ci and fv.floor_cis["only"] == pytest.approx((ci.low, ci.high)) and fv.verdict == "holds"


def test_floor_verdict_rejects_bad_input_naming_the_parameter():
    d = _clear_drop(10)
    with pytest.raises(ValueError, match="sizes"):
        ST.floor_verdict({"cpu": d, "cuda": d[:-1]}, "lower")
    with pytest.raises(ValueError, match="spread must be finite and >= 0"):
        ST.floor_verdict(d, "lower", spread=-0.1)
    with pytest.raises(ValueError, match="spread must be finite and >= 0"):
        ST.floor_verdict(d, "lower", spread=np.ones(3))
    with pytest.raises(ValueError, match="at least one variant"):
        ST.floor_verdict({}, "lower")
    with pytest.raises(ValueError, match="unknown stat"):
        ST.floor_verdict(d, "lower", stat="mode")
    with pytest.raises(ValueError, match="unknown direction"):
        ST.floor_verdict(d, "sideways")
