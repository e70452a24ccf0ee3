"""riemannkit.paths.samp: the greedy Salient Manipulation Path (SAMP) and its use through the package."""
from __future__ import annotations

import pytest
import torch

import riemannkit as rk
from riemannkit import evaluation as EV
from riemannkit import gradient_methods as GM
from riemannkit import paths as P
from riemannkit.idgi import path_and_idgi

F64 = torch.float64


def _rand(*shape, seed=0, dtype=F64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _linear_grad_fn(w):
    return lambda pts: w.to(pts).expand_as(pts).clone()


def _points(start, deltas):
    """Path points in α order from the baseline: start, start + d_0, …"""
    return torch.cat([start.unsqueeze(0), start.unsqueeze(0) + deltas.cumsum(0)])


@pytest.mark.parametrize("direction", ["insertion", "deletion"])
@pytest.mark.parametrize("alphas", [torch.arange(6, dtype=F64) / 6, torch.tensor([0.0, 0.05, 0.3, 0.31, 0.9], dtype=F64)])
def test_endpoints_and_budget_per_step(quad_model, direction, alphas):
    x, xb = _rand(3, 3, 8, 8, seed=1), _rand(3, 3, 8, 8, seed=2) * 0.5
    grads, deltas = P.samp(quad_model.grad, x, alphas, xb, direction=direction)
    n = len(alphas)
    assert grads.shape == deltas.shape == (n, 3, 3, 8, 8)
    pts = _points(xb, deltas)
    torch.testing.assert_close(pts[-1], x, atol=1e-12, rtol=0)  # Σ deltas = x − x'
    total = (x - xb).abs().flatten(1).sum(1)
    widths = torch.diff(torch.cat([alphas, torch.ones(1, dtype=F64)]))
    for i in range(n):
        # the infinitesimal constraint: step i moves exactly (α_{i+1} − α_i)·||x − x'||₁ (L1)
        torch.testing.assert_close(deltas[i].abs().flatten(1).sum(1), widths[i] * total, atol=1e-10, rtol=1e-10)
        # every point lies in the box between x' and x: each step goes the right way, feature by feature
        assert ((deltas[i] * (x - xb)) >= -1e-15).all()
    # the point at α_i is α_i·||x − x'||₁ away from the baseline
    for i in range(n):
        torch.testing.assert_close((pts[i] - xb).abs().flatten(1).sum(1), alphas[i] * total, atol=1e-10, rtol=1e-10)
    # gradients are taken at the step's start (insertion: left end; deletion: right end in α order)
    at = pts[:-1] if direction == "insertion" else pts[1:]
    torch.testing.assert_close(grads, quad_model.grad(at.reshape(-1, 3, 8, 8)).view_as(grads))


def test_both_directions_average():
    x, xb = _rand(2, 3, 4, 4, seed=3), _rand(2, 3, 4, 4, seed=4)
    w = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(5), dtype=F64)
    alphas = torch.arange(4, dtype=F64) / 4
    gb, db = P.samp(_linear_grad_fn(w), x, alphas, xb)  # default: both
    gi, di = P.samp(_linear_grad_fn(w), x, alphas, xb, direction="insertion")
    gd, dd = P.samp(_linear_grad_fn(w), x, alphas, xb, direction="DELETION")
    assert gb.shape[0] == 8
    torch.testing.assert_close(db, torch.cat([di, dd]) / 2)
    torch.testing.assert_close(db.sum(0), x - xb)
    torch.testing.assert_close((gb * db).sum(0), ((gi * di).sum(0) + (gd * dd).sum(0)) / 2)


