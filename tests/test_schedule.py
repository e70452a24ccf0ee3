"""riemannkit.schedule: Algorithm 1 (estimate_gprime), the paper's bound, Powell's fit, save/load."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import riemannkit as rk
from riemannkit import schedule as S

GRID = np.arange(128) / 128


def _bump(grid=GRID):
    return np.exp(-(((grid - 0.8) / 0.05) ** 2))  # |g'| ≈ 0 over most of [0, 0.6]


# ---------------------------------------------------------------- 7. Algorithm 1


@pytest.mark.parametrize("use_baseline", [False, True])
def test_estimate_gprime_quadratic_is_constant(quad_model, images, baseline, use_baseline):
    kw = {"baseline": baseline} if use_baseline else {}
    xb = baseline if use_baseline else torch.zeros_like(images)
    d = (images - xb).double()
    slope = d * quad_model.hess_dot(d)  # g'(α) = d ⊙ Q d for every α
    expected = float(slope.abs().flatten(1).mean(1).mean(0))
    k = 8
    grid, gp = rk.estimate_gprime(quad_model, images, k=k, output="logit", target=0, **kw)
    assert isinstance(grid, np.ndarray) and isinstance(gp, np.ndarray)
    assert grid.shape == gp.shape == (k,)
    np.testing.assert_allclose(grid, np.arange(k) / k)
    np.testing.assert_allclose(gp, expected, rtol=2e-3)


def test_estimate_gprime_cubic_is_linear_in_alpha(cubic_model, images):
    # f = (v·x)³/6 on the IG path from 0: g(α) = ½ α² s² (x ⊙ v) with s = v·x, so
    # |g'(α)| = α s² |x ⊙ v| and the forward difference over [α, α + h] is exactly (α + h/2) s² |x ⊙ v|.
    k = 16
    x = images.double()
    s = x.flatten(1) @ cubic_model.v64
    c = float((s**2 * (x.flatten(1) * cubic_model.v64).abs().mean(1)).mean())
    grid, gp = rk.estimate_gprime(cubic_model, images, k=k, output="logit", target=0, batch_size=64)
    assert gp.shape == (k,)
    np.testing.assert_allclose(gp, c * (grid + 0.5 / k), rtol=1e-3)
    # and |g'(α)| itself within the forward difference's h/2 offset
    np.testing.assert_allclose(gp, c * grid, atol=c * 0.5 / k + 1e-6)
    assert np.all(np.diff(gp) > 0)


@pytest.mark.parametrize("path,kw", [("ig", {}), ("blurig", {"max_sigma": 4.0})])
def test_estimate_gprime_independent_of_chunking(conv_model, images, path, kw):
    # batch_size=2 → one alpha per chunk: the forward differences straddle every chunk boundary
    res = [rk.estimate_gprime(conv_model, images, path=path, k=12, batch_size=bs, **kw)[1] for bs in (2, 6, 64)]
    assert np.all(res[0] > 0)
    for r in res[1:]:
        np.testing.assert_allclose(r, res[0], rtol=1e-4, atol=1e-7)


def test_estimate_gprime_guided_shape(conv_model, images):
    grid, gp = rk.estimate_gprime(conv_model, images, path="guidedig", k=8)
    assert grid.shape == gp.shape == (8,)
    assert np.all(np.isfinite(gp)) and np.all(gp >= 0) and gp.max() > 0
    assert gp[-1] == gp[-2]


def test_estimate_gprime_bad_input(quad_model, images):
    with pytest.raises(ValueError, match="k must be"):
        rk.estimate_gprime(quad_model, images, k=1)
    with pytest.raises(ValueError, match="path"):
        rk.estimate_gprime(quad_model, images, path="foo", k=4)


# ---------------------------------------------------------------- the bound


def test_paper_bound_hand_computed():
    grid = np.array([0.0, 0.5])
    gprime = np.array([1.0, 3.0])
    alphas = [0.0, 0.25, 0.5]
    # |g'| interpolated: 1, 2, 3; steps 0.25, 0.25, 0.5
    expected = 0.5 * (1 * 0.25**2 + 2 * 0.25**2 + 3 * 0.5**2)
    assert rk.paper_bound(alphas, grid, gprime) == pytest.approx(expected)
    assert S.gprime_at(0.9, grid, gprime) == 3.0  # held past the grid's end
    np.testing.assert_array_equal(rk.linear_schedule(4), [0, 0.25, 0.5, 0.75])


# ---------------------------------------------------------------- 8. Powell


def _check_schedule(alphas, n, min_gap):
    assert alphas.shape == (n,)
    assert alphas[0] == 0.0
    assert np.all(alphas < 1) and np.all(alphas >= 0)
    gaps = np.diff(np.append(alphas, 1.0))
    assert np.all(gaps >= min_gap / n - 1e-12), gaps.min()
    assert gaps.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("min_gap", [0.2, 0.5])
def test_fit_schedule_bump(min_gap):
    n = 12
    gp = _bump()
    alphas = rk.fit_schedule(GRID, gp, n, min_gap=min_gap)
    _check_schedule(alphas, n, min_gap)
    lin = rk.paper_bound(rk.linear_schedule(n), GRID, gp)
    fit = rk.paper_bound(alphas, GRID, gp)
    assert fit < 0.8 * lin
    # the points crowd where |g'| is large
    in_bump = np.sum((alphas > 0.7) & (alphas < 0.9))
    assert in_bump > np.sum((rk.linear_schedule(n) > 0.7) & (rk.linear_schedule(n) < 0.9))


def test_fit_schedule_non_constant_lowers_bound():
    n = 10
    gp = 1.0 + 4.0 * GRID**2
    alphas = rk.fit_schedule(GRID, gp, n)
    _check_schedule(alphas, n, 0.2)
    assert rk.paper_bound(alphas, GRID, gp) < rk.paper_bound(rk.linear_schedule(n), GRID, gp) * (1 - 1e-3)


def test_fit_schedule_constant_is_linear():
    n = 10
    alphas = rk.fit_schedule(GRID, np.full_like(GRID, 2.5), n)
    np.testing.assert_allclose(alphas, rk.linear_schedule(n), atol=1e-4)


def test_fit_schedule_deterministic_and_trivial_cases():
    gp = _bump()
    a1, a2 = rk.fit_schedule(GRID, gp, 8), rk.fit_schedule(GRID, gp, 8)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(rk.fit_schedule(GRID, gp, 1), [0.0])
    # the fitted schedule is a valid schedule for attribute()
    assert float(rk.schedule_weights(a1).sum()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args,kw,match",
    [
        ((GRID, _bump(), 0), {}, "n must be"),
        ((GRID, _bump(), 4), {"min_gap": 1.0}, "min_gap"),
        ((GRID, -_bump(), 4), {}, "gprime"),
        ((GRID, np.full(128, np.nan), 4), {}, "gprime"),
        ((GRID[:10], _bump(), 4), {}, "equal length"),
    ],
)
def test_fit_schedule_bad_input(args, kw, match):
    with pytest.raises(ValueError, match=match):
        rk.fit_schedule(*args, **kw)


# ---------------------------------------------------------------- 9. save / load


def test_save_load_round_trip(tmp_path):
    gp = _bump()
    alphas = rk.fit_schedule(GRID, gp, 6)
    f = tmp_path / "sub" / "sched.json"  # the parent folder is created
    rk.save_schedule(f, alphas, model="tiny", path="ig", k=128, m=2, grid=GRID, gprime=gp, note="x")
    rec = rk.load_schedule(f)
    assert isinstance(rec["alphas"], np.ndarray)
    np.testing.assert_array_equal(rec["alphas"], alphas)
    assert (rec["model"], rec["path"], rec["k"], rec["m"], rec["n"], rec["note"]) == ("tiny", "ig", 128, 2, 6, "x")
    np.testing.assert_array_equal(rec["grid"], GRID)
    np.testing.assert_array_equal(rec["gprime"], gp)
    assert rec["bound"] == pytest.approx(rk.paper_bound(alphas, GRID, gp))
    # load accepts a str path too
    np.testing.assert_array_equal(rk.load_schedule(str(f))["alphas"], alphas)


def test_load_missing_file_names_path(tmp_path):
    missing = tmp_path / "nope" / "schedule.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        rk.load_schedule(missing)


def test_save_rejects_invalid_alphas(tmp_path):
    with pytest.raises(ValueError, match="alphas"):
        rk.save_schedule(tmp_path / "s.json", [0.0, 0.5, 0.4], model="m", path="ig", k=4, m=1,
                         grid=GRID, gprime=_bump())
    assert not (tmp_path / "s.json").exists()


def test_load_rejects_bad_records(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"model": "m", "path": "ig", "alphas": [0.0, 0.5]}))
    with pytest.raises(ValueError, match="lacks"):
        rk.load_schedule(f)
    f.write_text(json.dumps({"model": "m", "path": "ig", "k": 4, "m": 1, "n": 3, "alphas": [0.0, 0.5]}))
    with pytest.raises(ValueError, match="n=3"):
        rk.load_schedule(f)
    f.write_text(json.dumps({"model": "m", "path": "ig", "k": 4, "m": 1, "n": 2, "alphas": [0.0, 1.5]}))
    with pytest.raises(ValueError, match="alphas"):
        rk.load_schedule(f)


def test_estimate_gprime_same_when_images_exceed_batch_size():
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    x = torch.rand(5, 3, 4, 4)
    grid1, a = rk.estimate_gprime(net, x, "ig", k=8, output="logit", batch_size=64)
    grid2, b = rk.estimate_gprime(net, x, "ig", k=8, output="logit", batch_size=2)
    np.testing.assert_array_equal(grid1, grid2)
    # Float32 integrands from differently shaped passes (~1e-7 apart), then forward differences, which
    # amplify that by ~|g| / |Δg|: the same tolerance as the chunking test above.
    np.testing.assert_allclose(a, b, rtol=1e-4)


def _sigmoid_rise_gprime():
    grid = np.linspace(0, 1, 129)[:-1]
    s = 1 / (1 + np.exp(-20 * (grid - 0.7)))
    return grid, np.abs(400 * s * (1 - s) * (1 - 2 * s))


def test_sup_bound_matches_brute_force_maximum():
    grid, gp = _sigmoid_rise_gprime()
    rng = np.random.default_rng(0)
    a = np.sort(rng.random(10))
    a[0] = 0
    fine = np.linspace(0, 1, 200_001)
    vals, ends = S.gprime_at(fine, grid, gp), np.append(a, 1)
    brute = sum(0.5 * vals[(fine >= ends[i]) & (fine <= ends[i + 1])].max() * (ends[i + 1] - ends[i]) ** 2 for i in range(10))
    assert S.sup_bound(a, grid, gp) == pytest.approx(brute, rel=1e-4)
    assert S.sup_bound(a, grid, gp) >= S.paper_bound(a, grid, gp)


def test_sup_bound_fit_leaves_no_huge_interval_where_paper_bound_collapses():
    grid, gp = _sigmoid_rise_gprime()
    paper = S.fit_schedule(grid, gp, 32, bound="paper")
    sup = S.fit_schedule(grid, gp, 32, bound="sup")
    # The paper's bound is minimised by one interval from α=0 (|g'| ≈ 0) across most of the rise.
    assert np.diff(np.append(paper, 1)).max() > 0.5
    assert np.diff(np.append(sup, 1)).max() < 0.3
    assert S.sup_bound(sup, grid, gp) < S.sup_bound(S.linear_schedule(32), grid, gp)
    with pytest.raises(ValueError, match="bound"):
        S.fit_schedule(grid, gp, 8, bound="nope")
