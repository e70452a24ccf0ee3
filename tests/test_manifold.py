"""riemannkit.manifold: the Manifold IG path (decoded latent curve + residual), geodesics, batching."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import riemannkit as rk
from riemannkit import integrate as I
from riemannkit import manifold as M
from riemannkit import paths as P
from riemannkit.idgi import path_and_idgi
from riemannkit.schedule import estimate_gprime

from conftest import LinearDecoder as _LinearDecoder, MLPDecoder, SmoothNet

SHAPE = (1, 8, 8)
D = 4
F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def LinearDecoder(d=D, shape=SHAPE, seed=0, dtype=torch.float32):
    return _LinearDecoder(d, shape, seed, dtype)


def _images(b=3, seed=10, dtype=torch.float32):
    return torch.rand(b, *SHAPE, generator=_gen(seed), dtype=dtype)


def _knots(b=3, t=6, d=D, seed=20, dtype=torch.float32):
    return torch.randn(b, t, d, generator=_gen(seed), dtype=dtype)


def _linear_model(seed=0):
    from conftest import LinearModel

    return LinearModel(shape=SHAPE, n_out=3, seed=seed).eval()


def test_path_registered():
    assert "manifold" in rk.PATH_NAMES
    assert P.check_path_name("Manifold") == "manifold"
    with pytest.raises(ValueError, match="max_sigma"):
        P.path_function("manifold", max_sigma=3.0)


@pytest.mark.parametrize("dec_cls", [LinearDecoder, MLPDecoder])
def test_endpoints_exact_with_residual(dec_cls):
    x, xb = _images(dtype=F64), _images(seed=11, dtype=F64)
    dec = dec_cls(dtype=F64)
    knots = _knots(dtype=F64)
    pts, vel = M.manifold_path(x, torch.tensor([0.0, 0.3, 1.0], dtype=F64), dec, knots, xb)
    assert pts.shape == vel.shape == (3, 3, *SHAPE)
    torch.testing.assert_close(pts[0], xb, rtol=0, atol=1e-12)
    torch.testing.assert_close(pts[-1], x, rtol=0, atol=1e-12)
    # default baseline: black
    pts0, _ = M.manifold_path(x, torch.tensor([0.0], dtype=F64), dec, knots)
    torch.testing.assert_close(pts0[0], torch.zeros_like(x), rtol=0, atol=1e-12)


def test_without_residual_endpoints_are_reconstructions():
    x = _images(dtype=F64)
    dec, knots = MLPDecoder(dtype=F64), _knots(dtype=F64)
    pts, _ = M.manifold_path(x, torch.tensor([0.0, 1.0], dtype=F64), dec, knots, residual=False)
    with torch.no_grad():
        torch.testing.assert_close(pts[0], dec(knots[:, 0]))
        torch.testing.assert_close(pts[1], dec(knots[:, -1]))


@pytest.mark.parametrize("residual", [True, False])
def test_velocity_is_derivative_of_points(residual):
    x, xb = _images(dtype=F64), _images(seed=11, dtype=F64)
    dec, knots = MLPDecoder(dtype=F64), _knots(t=5, dtype=F64)
    # alphas strictly inside knot segments (the curve is only piecewise smooth at the knots i/(T-1))
    a = torch.tensor([0.1, 0.37, 0.6, 0.9], dtype=F64)
    h = 1e-6
    _, vel = M.manifold_path(x, a, dec, knots, xb, residual)
    plus, _ = M.manifold_path(x, a + h, dec, knots, xb, residual)
    minus, _ = M.manifold_path(x, a - h, dec, knots, xb, residual)
    torch.testing.assert_close(vel, (plus - minus) / (2 * h), rtol=1e-6, atol=1e-7)


def test_linear_decoder_linear_knots_is_straight_line_ig():
    # With g linear and knots on a latent line from z0 to z1, g(z(α)) = g(z0) + α (g(z1) − g(z0)),
    # so γ(α) = x' + α (x − x'): the IG path, and the attributions equal path='ig'.
    x, xb = _images(dtype=F64), _images(seed=11, dtype=F64)
    dec = LinearDecoder(dtype=F64)
    knots = M.linear_knots(torch.randn(3, D, dtype=F64), torch.randn(3, D, dtype=F64), T=7)
    a = torch.linspace(0, 1, 9, dtype=F64)
    pts, vel = M.manifold_path(x, a, dec, knots, xb)
    ref_pts, ref_vel = P.straight_line(x, a, xb)
    torch.testing.assert_close(pts, ref_pts)
    torch.testing.assert_close(vel, ref_vel)
    model = _linear_model()
    xf, xbf = x.float(), xb.float()
    kw = dict(decoder=LinearDecoder(), knots=knots.float(), baseline=xbf)
    for rule in ("left", "midpoint"):
        mig = rk.attribute(model, xf, path="manifold", rule=rule, n=8, target=1, **kw)
        ig = rk.attribute(model, xf, path="ig", rule=rule, n=8, target=1, baseline=xbf)
        torch.testing.assert_close(mig.attr, ig.attr, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(mig.f_baseline, ig.f_baseline)


def test_completeness_linear_classifier_exact():
    # f linear (logit): ∇f = w is constant, so the integral is w·(γ(1) − γ(0)) = f(x) − f(x').  With a
    # linear decoder γ' is constant on each knot segment, so a rule that puts its nodes inside the segments
    # with equal weight per segment integrates it exactly, whatever the (bent) knots.
    model = _linear_model(seed=1)
    x, xb = _images(), _images(seed=11)
    knots = _knots(t=5)
    dec = LinearDecoder()
    # knots at α = i/4; a midpoint rule with n = 8 puts 2 nodes per segment where γ' is constant
    res = rk.attribute(model, x, path="manifold", rule="midpoint", n=8, target=2, output="logit",
                       decoder=dec, knots=knots, baseline=xb)
    delta = res.f_input - res.f_baseline
    torch.testing.assert_close(res.attr.flatten(1).sum(1), delta, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(res.f_baseline, model(xb)[:, 2])


def test_completeness_error_falls_with_n():
    model = SmoothNet().eval()
    x, xb = _images(), _images(seed=11) * 0.2
    dec, knots = MLPDecoder(), _knots(t=5)
    errs = []
    for n in (4, 16, 64):
        r = rk.attribute(model, x, path="manifold", rule="left", n=n, output="logit", decoder=dec, knots=knots, baseline=xb)
        errs.append(float((r.attr.flatten(1).sum(1) - (r.f_input - r.f_baseline)).abs().mean()))
    assert errs[0] > 2 * errs[1] > 4 * errs[2], errs
    assert errs[2] < 0.1 * errs[0]


def test_batch_split_equals_whole_batch():
    model = SmoothNet().eval()
    x, xb = _images(b=5), _images(b=5, seed=11)
    dec, knots = MLPDecoder(), _knots(b=5, t=4)
    kw = dict(decoder=dec, knots=knots, baseline=xb)
    whole = rk.attribute(model, x, path="manifold", n=6, batch_size=64, **kw)
    split = rk.attribute(model, x, path="manifold", n=6, batch_size=2, **kw)
    torch.testing.assert_close(split.attr, whole.attr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(split.f_baseline, whole.f_baseline)
    # the IDGI engine and Algorithm 1 split the same way
    p_whole, i_whole = path_and_idgi(model, x, "manifold", n=6, batch_size=64, **kw)
    p_split, i_split = path_and_idgi(model, x, "manifold", n=6, batch_size=2, **kw)
    torch.testing.assert_close(p_split.attr, p_whole.attr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(i_split.attr, i_whole.attr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p_whole.attr, whole.attr, rtol=1e-5, atol=1e-6)
    g_whole = estimate_gprime(model, x, "manifold", k=8, batch_size=64, **kw)[1]
    g_split = estimate_gprime(model, x, "manifold", k=8, batch_size=2, **kw)[1]
    assert abs(g_split - g_whole).max() <= 1e-5 * max(1.0, abs(g_whole).max())


def test_image_batches_slices_per_image_kwargs():
    x = _images(b=5)
    knots, base = _knots(b=5), _images(b=5, seed=3)
    shared = _images(b=1, seed=4)[0]  # one (C, H, W) baseline for every image: not sliced
    parts = I.image_batches(x, 2, dict(knots=knots, baseline=base, residual=True))
    assert [sl for sl, _ in parts] == [slice(0, 2), slice(2, 4), slice(4, 6)]
    for sl, kw in parts:
        assert torch.equal(kw["knots"], knots[sl]) and torch.equal(kw["baseline"], base[sl]) and kw["residual"] is True
    parts = I.image_batches(x, 2, dict(baseline=shared))
    assert all(kw["baseline"] is shared for _, kw in parts)


def test_idgi_complete_on_manifold_path():
    model = SmoothNet().eval()
    x = _images()
    _, idgi = path_and_idgi(model, x, "manifold", n=8, decoder=MLPDecoder(), knots=_knots())
    torch.testing.assert_close(idgi.attr.flatten(1).sum(1), idgi.f_input - idgi.f_baseline, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- geodesics


def test_curve_energy_of_straight_line():
    dec = LinearDecoder(dtype=F64)
    z0, z1 = torch.randn(2, D, dtype=F64), torch.randn(2, D, dtype=F64)
    e = M.curve_energy(dec, M.linear_knots(z0, z1, 11))
    with torch.no_grad():
        torch.testing.assert_close(e, (dec(z1) - dec(z0)).flatten(1).pow(2).sum(1))


def test_geodesic_energy_decreases_endpoints_fixed():
    dec = MLPDecoder(dtype=F64)
    z0, z1 = 2 * torch.randn(3, D, dtype=F64, generator=_gen(1)), 2 * torch.randn(3, D, dtype=F64, generator=_gen(2))
    for opt, lr, drop in (("adam", 0.05, 0.95), ("gd", 0.01, 0.98)):
        geo = M.geodesic(dec, z0, z1, T=8, steps=60, lr=lr, optimizer=opt)
        assert geo.knots.shape == (3, 8, D) and geo.energy.shape == (61, 3)
        assert torch.equal(geo.knots[:, 0], z0) and torch.equal(geo.knots[:, -1], z1)
        final = M.curve_energy(dec, geo.knots).detach()
        assert (final <= geo.energy[0] + 1e-12).all()
        assert (final < drop * geo.energy[0]).all(), (opt, final, geo.energy[0])
        torch.testing.assert_close(final, geo.energy.min(0).values)
    # plain GD with a small step never increases the energy
    geo = M.geodesic(dec, z0, z1, T=8, steps=30, lr=0.005, optimizer="gd")
    assert (geo.energy.diff(dim=0) <= 1e-12).all()


def test_geodesic_on_linear_decoder_is_straight_line():
    dec = LinearDecoder(dtype=F64)
    z0, z1 = torch.randn(2, D, dtype=F64), torch.randn(2, D, dtype=F64)
    line = M.linear_knots(z0, z1, 6)
    geo = M.geodesic(dec, z0, z1, T=6, steps=50, lr=0.01)
    # the straight line is already the minimum: the energy cannot go below it
    torch.testing.assert_close(geo.energy.min(0).values, geo.energy[0])
    with torch.no_grad():
        torch.testing.assert_close(dec(geo.knots.reshape(-1, D)), dec(line.reshape(-1, D)), rtol=1e-6, atol=1e-8)
    # started away from the line, it returns to a curve of the straight line's energy
    bent = line.clone()
    bent[:, 1:-1] += 0.5 * torch.randn(2, 4, D, dtype=F64, generator=_gen(3))
    geo2 = M.geodesic(dec, z0, z1, T=6, steps=400, lr=0.02, init=bent)
    torch.testing.assert_close(geo2.energy[-1], geo.energy[0], rtol=1e-3, atol=1e-6)


# ---------------------------------------------------------------- bad input


def test_bad_inputs():
    model = SmoothNet().eval()
    x = _images()
    dec, knots = MLPDecoder(), _knots()
    a = torch.tensor([0.0, 0.5])
    with pytest.raises(ValueError, match="decoder"):
        M.manifold_path(x, a, None, knots)
    with pytest.raises(ValueError, match="knots"):
        M.manifold_path(x, a, dec, None)
    with pytest.raises(ValueError, match="knots"):
        M.manifold_path(x, a, dec, knots[0])  # (T, d): no image axis
    with pytest.raises(ValueError, match="knots"):
        M.manifold_path(x, a, dec, knots[:2])  # 2 rows for 3 images
    with pytest.raises(ValueError, match="T >= 2"):
        M.manifold_path(x, a, dec, knots[:, :1])
    with pytest.raises(ValueError, match="decoder output shape"):
        M.manifold_path(torch.rand(3, 1, 4, 4), a, dec, knots)
    with pytest.raises(ValueError, match="alphas"):
        M.manifold_path(x, torch.tensor([1.5]), dec, knots)
    with pytest.raises(ValueError, match="decoder"):
        rk.attribute(model, x, path="manifold", knots=knots)
    with pytest.raises(ValueError, match="knots"):
        rk.attribute(model, x, path="manifold", decoder=dec)
    with pytest.raises(ValueError, match="T"):
        M.linear_knots(knots[:, 0], knots[:, 1], T=1)
    with pytest.raises(ValueError, match="optimizer"):
        M.geodesic(dec, knots[:, 0], knots[:, -1], optimizer="lbfgs")
    with pytest.raises(ValueError, match="init"):
        M.geodesic(dec, knots[:, 0], knots[:, -1], init=knots[:2])
    with pytest.raises(ValueError, match="latent_dim"):
        M.ConvVAE(latent_dim=0)


def test_conv_vae_shapes():
    vae = M.ConvVAE(latent_dim=3, width=4).eval()
    x = torch.rand(2, 1, 28, 28)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (2, 3)
    out = vae.decode(mu)
    assert out.shape == x.shape and (out > 0).all() and (out < 1).all()
    assert float(M.vae_loss(vae, x).detach()) > 0
    knots = M.linear_knots(mu, mu.flip(0), 4)
    pts, vel = M.manifold_path(x, torch.tensor([0.0, 0.5]), vae.decode, knots)
    assert pts.shape == vel.shape == (2, 2, 1, 28, 28)


# ---------------------------------------------------------------- the attack helpers


def test_differentiable_ig_matches_attribute():
    model = SmoothNet().eval()
    x, xb = _images(), _images(seed=11) * 0.3
    cls = I.predict(model, x)
    ig = M.differentiable_ig(model, x, cls, xb, n=8)
    ref = rk.attribute(model, x, "ig", rule="midpoint", n=8, target=cls, baseline=xb)
    torch.testing.assert_close(ig.detach(), ref.attr, rtol=1e-5, atol=1e-7)
    # differentiable in x through the model's second derivatives
    xa = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(M.differentiable_ig(model, xa, cls, xb, n=4).pow(2).sum(), xa)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_saliency_and_similarity():
    a = torch.rand(2, 1, 6, 6, generator=_gen(1)) - 0.5
    s = M.saliency(a)
    assert s.shape == (2, 6, 6)
    torch.testing.assert_close(s.flatten(1).sum(1), torch.ones(2))
    same = M.map_similarity(s, s)
    torch.testing.assert_close(same["pearson"], torch.ones(2, dtype=F64))
    torch.testing.assert_close(same["topk"], torch.ones(2, dtype=F64))
    other = M.map_similarity(s, s.flip(0))
    assert (other["pearson"] < 1).all() and (other["topk"] <= 1).all()


def test_targeted_attack_respects_constraints():
    model = SmoothNet().eval()
    x = _images()
    cls = I.predict(model, x)
    target_map = M.saliency(M.differentiable_ig(model, _images(seed=12), cls).detach())
    res = M.targeted_ig_attack(model, x, target_map, eps=0.05, steps=8, n=4)
    assert res.loss.shape == (9, 3)
    assert (res.x_adv - x).abs().max() <= 0.05 + 1e-6
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.equal(I.predict(model, res.x_adv), cls)
    final = (M.saliency(M.differentiable_ig(model, res.x_adv, cls, n=4).detach()) - target_map).flatten(1).pow(2).sum(1)
    # An image the attack does not improve returns x, whose float32 loss is recomputed here in a pass that
    # need not match the attack's bit for bit.
    assert (final <= res.loss[0] * (1 + 1e-5)).all()
    assert (final < res.loss[0]).any()
    with pytest.raises(ValueError, match="eps"):
        M.targeted_ig_attack(model, x, target_map, eps=0)
