"""riemannkit.schedule: the faithful (exact-kernel) bound, the √|g'| density schedule, Powell on them."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

import riemannkit as rk
from riemannkit import schedule as S

GRID = np.arange(128) / 128


def _left_error_terms(alphas, G, g):
    """Per-interval left-rule errors E_i from an antiderivative G of g."""
    ends = np.append(np.asarray(alphas, float), 1.0)
    return G(ends[1:]) - G(ends[:-1]) - np.diff(ends) * g(ends[:-1])


# ---------------------------------------------------------------- faithful bound


def test_faithful_bound_hand_computed():
    # |g'(t)| = t on [0, 1]: ∫_0^1 t (1 − t) dt = 1/6; with a point at ½: ∫_0^½ t(½ − t) + ∫_½^1 t(1 − t) = 1/48 + 1/12
    grid, gp = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    assert S.faithful_bound([0.0], grid, gp) == pytest.approx(1 / 6, rel=1e-14)
    assert S.faithful_bound([0.0, 0.5], grid, gp) == pytest.approx(5 / 48, rel=1e-14)
    # a hat |g'| = 1 − |2t − 1| (grid point at ½ inside one interval): ∫_0^1 (1 − |2t − 1|)(1 − t) dt = ½ · ½ = 1/4
    grid, gp = np.array([0.0, 0.5, 1.0]), np.array([0.0, 1.0, 0.0])
    assert S.faithful_bound([0.0], grid, gp) == pytest.approx(0.25, rel=1e-14)
    # constant |g'| = c: exactly the paper's ½ Σ c Δα²
    a = [0.0, 0.1, 0.45, 0.5, 0.9]
    c = np.full(128, 3.0)
    assert S.faithful_bound(a, GRID, c) == pytest.approx(S.paper_bound(a, GRID, c), rel=1e-13)
    # held constant past the grid's last point, as gprime_at: |g'| = 2 on [0.5, 1]
    assert S.faithful_bound([0.0, 0.5], np.array([0.0, 0.5]), np.array([2.0, 2.0])) == pytest.approx(0.25 + 0.25)


def test_faithful_bound_exact_for_piecewise_linear_gprime():
    # g' ≥ 0 piecewise linear on the grid ⇒ the interpolant is exact and every E_i ≥ 0, so the bound equals |E|.
    knots = np.array([0.0, 0.3, 0.35, 0.4, 0.8, 1.0])
    vals = np.array([0.1, 0.1, 5.0, 0.2, 1.0, 0.0])
    # E_i = ∫ g'(t)(α_{i+1} − t) dt by a fine composite rule (the bound itself is the closed form).
    rng = np.random.default_rng(3)
    a = np.concatenate([[0.0], np.sort(rng.random(6))])
    ends = np.append(a, 1.0)
    e = [np.trapezoid(np.interp(t, knots, vals) * (ends[i + 1] - t), t)
         for i in range(len(a)) for t in [np.linspace(ends[i], ends[i + 1], 400_001)]]
    assert S.faithful_bound(a, knots, vals) == pytest.approx(sum(e), rel=1e-8)


@pytest.mark.parametrize("c,w", [(0.61, 0.004), (0.55, 0.08), (0.7, 0.05)])
@pytest.mark.parametrize("n", [4, 8, 16, 32])
def test_faithful_bound_above_true_left_error(c, w, n):
    # g = d/dα σ((α − c)/w): known antiderivative, g' in closed form, tabulated on a fine grid.
    G = lambda a: expit((a - c) / w)  # noqa: E731
    g = lambda a: G(a) * (1 - G(a)) / w  # noqa: E731
    dg = lambda a: G(a) * (1 - G(a)) * (1 - 2 * G(a)) / w**2  # noqa: E731
    grid = np.linspace(0, 1, 20_001)
    gp = np.abs(dg(grid))
    for a in (S.linear_schedule(n), S.density_schedule(n, grid, gp), S.fit_schedule(grid[::20], gp[::20], n)):
        e_i = _left_error_terms(a, G, g)
        fb = S.faithful_bound(a, grid, gp)
        assert fb * (1 + 1e-6) >= np.abs(e_i).sum() >= abs(e_i.sum())
    # the exact kernel is tight where g' keeps its sign on every interval
    a = np.array([0.0, c])  # two intervals: g' ≥ 0 on [0, c], ≤ 0 on [c, 1]
    e_i = _left_error_terms(a, G, g)
    assert S.faithful_bound(a, grid, gp) == pytest.approx(np.abs(e_i).sum(), rel=1e-4)  # |g'| interpolation error only


def test_faithful_bound_sees_a_peak_the_paper_bound_misses():
    c, w = 0.56, 0.004
    grid = np.linspace(0, 1, 4097)
    s = expit((grid - c) / w)
    gp = np.abs(s * (1 - s) * (1 - 2 * s) / w**2)
    lin = S.linear_schedule(8)  # the peak lies inside [0.5, 0.625]
    assert S.paper_bound(lin, grid, gp) < 1e-3 < 0.1 < S.faithful_bound(lin, grid, gp) <= S.sup_bound(lin, grid, gp)


def test_faithful_bound_bad_input():
    with pytest.raises(ValueError, match="alphas"):
        S.faithful_bound([0.0, 0.6, 0.5], GRID, np.ones(128))
    with pytest.raises(ValueError, match="gprime"):
        S.faithful_bound([0.0], GRID, -np.ones(128))
    with pytest.raises(ValueError, match="equal length"):
        S.faithful_bound([0.0], GRID[:5], np.ones(128))
    with pytest.raises(ValueError, match="grid"):
        S.faithful_bound([0.0], GRID[::-1], np.ones(128))


def test_fast_faithful_objective_matches():
    gp = np.exp(-(((GRID - 0.8) / 0.05) ** 2)) + 0.01 * GRID
    f = S._faithful_objective(GRID, gp)
    rng = np.random.default_rng(0)
    for n in (1, 3, 17, 100):
        a = np.unique(np.concatenate([[0.0], rng.random(n)]))
        assert f(a) == pytest.approx(S.faithful_bound(a, GRID, gp), rel=1e-9)


# ---------------------------------------------------------------- density schedule


@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_density_schedule_is_valid(n):
    gp = np.exp(-(((GRID - 0.8) / 0.05) ** 2))
    for floor in (0.0, 0.1, 0.5):
        a = S.density_schedule(n, GRID, gp, floor=floor)
        assert a.shape == (n,) and a[0] == 0.0 and np.all(a < 1) and np.all(np.diff(a) > 0)
        rk.schedule_weights(a)  # a valid schedule for attribute()


def test_density_schedule_uniform_for_constant_zero_or_full_floor():
    np.testing.assert_allclose(S.density_schedule(10, GRID, np.full(128, 2.5)), S.linear_schedule(10), atol=1e-12)
    np.testing.assert_array_equal(S.density_schedule(10, GRID, np.zeros(128)), S.linear_schedule(10))
    gp = np.exp(-(((GRID - 0.8) / 0.05) ** 2))
    np.testing.assert_allclose(S.density_schedule(10, GRID, gp, floor=1.0), S.linear_schedule(10), atol=1e-12)


def test_density_schedule_denser_where_gprime_larger():
    gp = 1.0 + 99.0 * (GRID >= 0.5)  # √|g'| is 10× larger on the right half (linear ramp over one grid step)
    a = S.density_schedule(40, GRID, gp, floor=0.0)
    ends = np.append(a, 1.0)
    gaps = np.diff(ends)
    left, right = gaps[ends[1:] < 0.49], gaps[a > 0.51]  # intervals wholly on one side
    np.testing.assert_allclose(left / right.mean(), 10.0, rtol=1e-9)
    # the exact inverse CDF: F(½) = 1/11 of the mass, so 40/11 ≈ 3.6 points land in [0, ½)
    assert np.sum(a < 0.5) == 4


def test_density_schedule_inverse_cdf_exact():
    # |g'| = t on [0, 1], power ½: F(t) = t^{3/2} exactly, so α_i = (i/n)^{2/3}
    grid, gp = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    n = 9
    np.testing.assert_allclose(S.density_schedule(n, grid, gp, floor=0.0), (np.arange(n) / n) ** (2 / 3), rtol=1e-12, atol=1e-14)
    # power 1: F(t) = t², α_i = sqrt(i/n); with floor f: F = (1 − f) t² + f t
    np.testing.assert_allclose(S.density_schedule(n, grid, gp, power=1.0, floor=0.0), np.sqrt(np.arange(n) / n), rtol=1e-12)
    f, q = 0.3, np.arange(n) / n
    expected = (-f + np.sqrt(f**2 + 4 * (1 - f) * q)) / (2 * (1 - f))
    np.testing.assert_allclose(S.density_schedule(n, grid, gp, power=1.0, floor=f), expected, rtol=1e-12, atol=1e-15)


def test_density_schedule_floor_caps_the_gaps():
    gp = np.exp(-(((GRID - 0.8) / 0.02) ** 2))
    for floor in (0.1, 0.25):
        a = S.density_schedule(16, GRID, gp, floor=floor)
        assert np.diff(np.append(a, 1.0)).max() <= 1 / (16 * floor) + 1e-12


def test_density_schedule_approaches_continuum_bound():
    # For smooth |g'| all three bounds of the √|g'| schedule tend to (1/2n)(∫√|g'|)², the continuum minimum.
    grid = np.linspace(0, 1, 4001)
    gp = (1 + grid) ** 2  # ∫_0^1 √|g'| = 3/2
    limit = 0.5 * 1.5**2
    prev = None
    for n in (16, 64, 256):
        a = S.density_schedule(n, grid, gp, floor=0.0)
        vals = [n * S.paper_bound(a, grid, gp), n * S.faithful_bound(a, grid, gp), n * S.sup_bound(a, grid, gp)]
        gap = max(abs(v - limit) for v in vals)
        assert prev is None or gap < prev
        prev = gap
        # and the linear schedule's bound tends to the larger (1/2n) ∫|g'| = (1/2n)·7/3
        assert n * S.faithful_bound(S.linear_schedule(n), grid, gp) > limit
    assert prev < 0.01 * limit


def test_density_schedule_lowers_bounds_vs_linear():
    gp = np.exp(-(((GRID - 0.8) / 0.05) ** 2)) + 1e-3
    for n in (8, 16, 32, 64):
        a, lin = S.density_schedule(n, GRID, gp), S.linear_schedule(n)
        for b in ("faithful", "sup") if n == 8 else ("paper", "faithful", "sup"):
            assert S.BOUNDS[b](a, GRID, gp) < 0.8 * S.BOUNDS[b](lin, GRID, gp)
    # the continuum argument is asymptotic: at n = 8 the paper's left-point B of this schedule is 5 % above linear's
    a8 = S.density_schedule(8, GRID, gp)
    assert S.paper_bound(a8, GRID, gp) > S.paper_bound(S.linear_schedule(8), GRID, gp)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(n=0), "n must be"),
        (dict(n=2.5), "n must be"),
        (dict(power=-1.0), "power"),
        (dict(floor=1.5), "floor"),
        (dict(floor=float("nan")), "floor"),
        (dict(gprime=-np.ones(128)), "gprime"),
        (dict(gprime=np.ones(5)), "equal length"),
    ],
)
def test_density_schedule_bad_input(kw, match):
    args = dict(n=8, grid=GRID, gprime=np.ones(128)) | kw
    with pytest.raises(ValueError, match=match):
        S.density_schedule(**args)


# ---------------------------------------------------------------- Powell on the faithful bound


def test_fit_schedule_faithful_and_density_init():
    gp = np.exp(-(((GRID - 0.8) / 0.05) ** 2))
    n = 16
    lin = S.faithful_bound(S.linear_schedule(n), GRID, gp)
    for init in ("linear", "density"):
        a = S.fit_schedule(GRID, gp, n, bound="faithful", init=init)
        assert a.shape == (n,) and a[0] == 0 and np.all(np.diff(a) > 0) and a[-1] < 1
        assert np.diff(np.append(a, 1)).min() >= 0.2 / n - 1e-12
        assert S.faithful_bound(a, GRID, gp) < 0.8 * lin
    # the paper-bound fit leaves one long interval from 0; the faithful fit does not collapse like that
    paper = S.fit_schedule(GRID, gp, n, bound="paper")
    faith = S.fit_schedule(GRID, gp, n, bound="faithful")
    assert S.faithful_bound(faith, GRID, gp) < S.faithful_bound(paper, GRID, gp)
    # a density start never ends worse in its bound than the start itself
    start = S.density_schedule(n, GRID, gp)
    d = S.fit_schedule(GRID, gp, n, bound="sup", init="density", min_gap=0.0, maxiter=1)
    assert S.sup_bound(d, GRID, gp) <= S.sup_bound(start, GRID, gp) * (1 + 1e-9)


def test_fit_schedule_constant_faithful_is_linear():
    a = S.fit_schedule(GRID, np.full(128, 2.0), 8, bound="faithful")
    np.testing.assert_allclose(a, S.linear_schedule(8), atol=1e-4)


def test_fit_schedule_rejects_unknown_options():
    with pytest.raises(ValueError, match="paper, sup, faithful"):
        S.fit_schedule(GRID, np.ones(128), 4, bound="density")
    with pytest.raises(ValueError, match="linear, density"):
        S.fit_schedule(GRID, np.ones(128), 4, init="random")


def test_density_schedule_nearly_flat_pieces_are_stable():
    # pieces with tiny slopes must not lose precision to cancellation in (p_v^q − p_u^q)/(p_v − p_u)
    for eps in (1e-13, 1e-9, 1e-7, 1e-5):
        a = S.density_schedule(10, np.array([0.0, 1.0]), np.array([1.0, 1.0 + eps]), floor=0.0)
        np.testing.assert_allclose(a, S.linear_schedule(10), atol=max(eps, 1e-12))


def test_faithful_bound_never_above_sup_bound():
    rng = np.random.default_rng(7)
    for _ in range(20):
        gp = rng.random(128) ** 3 * 10
        a = np.unique(np.concatenate([[0.0], rng.random(rng.integers(1, 30))]))
        assert S.faithful_bound(a, GRID, gp) <= S.sup_bound(a, GRID, gp) * (1 + 1e-12)
