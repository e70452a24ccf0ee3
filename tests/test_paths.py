"""riemannkit.paths: straight line, BlurIG (Gaussian blur and its σ-derivative) and Guided IG."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

import riemannkit as rk
from riemannkit import blur as B
from riemannkit import paths as P

F64 = torch.float64


def _rand(*shape, seed=0, dtype=F64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _scipy_blur(x: torch.Tensor, sigma: float) -> np.ndarray:
    """scipy reference, per image and channel (as PAIR's blur_ig with sigma=(σ, σ, 0))."""
    arr = x.double().numpy()
    out = np.empty_like(arr)
    for b in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            out[b, c] = gaussian_filter(arr[b, c], sigma=(sigma, sigma), mode="constant", truncate=4.0)
    return out


def test_path_names():
    assert rk.PATH_NAMES[:3] == ("ig", "blurig", "guidedig") and "manifold" in rk.PATH_NAMES
    assert P.check_path_name("BlurIG") == "blurig"
    with pytest.raises(ValueError, match="path"):
        P.check_path_name("foo")
    with pytest.raises(ValueError, match="guided_ig"):
        P.path_function("guidedig")


def test_a_path_registered_in_one_call_is_accepted_labelled_and_integrated():
    """A toy closed-form path, γ(α) = α²·x (velocity 2α·x), from one register_path call: the names, the labels and
    attribute know it; on the linear model f = Σ w ⊙ x its integral is w ⊙ x exactly (Gauss–Legendre, 2 nodes)."""
    from riemannkit import evaluation as EV

    def square(x: torch.Tensor, alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = alphas.to(x).view(-1, *([1] * x.ndim))  # (A, B, C, H, W) points and velocities
        return a**2 * x.unsqueeze(0), 2 * a * x.unsqueeze(0)

    P.register_path("toy_square", square, (), label="Toy²")
    try:
        assert rk.PATH_NAMES[-1] == "toy_square" and P.PATH_LABELS["toy_square"] == "Toy²"
        assert P.check_path_name("Toy_Square") == "toy_square"
        w = torch.arange(12, dtype=torch.float32).view(1, 3, 2, 2) / 10
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2, bias=False))
        with torch.no_grad():
            model[1].weight.copy_(torch.stack([w.flatten(), -w.flatten()]))
        x = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(0))
        res = rk.attribute(model, x, path="toy_square", n=2, rule="gausslegendre", target=0, output="logit")
        torch.testing.assert_close(res.attr, w * x, rtol=1e-6, atol=1e-7)
        with pytest.raises(ValueError, match="path='toy_square' is registered already"):
            P.register_path("toy_square", lambda x, a: (x, x), ())
        # The evaluation layer reads the registry live: the method, its IDGI twin and their labels.
        assert EV.parse_method("toy_square+idgi") == ("toy_square", True)
        assert EV.LABELS["toy_square"] == "Toy²" and EV.LABELS["toy_square+idgi"] == "Toy²+IDGI"
        maps = EV.method_maps(model, x, ["toy_square", "toy_square+idgi"], alphas=[0.0, 0.5], target=0, output="logit")
        # Left rule at α = 0, 0.5 (Δα = 0.5 each): g(0) = 0 and g(0.5) = w ⊙ γ'(0.5) = w ⊙ x, so the map is w ⊙ x / 2.
        torch.testing.assert_close(maps["toy_square"].attr, w * x / 2, rtol=1e-6, atol=1e-7)
        assert maps["toy_square+idgi"].attr.shape == x.shape
        assert EV.method_labels(["toy_square"]) == ["Toy²", "Toy²+IDGI"]
    finally:
        P.unregister_path("toy_square")
    assert "toy_square" not in rk.PATH_NAMES and "toy_square" not in P.PATH_LABELS
    assert "toy_square" not in EV.LABELS and "toy_square+idgi" not in EV.METHOD_NAMES
    with pytest.raises(ValueError, match="unknown method='toy_square'; accepted values: ig, ig\\+idgi, blurig"):
        EV.parse_method("toy_square")
    with pytest.raises(ValueError, match="accepted values: ig, blurig, guidedig, samp, manifold"):
        P.check_path_name("toy_square")


