"""Rules on a schedule (midpoint, trapezoid, right on a partition α_0 … α_n = 1), the |g''| estimate,
the cubic (midpoint/trapezoid) bounds and the |g''|^{1/3} density."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import riemannkit as rk
from riemannkit import integrate as I
from riemannstudy import placement as PL
from riemannkit import schedule as S

SCHEDULE = [0.0, 0.05, 0.1, 0.3, 0.35, 0.6, 0.9, 0.97]  # an arbitrary, non-uniform partition


def _ends(alphas) -> np.ndarray:
    return np.append(np.asarray(alphas, np.float64), 1.0)


def _warp(n: int) -> np.ndarray:
    """A fixed-shape non-uniform partition α_i = φ(i/n), φ(t) = t + 0.3 sin(πt)/π (φ' = 1 + 0.3 cos πt > 0)."""
    t = np.arange(n) / n
    return t + 0.3 * np.sin(np.pi * t) / np.pi


# ---------------------------------------------------------------- nodes and weights


@pytest.mark.parametrize("rule", I.SCHEDULE_RULES)
def test_schedule_nodes_weights_sum_to_one(rule):
    a, w = I.schedule_nodes(rule, SCHEDULE)
    e, d = _ends(SCHEDULE), np.diff(_ends(SCHEDULE))
    assert a.dtype == torch.float64 and w.dtype == torch.float64
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-14)
    assert (w > 0).all() and (torch.diff(a) > 0).all()
    expected = {
        "left": (e[:-1], d),
        "right": (e[1:], d),
        "midpoint": ((e[:-1] + e[1:]) / 2, d),
        "trapezoid": (e, np.concatenate([[d[0] / 2], (d[:-1] + d[1:]) / 2, [d[-1] / 2]])),
        "simpson": (np.sort(np.concatenate([e, (e[:-1] + e[1:]) / 2])),
                    np.insert(np.concatenate([[d[0] / 6], (d[:-1] + d[1:]) / 6, [d[-1] / 6]]), np.arange(1, len(d) + 1), 4 * d / 6)),
    }[rule]
    np.testing.assert_allclose(a.numpy(), expected[0], atol=1e-15)
    np.testing.assert_allclose(w.numpy(), expected[1], atol=1e-15)


@pytest.mark.parametrize("rule", ["left", "right", "midpoint", "trapezoid"])
def test_schedule_nodes_on_linear_schedule_equal_the_rules(rule):
    n = 8
    a, w = I.schedule_nodes(rule, rk.linear_schedule(n))
    ra, rw = rk.rule_nodes(rule, n + 1 if rule == "trapezoid" else n)
    torch.testing.assert_close(a, ra)
    torch.testing.assert_close(w, rw)


def test_schedule_nodes_left_is_schedule_weights_and_case_insensitive():
    a, w = I.schedule_nodes("LEFT", SCHEDULE)
    torch.testing.assert_close(w, rk.schedule_weights(SCHEDULE))
    torch.testing.assert_close(a, torch.tensor(SCHEDULE, dtype=torch.float64))


@pytest.mark.parametrize("rule", ["left", "midpoint", "trapezoid"])
def test_scheduled_rule_integrates_a_smooth_function(rule):
    # ∫₀¹ exp(sin 3α) dα to O(max Δ²) (left: O(max Δ)) on a fine warped partition
    from scipy.integrate import quad

    ref = quad(lambda t: math.exp(math.sin(3 * t)), 0, 1, epsabs=1e-14)[0]
    a, w = I.schedule_nodes(rule, _warp(400))
    val = float((w * torch.exp(torch.sin(3 * a))).sum())
    assert abs(val - ref) < (5e-3 if rule == "left" else 5e-6)


# ---------------------------------------------------------------- attribute(rule=…, alphas=…)


@pytest.mark.parametrize("rule", ["midpoint", "trapezoid"])
def test_scheduled_midpoint_trapezoid_exact_for_linear_integrand(quad_model, images, rule):
    # IG of a quadratic model: g(α) = (Q(αx) + b) ⊙ x is linear in α, so both rules are exact on ANY partition;
    # the exact attribution is (Qx/2 + b) ⊙ x.
    r = rk.attribute(quad_model, images, "ig", rule=rule, alphas=SCHEDULE, output="logit", target=0)
    exact = ((0.5 * quad_model.hess_dot(images) + quad_model.b64.view(1, *images.shape[1:])) * images.double())
    torch.testing.assert_close(r.attr.double(), exact, rtol=1e-4, atol=1e-4)
    # … and not so for the left rule on the same partition
    left = rk.attribute(quad_model, images, "ig", alphas=SCHEDULE, output="logit", target=0)
    assert (left.attr.double() - exact).abs().max() > 1e-2


