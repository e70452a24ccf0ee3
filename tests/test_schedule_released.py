"""RiemannOpt as its authors run it (riemannkit.schedule: released_gprime_profile, fit_released_schedule,
released_bound, released_attribute_args) beside the paper's left bound (fit_schedule)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d
from scipy.signal import convolve
from scipy.signal.windows import bartlett

import riemannkit as rk
from riemannkit import schedule as S

GRID = np.arange(128) / 128


def _reference_smooth(x: np.ndarray, w: int = 11) -> np.ndarray:
    # compute_alphas' smooth(), written independently: reflect-pad w−1 each side (no edge repeat),
    # convolve with the sum-normalised Bartlett window, slice [w//2 : 1 − w//2].
    s = np.pad(x, w - 1, mode="reflect")
    win = bartlett(w)
    y = convolve(s, win / win.sum(), mode="valid")
    return y[w // 2 : 1 - w // 2]


def test_smoothing_matches_the_reference_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    got = S.smooth_log_bartlett(x)
    np.testing.assert_allclose(got, _reference_smooth(x), rtol=1e-12, atol=1e-12)
    assert got.shape == (41,)  # the reference's slice keeps one value more than it was given
    # value i is the Bartlett average centred on sample i; the extra one is centred on the mirror of x[-2]
    w = np.bartlett(11) / np.bartlett(11).sum()
    np.testing.assert_allclose(got[20], w @ x[15:26], rtol=1e-12)
    np.testing.assert_allclose(got[0], w @ np.concatenate([x[5:0:-1], x[:6]]), rtol=1e-12)
    np.testing.assert_allclose(got[-1], w @ np.concatenate([x[-7:], x[-2:-6:-1]]), rtol=1e-12)
    # a constant stays constant; window 1 is the identity
    np.testing.assert_allclose(S.smooth_log_bartlett(np.full(20, 3.0)), 3.0, rtol=1e-12)
    np.testing.assert_array_equal(S.smooth_log_bartlett(x, window=1), x)


def test_profile_is_median_of_normalised_curves_smoothed_in_log():
    rng = np.random.default_rng(1)
    curves = rng.uniform(0.1, 2.0, size=(7, 30))
    grid, prof = S.released_gprime_profile(curves)
    med = np.median(curves / curves.sum(1, keepdims=True), axis=0)
    np.testing.assert_allclose(prof, np.exp(_reference_smooth(np.log(med))), rtol=1e-12)
    np.testing.assert_allclose(grid, np.linspace(0, 1, 31))


def test_profile_invariant_to_scaling_one_image():
    rng = np.random.default_rng(2)
    curves = rng.uniform(0.1, 2.0, size=(5, 24))
    scaled = curves.copy()
    scaled[3] *= 1e4  # one image with a much larger |g'| (a mean would follow it)
    np.testing.assert_allclose(S.released_gprime_profile(scaled)[1], S.released_gprime_profile(curves)[1], rtol=1e-12)
    assert not np.allclose(scaled.mean(0) / scaled.mean(0).sum(), curves.mean(0) / curves.mean(0).sum(), rtol=1e-2)


def _fit(curve, n):
    grid, prof = S.released_gprime_profile(np.asarray(curve)[None])
    return S.fit_released_schedule(grid, prof, n), grid, prof


@pytest.mark.parametrize("n", [1, 4, 16])
def test_constant_gprime_gives_uniform_right_points(n):
    a, grid, prof = _fit(np.ones(128), n)
    assert a.shape == (n + 1,) and a[0] == 0 and a[-1] == pytest.approx(1, abs=1e-12)
    np.testing.assert_allclose(a[1:], np.arange(1, n + 1) / n, atol=2e-3)
    assert S.released_bound(a, grid, prof) == pytest.approx(0.5 / n * prof[0], rel=1e-3)


def test_gprime_near_zero_crowds_points_near_zero():
    a, *_ = _fit(np.exp(-GRID / 0.1) + 0.01, 16)
    d = np.diff(a)
    assert np.all(np.diff(d[:10]) > 0)  # spacing grows away from the peak at 0
    assert d[0] < 0.25 / 16 and a[8] < 0.25


def test_released_bound_reads_right_ends_and_left_bound_stretches_first_interval():
    # |g'(0)| ≈ 0, peak at 0.1: the paper's left-point bound prices the first interval at |g'(0)| ≈ 0 and
    # Powell stretches it across the peak; the released bound prices it at its right end and keeps it short.
    c = GRID * np.exp(-GRID / 0.1) + 1e-4
    c /= c.max()
    released, grid, prof = _fit(c, 16)
    left = S.fit_schedule(GRID, c, 16, min_gap=0.0)
    assert released[1] < 0.03
    assert left[1] > 0.3  # the left-bound degeneracy: one interval over the whole rise
    assert S.paper_bound(left, GRID, c) < S.paper_bound(np.arange(16) / 16, GRID, c)  # ... and the bound "improves"
    # The mirror image of that degeneracy: an interval ENDING where |g'| ≈ 0 is free for the right-end bound,
    # so the released fit leaves one long interval over the flat tail.
    assert np.max(np.diff(released)) > 0.5


def test_released_bound_formula_and_trap():
    grid, prof = np.linspace(0, 1, 20), 1 + np.linspace(0, 1, 20) ** 2
    a = np.array([0.0, 0.1, 0.5, 1.0])
    f = interp1d(grid, prof, kind="cubic")
    expected = 0.5 * (0.1**2 * f(0.1) + 0.4**2 * f(0.5) + 0.5**2 * f(1.0))
    assert S.released_bound(a, grid, prof) == pytest.approx(expected, rel=1e-12)
    # np.clip(0, 1, alphas) in the reference is min(alphas, 1), not a clip to [0, 1]
    v = np.array([0.0, 0.3, 1.0 + 1e-15, 2.0])
    np.testing.assert_array_equal(np.clip(0, 1, v), np.minimum(v, 1.0))


def test_attribute_args_right_rule_and_merging():
    a = np.array([0.0, 0.2, 0.2, 0.7, 1.0 - 1e-16, 1.0 - 1e-16])
    kw = S.released_attribute_args(a)
    assert kw["rule"] == "right"
    np.testing.assert_array_equal(kw["alphas"], [0.0, 0.2, 0.7])
    assert S.released_attribute_args(a, path="guidedig")["rule"] == "left"
    nodes, w = rk.schedule_nodes(kw["rule"], kw["alphas"])
    np.testing.assert_allclose(nodes.numpy(), [0.2, 0.7, 1.0])
    np.testing.assert_allclose(w.numpy(), [0.2, 0.5, 0.3])


def _released_points(n):
    grid = np.linspace(0, 1, 128)
    a, g, p = _fit(1.0 + 3.0 * grid, n)  # smooth, positive: a regular non-uniform schedule
    return a


def test_right_sum_at_released_points_is_exact_on_linear_model(linear_model, images):
    a = _released_points(8)
    assert np.ptp(np.diff(a)) > 0.01  # non-uniform
    r = rk.attribute(linear_model, images, target=0, output="logit", **S.released_attribute_args(a))
    err = rk.completeness_error(r.attr, r.f_input, r.f_baseline)
    assert r.n_gradients == 8
    assert float(err.max()) < 1e-5
    # the reference's sum Σ ∇f(γ(α_i))·(γ(α_i) − γ(α_{i−1})) for the straight line, written out
    w = linear_model.w(0).double()
    ref = sum(w * (images.double() * (a[i] - a[i - 1])) for i in range(1, len(a)))
    np.testing.assert_allclose(r.attr.double().numpy(), ref.numpy(), rtol=1e-5, atol=1e-7)


def test_right_sum_at_released_points_converges_at_order_one(quad_model, images):
    errs = []
    for n in (8, 16, 32, 64):
        a = _released_points(n)
        r = rk.attribute(quad_model, images, target=0, output="logit", **S.released_attribute_args(a))
        delta = (r.f_input - r.f_baseline).double()
        errs.append(float(((r.attr.double().flatten(1).sum(1) - delta).abs() / delta.abs()).mean()))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all(ratios > 1.7) and np.all(ratios < 2.3), (errs, ratios)


def test_bad_input_named():
    with pytest.raises(ValueError, match="n must"):
        S.fit_released_schedule(np.linspace(0, 1, 10), np.ones(10), 0)
    with pytest.raises(ValueError, match="n must"):
        S.fit_released_schedule(np.linspace(0, 1, 10), np.ones(10), 2.5)
    with pytest.raises(ValueError, match="per_image_gprime"):
        S.released_gprime_profile(np.ones(30))  # 1-D
    with pytest.raises(ValueError, match="per_image_gprime"):
        S.released_gprime_profile(np.array([[1.0] * 29 + [np.nan]]))
    with pytest.raises(ValueError, match="per_image_gprime"):
        S.released_gprime_profile(np.array([[1.0] * 29 + [-1.0]]))
    with pytest.raises(ValueError, match="per_image_gprime"):
        S.released_gprime_profile(np.zeros((2, 30)))
    with pytest.raises(ValueError, match="window"):
        S.released_gprime_profile(np.ones((2, 30)), window=4)
    with pytest.raises(ValueError, match="window"):
        S.released_gprime_profile(np.ones((2, 8)))  # fewer samples than the window
    with pytest.raises(ValueError, match="grid and profile"):
        S.fit_released_schedule(np.linspace(0, 1, 10), np.ones(9), 4)
    with pytest.raises(ValueError, match="grid must run from 0 to 1"):
        S.fit_released_schedule(np.linspace(0, 0.9, 10), np.ones(10), 4)
    with pytest.raises(ValueError, match="profile finite"):
        S.fit_released_schedule(np.linspace(0, 1, 10), np.r_[np.ones(9), np.inf], 4)
    with pytest.raises(ValueError, match="alphas"):
        S.released_attribute_args([0.0, 0.5, 0.4, 1.0])
    with pytest.raises(ValueError, match="alphas"):
        S.released_bound([0.1, 1.0], np.linspace(0, 1, 10), np.ones(10))


def test_recipes_registry():
    assert {"riemannopt", "riemannopt_paper_left", "linear_left", "density", "gausslegendre"} <= set(S.RECIPES)
    for name, r in S.RECIPES.items():
        assert r.rule in rk.RULES and r.label and r.description, name
    assert S.RECIPES["riemannopt"].rule == "right" and S.RECIPES["riemannopt_paper_left"].rule == "left"