# ---------------------------------------------------------------- straight line


def test_straight_line_points_and_velocity():
    x, xb = _rand(2, 3, 4, 4, seed=1), _rand(2, 3, 4, 4, seed=2)
    alphas = torch.tensor([0.0, 0.25, 1.0], dtype=F64)
    pts, vel = P.straight_line(x, alphas, xb)
    assert pts.shape == vel.shape == (3, 2, 3, 4, 4)
    assert torch.equal(pts[0], xb)
    torch.testing.assert_close(pts[1], xb + 0.25 * (x - xb))
    torch.testing.assert_close(pts[2], x)
    for v in vel:
        torch.testing.assert_close(v, x - xb)
    # default baseline is black; a single (C, H, W) baseline broadcasts
    pts0, vel0 = P.straight_line(x, alphas)
    assert torch.equal(pts0[0], torch.zeros_like(x)) and torch.equal(vel0[0], x)
    pts1, _ = P.straight_line(x, alphas, xb[0])
    assert torch.equal(pts1[0], xb[0].expand_as(x))


@pytest.mark.parametrize("bad", [[-0.1, 0.5], [0.5, 1.5], [float("nan")]])
def test_path_alphas_outside_unit_interval(bad):
    x = _rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="alphas"):
        P.straight_line(x, torch.tensor(bad, dtype=F64))
    with pytest.raises(ValueError, match="alphas"):
        P.blur(x, torch.tensor(bad, dtype=F64), 3.0)


# ---------------------------------------------------------------- Gaussian blur vs scipy


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-12), (torch.float32, 1e-5)])
def test_gaussian_blur_matches_scipy_sigma3(dtype, tol):
    x = _rand(2, 3, 32, 32, seed=3, dtype=dtype)
    out, _ = P.gaussian_blur(x, torch.tensor([3.0], dtype=F64))
    assert out.shape == (1, 2, 3, 32, 32) and out.dtype == dtype
    assert np.abs(out[0].double().numpy() - _scipy_blur(x, 3.0)).max() < tol


@pytest.mark.parametrize("sigma,hw", [(10.0, (32, 20)), (50.0, (8, 8)), (50.0, (32, 32))])
def test_gaussian_blur_matches_scipy_when_kernel_wider_than_image(sigma, hw):
    # Regression: the kernel was cropped to the image size BEFORE normalising, which changed the
    # weights (σ = 50 on a 32×32 image came out 4.5× too bright).
    x = _rand(1, 3, *hw, seed=4)
    out, _ = P.gaussian_blur(x, torch.tensor([sigma], dtype=F64))
    np.testing.assert_allclose(out[0].numpy(), _scipy_blur(x, sigma), rtol=1e-10, atol=1e-14)


def test_gaussian_blur_sigma_zero_is_identity_and_mass_preserving_far_from_borders():
    x = _rand(2, 3, 8, 8, seed=5)
    out, d = P.gaussian_blur(x, torch.tensor([0.0, 1.0], dtype=F64))
    assert torch.equal(out[0], x)
    assert torch.equal(d[0], torch.zeros_like(x))
    # an impulse in the middle of a large image keeps its mass under a small blur
    img = torch.zeros(1, 1, 41, 41, dtype=F64)
    img[0, 0, 20, 20] = 1.0
    out, _ = P.gaussian_blur(img, torch.tensor([2.0], dtype=F64))
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(out[0, 0, 0, 20, 20]) == pytest.approx(float(out.max()))