@pytest.mark.parametrize("rule,order", [("left", 1), ("right", 1), ("midpoint", 2), ("trapezoid", 2)])
def test_scheduled_rule_convergence_order_through_attribute(scalar_model, rule, order):
    # One feature, f(u) = exp(sin 3u), x = 1, x' = 0: the IG integrand is f'(α); a fixed-shape warped partition.
    x = torch.ones(1, 1, 1, 1)
    exact = math.exp(math.sin(3.0)) - 1.0
    errs = []
    for n in (16, 64):
        a = rk.attribute(scalar_model, x, rule=rule, alphas=_warp(n), output="logit", target=0)
        errs.append(abs(float(a.attr.sum()) - exact))
    est = math.log(errs[0] / errs[1]) / math.log(4)
    assert est == pytest.approx(order, abs=0.2)


@pytest.mark.parametrize("rule,count", [("left", 8), ("right", 8), ("midpoint", 8), ("trapezoid", 9)])
def test_scheduled_rule_n_gradients(conv_model, images, rule, count):
    r = rk.attribute(conv_model, images, rule=rule, alphas=SCHEDULE, n=99)  # n is ignored with alphas
    assert r.n_gradients == count


@pytest.mark.parametrize("rule,count,ends", [("midpoint", 8, 2), ("trapezoid", 9, 0)])
def test_scheduled_rule_evaluates_the_model_count_times(conv_model, images, counting, rule, count, ends):
    model = counting(conv_model)
    rk.attribute(model, images, rule=rule, alphas=SCHEDULE, target=0, batch_size=4)
    # the path points, and f(x), f(x') as extra rows for the ends the nodes miss (trapezoid's include 0 and 1)
    assert sum(model.calls) == count * images.shape[0] + ends * images.shape[0]
    assert max(model.calls) <= 4 * I.END_SLACK  # passes take the end rows by growing at most a quarter
    assert len(model.calls) == -(-count * images.shape[0] // 4)  # and no pass of their own


def test_alphas_default_rule_is_left(conv_model, images):
    a = rk.attribute(conv_model, images, alphas=SCHEDULE)
    b = rk.attribute(conv_model, images, rule="left", alphas=SCHEDULE)
    torch.testing.assert_close(a.attr, b.attr)
    assert a.n_gradients == len(SCHEDULE)


def test_scheduled_rules_batching(conv_model, images):
    big = torch.cat([images, images.flip(-1), images * 0.5])
    full = rk.attribute(conv_model, big, rule="trapezoid", alphas=SCHEDULE, batch_size=64)
    split = rk.attribute(conv_model, big, rule="trapezoid", alphas=SCHEDULE, batch_size=2)
    torch.testing.assert_close(full.attr, split.attr, rtol=1e-5, atol=1e-6)


def test_bad_rule_schedule_combinations(linear_model, conv_model, images):
    with pytest.raises(ValueError, match=r"gausslegendre.*left, right, midpoint, trapezoid"):
        rk.attribute(linear_model, images, rule="gausslegendre", alphas=SCHEDULE)
    with pytest.raises(ValueError, match=r"boole.*left, right, midpoint, trapezoid, simpson"):
        rk.attribute(linear_model, images, rule="boole", alphas=SCHEDULE)
    with pytest.raises(ValueError, match=r"guidedig.*adaptive.*rule='left'.*midpoint"):
        rk.attribute(conv_model, images, path="guidedig", rule="midpoint", alphas=SCHEDULE)
    with pytest.raises(ValueError, match=r"guidedig.*adaptive.*rule='left'"):
        rk.attribute(conv_model, images, path="guidedig", rule="trapezoid", n=4)
    with pytest.raises(ValueError, match="sorted"):
        rk.attribute(linear_model, images, rule="midpoint", alphas=[0.0, 0.5, 0.3])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        rk.attribute(linear_model, images, rule="trapezoid", alphas=[0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"alphas\[0\]"):
        I.schedule_nodes("midpoint", [0.1, 0.5])
    # the left rule with a schedule still works on an adaptive path
    r = rk.attribute(conv_model, images, path="guidedig", rule="left", alphas=SCHEDULE)
    assert torch.isfinite(r.attr).all()


# ---------------------------------------------------------------- |g''| (Algorithm 1's analogue)


def test_gderivatives_gprime_matches_estimate_gprime(conv_model, images):
    grid, g1, g2 = S.estimate_gderivatives(conv_model, images, "ig", k=16)
    grid0, g10 = S.estimate_gprime(conv_model, images, "ig", k=16)
    # All three make the same per_image_derivatives call (same passes, same threads): float64 noise at most.
    np.testing.assert_array_equal(grid, grid0)
    np.testing.assert_allclose(g1, g10, rtol=1e-10)
    assert g2.shape == (16,) and np.isfinite(g2).all() and (g2 >= 0).all()
    _, g2b = S.estimate_gsecond(conv_model, images, "ig", k=16)
    np.testing.assert_allclose(g2, g2b, rtol=1e-10)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 64])