def test_top_ranked_pixels_move_first_hand_checked():
    # One 1-channel 1×4 image from 0 to x = (1, 1, 1, 1): ||x − x'||₁ = 4; gradient (3, −1, 5, 2).
    x = torch.ones(1, 1, 1, 4, dtype=F64)
    g = torch.tensor([3.0, -1.0, 5.0, 2.0], dtype=F64).view(1, 1, 1, 4)
    alphas = torch.tensor([0.0, 0.375, 0.5], dtype=F64)  # budgets 1.5, 0.5, 2
    grads, deltas = P.samp(lambda p: g.expand_as(p).clone(), x, alphas, direction="insertion")
    d = deltas.view(3, 4)
    # insertion moves the largest g·(x − cur) first: pixel 2 (5) fully, then half of pixel 0 (3)
    torch.testing.assert_close(d[0], torch.tensor([0.5, 0.0, 1.0, 0.0], dtype=F64))
    # then g·(x − cur) = (1.5, −1, 0, 2): pixel 3 first
    torch.testing.assert_close(d[1], torch.tensor([0.0, 0.0, 0.0, 0.5], dtype=F64))
    # the last step lands on x
    torch.testing.assert_close(d[2], torch.tensor([0.5, 1.0, 0.0, 0.5], dtype=F64))
    # deletion from x to 0 moves the pixels that lower f most first: the same pixel 2 in its first travel
    # step, which is the last α interval [0.5, 1] (budget 2): pixel 2 and pixel 0 fully.
    _, dd = P.samp(lambda p: g.expand_as(p).clone(), x, alphas, direction="deletion")
    torch.testing.assert_close(dd.view(3, 4)[2], torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=F64))


def test_top_fraction_moves_together_hand_checked():
    # fraction=0.5 of 4 pixels: the 2 best (pixels 2 and 0, L1 to go 2) share a budget of 1.5: 3/4 each.
    x = torch.ones(1, 1, 1, 4, dtype=F64)
    g = torch.tensor([3.0, -1.0, 5.0, 2.0], dtype=F64).view(1, 1, 1, 4)
    alphas = torch.tensor([0.0, 0.375, 0.5], dtype=F64)
    _, deltas = P.samp(lambda p: g.expand_as(p).clone(), x, alphas, direction="insertion", fraction=0.5)
    d = deltas.view(3, 4)
    torch.testing.assert_close(d[0], torch.tensor([0.75, 0.0, 0.75, 0.0], dtype=F64))
    # then g·(x − cur) = (0.75, −1, 1.25, 2): pixels 3 and 2 (L1 to go 1.25) share 0.5: 2/5 of their way each
    torch.testing.assert_close(d[1], torch.tensor([0.0, 0.0, 0.1, 0.4], dtype=F64))
    # a budget larger than the top pixels' L1 to go: they move fully, the next-ranked fill the rest
    _, d2 = P.samp(lambda p: g.expand_as(p).clone(), x, torch.tensor([0.0, 0.75], dtype=F64), direction="insertion", fraction=0.25)
    torch.testing.assert_close(d2.view(2, 4)[0], torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=F64))


def test_pixels_move_with_all_their_channels():
    x = _rand(1, 3, 4, 4, seed=6) + 0.1
    w = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(7), dtype=F64)
    _, deltas = P.samp(_linear_grad_fn(w), x, torch.arange(5, dtype=F64) / 5, direction="insertion")
    frac = deltas / x  # fraction of each feature's way moved in one step
    assert torch.allclose(frac, frac[:, :, :1].expand_as(frac))  # the same for the three channels


def test_momentum_changes_ranking_not_the_integrand(quad_model):
    x, xb = _rand(2, 3, 8, 8, seed=8), torch.zeros(2, 3, 8, 8, dtype=F64)
    alphas = torch.arange(8, dtype=F64) / 8
    g0, d0 = P.samp(quad_model.grad, x, alphas, xb, direction="insertion")
    g5, d5 = P.samp(quad_model.grad, x, alphas, xb, direction="insertion", momentum=0.5)
    torch.testing.assert_close(g0[0], g5[0])  # first step: no history
    assert not torch.allclose(d0, d5)
    pts = _points(xb, d5)
    torch.testing.assert_close(g5, quad_model.grad(pts[:-1].reshape(-1, 3, 8, 8)).view_as(g5))  # true gradients