def test_gaussian_blur_sigma_derivative_matches_finite_difference():
    x = _rand(1, 3, 16, 16, seed=6)
    s, h = 2.3, 1e-5
    sig = torch.tensor([s - h, s, s + h], dtype=F64)
    out, d = P.gaussian_blur(x, sig, support_sigma=4.0)
    fd = (out[2] - out[0]) / (2 * h)
    torch.testing.assert_close(d[1], fd, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- 4. BlurIG path


@pytest.mark.parametrize("max_sigma,hw", [(50.0, (8, 8)), (3.0, (16, 16))])
def test_blur_path_endpoints(max_sigma, hw):
    x = _rand(2, 3, *hw, seed=7)
    alphas = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    pts, vel = P.blur(x, alphas, max_sigma)
    assert pts.shape == vel.shape == (3, 2, 3, *hw)
    assert torch.equal(pts[2], x)  # α = 1: the image itself, exactly
    start, _ = P.gaussian_blur(x, torch.tensor([max_sigma], dtype=F64))
    torch.testing.assert_close(pts[0], start[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pts[0].numpy(), _scipy_blur(x, max_sigma), rtol=1e-9, atol=1e-13)
    # α = 0 also through path_function (what attribute uses as the baseline)
    p0 = P.path_function("blurig", max_sigma=max_sigma)(x, torch.zeros(1, dtype=F64))[0][0]
    torch.testing.assert_close(p0, pts[0])


def test_blur_path_point_independent_of_other_alphas():
    # γ(α) is a function of α alone: evaluating it with other alphas (another chunk) changes nothing
    x = _rand(1, 3, 40, 40, seed=8)
    a = torch.tensor([0.6], dtype=F64)
    alone = P.blur(x, a, 4.0)
    together = P.blur(x, torch.tensor([0.0, 0.6, 0.9], dtype=F64), 4.0)
    torch.testing.assert_close(alone[0][0], together[0][1], rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(alone[1][0], together[1][1], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.93])
def test_blur_velocity_matches_central_difference(alpha):
    x = _rand(2, 3, 16, 16, seed=9)
    h = 1e-5
    pts, vel = P.blur(x, torch.tensor([alpha - h, alpha, alpha + h], dtype=F64), 5.0)
    fd = (pts[2] - pts[0]) / (2 * h)
    scale = float(vel[1].abs().max())
    assert scale > 1e-3
    torch.testing.assert_close(vel[1], fd, rtol=1e-5, atol=1e-6 * scale)


def _blur_linear_error(x, w, max_sigma, n):
    a, wt = rk.rule_nodes("gausslegendre", n)
    _, vel = P.blur(x, a, max_sigma)
    start = P.blur(x, torch.zeros(1, dtype=F64), max_sigma)[0][0]
    exact = ((x - start) * w).flatten(1).sum(1)
    est = torch.einsum("a,abchw,chw->b", wt, vel, w)
    return ((est - exact).abs() / exact.abs()).max().item()


def test_blur_completeness_linear_float64(linear_model):
    x = _rand(2, 3, 8, 8, seed=10)
    w = linear_model.w(0).double()
    assert _blur_linear_error(x, w, 2.0, 64) < 1e-6
    errs = [_blur_linear_error(x, w, 10.0, n) for n in (16, 64, 128, 256)]
    assert errs[0] > 1e-3
    assert all(e1 < e0 for e0, e1 in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-10
    # the default max_sigma = 50
    assert _blur_linear_error(x, w, 50.0, 256) < 1e-7


def test_blur_completeness_linear_attribute(linear_model, images):
    err = {}
    for ms, n in [(2.0, 64), (10.0, 16), (10.0, 64)]:
        a = rk.attribute(linear_model, images, path="blurig", rule="gausslegendre", n=n,
                         output="logit", target=0, max_sigma=ms)
        start = P.blur(images, torch.zeros(1, dtype=F64), ms)[0][0]
        with torch.no_grad():
            torch.testing.assert_close(a.f_baseline, linear_model(start)[:, 0])
        err[ms, n] = rk.completeness_error(a.attr, a.f_input, a.f_baseline).max().item()
    assert err[2.0, 64] < 1e-4
    assert err[10.0, 64] < err[10.0, 16] / 100


# ---------------------------------------------------------------- 5. Guided IG


def _linear_grad_fn(w):
    return lambda pts: w.to(pts.dtype).expand_as(pts).clone()


def _guided_points(baseline, deltas):
    return baseline.unsqueeze(0) + torch.cumsum(deltas.double(), 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_guided_ig_path_invariants(linear_model, seed):
    x = _rand(2, 3, 8, 8, seed=20 + seed)
    xb = 0.3 * _rand(2, 3, 8, 8, seed=30 + seed)
    w = linear_model.w(0).double()
    n, max_dist = 10, 0.02
    alphas = torch.arange(n, dtype=F64) / n
    grads, deltas = P.guided_ig(_linear_grad_fn(w), x, alphas, xb, max_dist=max_dist)
    assert grads.shape == deltas.shape == (n, 2, 3, 8, 8)
    pts = _guided_points(xb, deltas)
    # ends exactly at the input
    assert torch.equal(pts[-1].to(x.dtype), x) or torch.allclose(pts[-1], x, rtol=0, atol=1e-15)
    # every step's L1 distance to the input is (1 − α_{i+1}) L1(x, x')
    l1_total = (x - xb).abs().flatten(1).sum(1)
    ends = torch.cat([alphas[1:], torch.ones(1, dtype=F64)])
    for i in range(n):
        l1 = (pts[i] - x).abs().flatten(1).sum(1)
        torch.testing.assert_close(l1, (1 - ends[i]) * l1_total, rtol=1e-6, atol=1e-9)
        if i < n - 1:
            # every feature stays within the band [α − max_dist, α + max_dist]
            feat_alpha = (pts[i] - xb) / (x - xb)
            assert (feat_alpha >= ends[i] - max_dist - 1e-9).all()
            assert (feat_alpha <= ends[i] + max_dist + 1e-9).all()
    # starts at the baseline: the first gradient is taken there and the first step leaves from it
    assert torch.equal(grads[0], w.expand_as(x))
    # a linear model: the features with the smallest |w| move first (not a straight line)
    sl = xb + ends[0] * (x - xb)
    assert not torch.allclose(pts[0], sl, atol=1e-3)


def test_guided_ig_first_gradient_at_baseline(quad_model):
    x, xb = _rand(1, 3, 8, 8, seed=40), 0.2 * _rand(1, 3, 8, 8, seed=41)
    seen = []

    def grad_fn(pts):
        seen.append(pts.clone())
        return quad_model.grad(pts)

    grads, deltas = P.guided_ig(grad_fn, x, torch.arange(4, dtype=F64) / 4, xb)
    assert len(seen) == 4
    torch.testing.assert_close(seen[0], xb)
    pts = _guided_points(xb, deltas)
    for i in range(1, 4):
        torch.testing.assert_close(seen[i], pts[i - 1])  # each gradient at the step's start point
        torch.testing.assert_close(grads[i], quad_model.grad(pts[i - 1]))


@pytest.mark.parametrize("use_baseline", [False, True])
def test_guided_ig_linear_completeness_exact(linear_model, images, baseline, use_baseline):
    kw = {"baseline": baseline} if use_baseline else {}
    a = rk.attribute(linear_model, images, path="guidedig", n=12, output="logit", target=1, **kw)
    xb = baseline if use_baseline else torch.zeros_like(images)
    with torch.no_grad():
        torch.testing.assert_close(a.f_baseline, linear_model(xb)[:, 1])
    delta = a.f_input - a.f_baseline
    torch.testing.assert_close(a.attr.flatten(1).sum(1), delta, rtol=1e-5, atol=1e-5)
    assert a.n_gradients == 12
    # with a schedule too
    b = rk.attribute(linear_model, images, path="guidedig", alphas=[0, 0.1, 0.5, 0.7], output="logit", target=1, **kw)
    torch.testing.assert_close(b.attr.flatten(1).sum(1), delta, rtol=1e-5, atol=1e-5)


def test_guided_ig_quadratic_completeness_error_falls_like_1_over_n(quad_model, images):
    errs, pooled = [], []
    for n in (8, 32):
        a = rk.attribute(quad_model, images, path="guidedig", n=n, output="logit", target=0)
        errs.append(rk.completeness_error(a.attr, a.f_input, a.f_baseline))
        pooled.append(rk.completeness_error_pooled(a.attr, a.f_input, a.f_baseline))
    assert pooled[0] > 1e-2
    assert (errs[1] < errs[0] / 2).all(), errs  # every image
    assert 3.0 < pooled[0] / pooled[1] < 5.5  # ≈ 4 for a 4× larger n


def test_guided_ig_batch_equals_single_images(conv_model, images):
    both = rk.attribute(conv_model, images, path="guidedig", n=8, target=[1, 2])
    for i, t in enumerate((1, 2)):
        one = rk.attribute(conv_model, images[i : i + 1], path="guidedig", n=8, target=t)
        torch.testing.assert_close(one.attr[0], both.attr[i], rtol=1e-5, atol=1e-8)
        torch.testing.assert_close(one.f_input[0], both.f_input[i])


def test_guided_ig_batch_invariance_in_float64(conv_model, images):
    """No coupling between the images of a batch: in float64 each image's map is its own to float64 rounding (float32
    batching moves the last bits of the gradients, which Guided IG's selection can amplify; see the RiemannOpt chapter)."""
    m, x = conv_model.double(), images.double()
    both = rk.attribute(m, x, path="guidedig", n=16, target=[1, 2], fraction=0.5, max_dist=0.02)
    for i, t in enumerate((1, 2)):
        one = rk.attribute(m, x[i : i + 1], path="guidedig", n=16, target=t, fraction=0.5, max_dist=0.02)
        torch.testing.assert_close(one.attr[0], both.attr[i], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("rule", ["right", "midpoint", "trapezoid", "gausslegendre"])
def test_guided_ig_rejects_other_rules(linear_model, images, rule):
    with pytest.raises(ValueError, match="guidedig"):
        rk.attribute(linear_model, images, path="guidedig", rule=rule, n=4)


def test_guided_ig_bad_arguments(linear_model, images):
    with pytest.raises(ValueError, match="fraction"):
        rk.attribute(linear_model, images, path="guidedig", n=4, fraction=0.0)
    with pytest.raises(ValueError, match="max_dist"):
        rk.attribute(linear_model, images, path="guidedig", n=4, max_dist=0.0)
    with pytest.raises(ValueError, match="max_sigma"):
        rk.attribute(linear_model, images, path="guidedig", n=4, max_sigma=3.0)


def test_guided_ig_input_equal_to_baseline_gives_zero(linear_model, images):
    grads, deltas = P.guided_ig(_linear_grad_fn(linear_model.w(0)), images, torch.arange(3, dtype=F64) / 3, images)
    assert torch.equal(deltas, torch.zeros_like(deltas))


def test_separable_banded_products_equal_depthwise_convolution_per_image_kernels():
    """The banded-matrix blur equals a zero-padded depthwise convolution, each image with its own σ."""
    import torch.nn.functional as F

    x = torch.rand(4, 3, 28, 20, generator=torch.Generator().manual_seed(0), dtype=F64)
    k, _ = B.gauss_kernels(torch.tensor([0.0, 0.7, 2.0, 5.0], dtype=F64), 8)
    a, n, h, w = x.shape
    kk, r = k.shape[1], k.shape[1] // 2
    flat = x.reshape(1, a * n, h, w)
    wh = k.repeat_interleave(n, 0).view(a * n, 1, kk, 1)
    ww = k.repeat_interleave(n, 0).view(a * n, 1, 1, kk)
    conv = F.conv2d(F.pad(F.conv2d(F.pad(flat, (0, 0, r, r)), wh, groups=a * n), (r, r, 0, 0)), ww, groups=a * n)
    torch.testing.assert_close(B.separable(x, k, k), conv.view(a, n, h, w), rtol=1e-12, atol=1e-12)
    assert torch.equal(B.separable(x, k, k)[0], x[0])  # σ = 0: the identity