def test_gderivatives_chunking_and_image_batches(conv_model, images, batch_size):
    # batch_size 1 splits the images; 2 gives one alpha per chunk (the carried tail); 3 odd chunk edges
    ref = S.estimate_gderivatives(conv_model, images, "blurig", k=12, batch_size=64)
    out = S.estimate_gderivatives(conv_model, images, "blurig", k=12, batch_size=batch_size)
    # Float32 integrands of differently shaped passes agree to ~1e-7 relative; the first and second
    # differences amplify that, to at most 3 % of this tolerance as measured (two threads or one, ATen's
    # AVX2 or default kernels, oneDNN and MKL limited to SSE4).
    for a, b in zip(ref, out):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_gsecond_of_cubic_model_is_constant(cubic_model, images):
    # f = (v·x)³/6 on IG from 0: g(α) = α² s²/2 · v⊙x with s = v·x, so g'' = s² v⊙x for every α and the
    # second differences are exact: mean |g''| = mean over images of s² · mean|v⊙x|.
    grid, g1, g2 = S.estimate_gderivatives(cubic_model, images, "ig", k=16, output="logit", target=0)
    v = cubic_model.v64.view(1, *images.shape[1:])
    s = (images.double().flatten(1) @ cubic_model.v64)
    expect = float((s**2 * (v * images.double()).abs().flatten(1).mean(1)).mean())
    np.testing.assert_allclose(g2, expect, rtol=2e-3)
    # the forward differences of α²: (2j + 1)/k times s²/2 · mean|v⊙x|
    np.testing.assert_allclose(g1, expect / 2 * (2 * np.arange(16) + 1) / 16, rtol=2e-3)


def test_gsecond_zero_for_linear_integrand(quad_model, images):
    _, g1, g2 = S.estimate_gderivatives(quad_model, images, "ig", k=16, output="logit", target=0)
    assert g2.max() < 1e-3 * g1.max()


def test_gderivatives_adaptive_path(conv_model, images):
    grid, g1, g2 = S.estimate_gderivatives(conv_model, images, "guidedig", k=8)
    _, g10 = S.estimate_gprime(conv_model, images, "guidedig", k=8)
    np.testing.assert_allclose(g1, g10, rtol=1e-6)  # the same per_image_derivatives call
    assert np.isfinite(g2).all() and (g2 >= 0).all()


def test_gderivatives_bad_k(conv_model, images):
    with pytest.raises(ValueError, match="k must be"):
        S.estimate_gderivatives(conv_model, images, k=1)


# ---------------------------------------------------------------- cubic bounds and the |g''|^{1/3} density


def test_midpoint_trapezoid_bounds_are_the_errors_for_constant_gsecond():
    # ∫ α² dα on a partition: midpoint error Σ Δ³/12 = (1/24) Σ 2 Δ³, trapezoid −(1/12) Σ 2 Δ³
    grid, g2 = np.linspace(0, 1, 33)[:-1], np.full(32, 2.0)
    for rule, bound in (("midpoint", S.midpoint_bound), ("trapezoid", S.trapezoid_bound)):
        a, w = I.schedule_nodes(rule, SCHEDULE)
        err = abs(float((w * a**2).sum()) - 1 / 3)
        assert bound(SCHEDULE, grid, g2) == pytest.approx(err, rel=1e-12)
        assert bound(SCHEDULE, grid, g2, sup=True) == pytest.approx(err, rel=1e-12)
    assert S.trapezoid_bound(SCHEDULE, grid, g2) == pytest.approx(2 * S.midpoint_bound(SCHEDULE, grid, g2))