@pytest.mark.parametrize("direction", ["both", "insertion", "deletion"])
def test_linear_model_completeness_exact(linear_model, images, baseline, direction):
    a = rk.attribute(linear_model, images, path="samp", n=7, output="logit", target=1, baseline=baseline, direction=direction)
    torch.testing.assert_close(a.attr.sum((1, 2, 3)), a.f_input - a.f_baseline, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(a.attr.double(), ((images - baseline) * linear_model.w(1)).double(), atol=1e-5, rtol=1e-5)
    assert a.n_gradients == (14 if direction == "both" else 7)


@pytest.mark.parametrize("direction", ["both", "insertion", "deletion"])
def test_quadratic_completeness_error_falls_with_n(quad_model, direction):
    # The greedy path itself changes with n (each step moves other pixels), so the error of one image is
    # not monotone in n; its mean over 8 images falls, by ~10x from n = 4 to n = 256.
    x = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(10))
    errs = []
    for n in (4, 16, 64, 256):
        a = rk.attribute(quad_model, x, path="samp", n=n, output="logit", target=0, direction=direction)
        errs.append(rk.completeness_error(a.attr, a.f_input, a.f_baseline).mean().item())
    assert errs[0] > errs[1] > errs[2] > errs[3]
    assert errs[3] < errs[0] / 10


def test_batch_equals_single_images(conv_model, images):
    both = rk.attribute(conv_model, images, path="samp", n=6, target=[1, 2], momentum=0.5)
    for i, t in enumerate([1, 2]):
        one = rk.attribute(conv_model, images[i : i + 1], path="samp", n=6, target=t, momentum=0.5)
        torch.testing.assert_close(both.attr[i : i + 1], one.attr, atol=1e-6, rtol=1e-5)
    # more images than one batch: attributed a batch at a time, same result
    split = rk.attribute(conv_model, images, path="samp", n=6, target=[1, 2], momentum=0.5, batch_size=1)
    torch.testing.assert_close(split.attr, both.attr, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_dtype_and_device_kept(quad_model, dtype):
    x = _rand(2, 3, 4, 4, seed=9, dtype=dtype)
    grads, deltas = P.samp(lambda p: torch.ones_like(p), x, torch.arange(3, dtype=F64) / 3)
    assert grads.dtype == deltas.dtype == dtype and grads.device == x.device


def test_input_equal_to_baseline_gives_zero(images):
    grads, deltas = P.samp(lambda p: torch.ones_like(p), images, torch.arange(3, dtype=F64) / 3, images)
    assert torch.count_nonzero(deltas) == 0


def test_bad_arguments(linear_model, images):
    a = torch.arange(4, dtype=F64) / 4
    gf = lambda p: torch.ones_like(p)  # noqa: E731
    with pytest.raises(ValueError, match="direction.*both, insertion, deletion"):
        P.samp(gf, images, a, direction="forward")
    for bad in (-0.1, 1.0, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="momentum"):
            P.samp(gf, images, a, momentum=bad)
    for bad in (0.0, 1.5, float("nan"), None):
        with pytest.raises(ValueError, match="fraction"):
            P.samp(gf, images, a, fraction=bad)
    with pytest.raises(ValueError, match="alphas"):
        P.samp(gf, images, torch.tensor([0.0, 0.5, 0.4], dtype=F64))
    with pytest.raises(ValueError, match="alphas"):
        P.samp(gf, images, torch.tensor([0.1, 0.5], dtype=F64))
    with pytest.raises(ValueError, match="baseline"):
        P.samp(gf, images, a, baseline=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="samp.*does not take.*max_sigma"):
        rk.attribute(linear_model, images, path="samp", n=4, max_sigma=3.0)
    with pytest.raises(ValueError, match="samp.*adaptive"):
        rk.attribute(linear_model, images, path="samp", rule="midpoint", n=4)
    with pytest.raises(ValueError, match="samp.*adaptive.*riemannkit.paths.samp"):
        P.path_function("samp")
    with pytest.raises(ValueError, match="samp"):
        P.check_path_name("sam")


def test_path_names_and_table():
    assert "samp" in rk.PATH_NAMES and "samp" in P.ADAPTIVE_PATHS and "guidedig" in P.ADAPTIVE_PATHS
    assert P.adaptive_path("SAMP", {"momentum": 0.5}).fn is P.samp
    with pytest.raises(ValueError, match="not adaptive"):
        P.adaptive_path("ig", {})


@pytest.mark.parametrize("direction", ["both", "insertion", "deletion"])
def test_idgi_on_samp(conv_model, images, direction):
    plain, idgi = path_and_idgi(conv_model, images, "samp", n=6, target=[0, 1], direction=direction, momentum=0.5)
    ref = rk.attribute(conv_model, images, path="samp", n=6, target=[0, 1], direction=direction, momentum=0.5)
    torch.testing.assert_close(plain.attr, ref.attr)
    torch.testing.assert_close(plain.f_baseline, ref.f_baseline)
    # IDGI telescopes to f(x) − f(x') exactly, in each direction and for their average
    err = rk.completeness_error(idgi.attr, idgi.f_input, idgi.f_baseline)
    assert (err < 1e-4).all(), err
    assert rk.idgi_attribute(conv_model, images, "samp", n=6, target=[0, 1], direction=direction, momentum=0.5).attr.allclose(idgi.attr)


def test_method_maps_and_baselines(conv_model, images):
    maps = EV.method_maps(conv_model, images, ["samp", "samp+idgi", "ig"], n=4, path_kwargs={"samp": {"momentum": 0.5}})
    assert list(maps) == ["samp", "samp+idgi", "ig"]
    ref = rk.attribute(conv_model, images, path="samp", n=4, target=maps["ig"].target, momentum=0.5)
    torch.testing.assert_close(maps["samp"].attr, ref.attr)
    assert EV.LABELS["samp"] == "SAMP" and EV.LABELS["samp+idgi"] == "SAMP+IDGI"
    gxi = GM.gradient_x_input(conv_model, images, target=maps["ig"].target)
    ig1 = rk.attribute(conv_model, images, path="ig", rule="right", n=1, target=maps["ig"].target)
    torch.testing.assert_close(gxi.attr, ig1.attr)  # IG with one right-rule point is gradient × input
    sg1 = GM.smoothgrad(conv_model, images, n=4, seed=3)
    sg2 = GM.smoothgrad(conv_model, images, n=4, seed=3)
    # The same seeded call twice (same shapes, same threads): bit-identical.
    assert torch.equal(sg1.attr, sg2.attr) and not torch.equal(sg1.attr, GM.smoothgrad(conv_model, images, n=4, seed=4).attr)
    sg0 = GM.smoothgrad(conv_model, images, n=2, noise=0.0)
    torch.testing.assert_close(sg0.attr, gxi.attr / images)  # no noise: the plain gradient
    with pytest.raises(ValueError, match="noise"):
        GM.smoothgrad(conv_model, images, noise=-1.0)
    with pytest.raises(ValueError, match="n must"):
        GM.smoothgrad(conv_model, images, n=0)
    tab = EV.metric_table(conv_model, images, {"samp": maps["samp"], "gxi": gxi, "sg": sg1.attr}, ["deletion", "insertion_prob"], steps=4)
    assert set(tab) == {"samp", "gxi", "sg"} and len(tab["samp"]["deletion"]["per_image"]) == 2


def test_estimate_gprime_samp(conv_model, images):
    grid, gp = rk.estimate_gprime(conv_model, images, path="samp", k=8)
    assert grid.shape == gp.shape == (8,) and (gp >= 0).all() and gp.sum() > 0
    grid_i, gp_i = rk.estimate_gprime(conv_model, images, path="samp", k=8, direction="insertion")
    assert not (gp == gp_i).all()


def test_fraction_one_is_the_straight_line(linear_model, quad_model, images, baseline):
    # All pixels moving the same share of their way each step: the IG path, left rule (insertion) or
    # right rule (deletion, whose gradients are taken at each step's end in α order).
    for direction, rule in (("insertion", "left"), ("deletion", "right")):
        s = rk.attribute(quad_model, images, path="samp", n=5, output="logit", direction=direction, fraction=1.0, baseline=baseline)
        ig = rk.attribute(quad_model, images, path="ig", rule=rule, n=5, output="logit", baseline=baseline)
        torch.testing.assert_close(s.attr, ig.attr, atol=1e-5, rtol=1e-4)