def test_sup_cubic_bound_sees_a_peak_inside_an_interval():
    grid = np.linspace(0, 1, 65)[:-1]
    g2 = np.where(np.abs(grid - 0.45) < 0.02, 10.0, 0.0)
    a = [0.0, 0.4, 0.5, 0.8]
    assert S.midpoint_bound(a, grid, g2, sup=True) >= S.midpoint_bound(a, grid, g2)
    assert S.midpoint_bound(a, grid, g2, sup=True) == pytest.approx(10.0 / 24 * 0.1**3)
    with pytest.raises(ValueError, match="alphas"):
        S.midpoint_bound([0.0, 0.5, 0.4], grid, g2)
    with pytest.raises(ValueError, match="gprime"):
        S.trapezoid_bound(a, grid, -g2 - 1)


def test_cubic_density_schedule():
    grid = np.linspace(0, 1, 129)[:-1]
    g2 = np.exp(-(((grid - 0.2) / 0.05) ** 2)) * 50 + 0.01
    a = S.cubic_density_schedule(16, grid, g2)
    np.testing.assert_allclose(a, S.density_schedule(16, grid, g2, power=1 / 3, floor=0.1))
    assert a[0] == 0 and np.all(np.diff(a) > 0) and a[-1] < 1 and len(a) == 16
    lin = rk.linear_schedule(16)
    assert S.midpoint_bound(a, grid, g2) < 0.5 * S.midpoint_bound(lin, grid, g2)
    # continuum optimum: with no floor the bound is close to (1/24n²)(∫|g''|^{1/3})³
    a0 = S.cubic_density_schedule(64, grid, g2, floor=0.0)
    dense = np.linspace(0, 1, 20001)
    cont = (np.trapezoid(np.interp(dense, grid, g2) ** (1 / 3), dense)) ** 3 / (24 * 64**2)
    assert S.midpoint_bound(a0, grid, g2) == pytest.approx(cont, rel=0.1)
    # a flat |g''| gives the linear partition
    np.testing.assert_allclose(S.cubic_density_schedule(8, grid, np.ones_like(grid)), rk.linear_schedule(8), atol=1e-12)


# ---------------------------------------------------------------- the "which schedule?" study


def _curves():
    grid = np.linspace(0, 1, 33)[:-1]
    return {"grid": grid, "gprime": np.exp(-(((grid - 0.3) / 0.1) ** 2)) + 0.05,
            "gsecond": np.abs(np.sin(6 * grid)) + 0.05}


@pytest.mark.parametrize("label", list(PL.WHICH_METHODS))
@pytest.mark.parametrize("n", [4, 9])
def test_which_nodes_spend_exactly_n_evaluations(label, n):
    rule, placement = PL.WHICH_METHODS[label]
    kw = PL.which_nodes(rule, placement, n, _curves(), maxiter=3)
    nodes, w = I.schedule_nodes(kw["rule"], kw["alphas"]) if "alphas" in kw else rk.rule_nodes(kw["rule"], kw["n"])
    assert len(nodes) == n and float(w.sum()) == pytest.approx(1.0)


def test_which_nodes_bad_combinations():
    with pytest.raises(ValueError, match="left-rule bound"):
        PL.which_nodes("midpoint", "paper", 8, _curves())
    with pytest.raises(ValueError, match="midpoint.*trapezoid"):
        PL.which_nodes("left", "cubic-density", 8, _curves())
    with pytest.raises(ValueError, match="placement"):
        PL.which_nodes("left", "magic", 8, _curves())


def test_which_schedule_study_small(conv_model, images):
    out = PL.which_schedule_study(conv_model, images, images.flip(-1), {"ig": {}, "guidedig": {}}, [4], k=8,
                                 fit_maxiter=3)
    assert set(out["errors"]["ig"]) == set(PL.WHICH_METHODS)
    assert set(out["errors"]["guidedig"]) == set(PL.WHICH_ADAPTIVE_METHODS)
    assert all(v[4].shape == (2,) and np.isfinite(v[4]).all() for v in out["errors"]["ig"].values())
    mean = PL.which_summary(out["errors"])
    rec = PL.which_recommendation(mean, [4])
    assert len(rec) == 2 and all(r["factor"] >= 1 for r in rec)
