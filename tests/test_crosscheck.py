"""riemannkit.crosscheck: the reference adapters and each comparison, on tiny models."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import riemannkit as rk
from riemannkit import crosscheck as C
from riemannkit import integrate as I


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5)
    ).eval()


@pytest.fixture()
def setup():
    net = _net()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    return net, x, I.predict(net, x)


def test_compare_maps_numbers():
    b = torch.ones(2, 1, 2, 2)
    a = b.clone()
    a[1] += 0.5
    r = C.compare_maps("ref", "s", a, b, torch.tensor([4.0, 4.0]), torch.zeros(2))
    np.testing.assert_allclose(r.rel_l2, [0.0, 0.5])
    assert r.max_abs == 0.5 and r.scale == 1.0
    np.testing.assert_allclose(r.completeness_ours, [0.0, 0.5])
    np.testing.assert_allclose(r.completeness_ref, [0.0, 0.0])
    assert r.verdict() == "differs: see below" and r.verdict(tol=1.0) == "agrees to float rounding"
    assert "ref" in C.agreement_markdown([r])
    with pytest.raises(ValueError, match="shape"):
        C.compare_maps("r", "s", a, b[:1], torch.ones(1), torch.zeros(1))


@pytest.mark.parametrize("method", [m for m in C.CAPTUM_RULES if m != "riemann_trapezoid"])
def test_captum_rules_agree(setup, method):
    pytest.importorskip("captum.attr")
    net, x, t = setup
    r = C.check_captum_ig(net, x, t, method, 7)
    assert r.rel_l2.max() < 1e-5, (method, r.rel_l2)


def test_captum_trapezoid_weights_sum_to_one_minus_one_over_n(setup):
    pytest.importorskip("captum.attr")
    net, x, t = setup
    r = C.check_captum_ig(net, x, t, "riemann_trapezoid", 8)
    # Captum's trapezoid is riemannkit's scaled by (n − 1)/n: every map differs by exactly 1/(n − 1) of Captum's.
    np.testing.assert_allclose(r.rel_l2, 1 / 7, rtol=1e-4)
    a, w = C.captum_weights("riemann_trapezoid", 8)
    ra, rw = I.rule_nodes("trapezoid", 8)
    np.testing.assert_allclose(a, ra.numpy(), atol=1e-7)
    np.testing.assert_allclose(w, rw.numpy() * 7 / 8)
    assert w.sum() == pytest.approx(1 - 1 / 8)


def test_captum_trapezoid_at_its_own_float32_nodes_agrees_to_rounding(setup):
    pytest.importorskip("captum.attr")
    net, x, t = setup
    r = C.check_captum_trapezoid_same_nodes(net, x, t, 16)
    assert r.rel_l2.max() < 1e-6, r.rel_l2
    moved, gap = C.node_rounding(16)
    assert 0 < moved <= 16 and 0 < gap < 1e-7  # float32 linspace vs float64: last-bit differences only
    assert C.node_rounding(2) == (0, 0.0)  # 0 and 1 are exact in both


def test_rule_errors_settle_by_closed_form():
    errs = C.rule_errors(lambda a: a**2, 1 / 3, 11)
    assert errs["PAIR IG"] == pytest.approx(1 / (6 * 10))  # first order: 1/(6(n − 1))
    assert errs["trapezoid"] == pytest.approx(1 / (6 * 10**2))  # second order: h²/6
    assert errs["midpoint"] == pytest.approx(-1 / (12 * 11**2))
    assert abs(errs["gausslegendre"]) < 1e-15
    errs = C.rule_errors(lambda a: np.ones_like(a), 1.0, 11)  # a constant integrand (a linear model)
    assert abs(errs["PAIR IG"]) < 1e-15 and abs(errs["trapezoid"]) < 1e-15
    assert errs["Captum trapezoid"] == pytest.approx(-1 / 11)


def test_pair_call_model_function_is_nhwc_gradients(setup):
    pytest.importorskip("saliency")
    from saliency.core.base import INPUT_OUTPUT_GRADIENTS

    net, x, t = setup
    call = C.pair_call_model_function(net, int(t[0]))
    out = call(x[:1].permute(0, 2, 3, 1).numpy(), None, [INPUT_OUTPUT_GRADIENTS])[INPUT_OUTPUT_GRADIENTS]
    ref = I.gradients(net, x[:1], t[:1], "prob")
    want = ref.permute(0, 2, 3, 1).numpy()
    # float32 gradients through an NHWC copy: another memory layout, another summation order in the conv's backward,
    # so elements agree to ~1e-6 of the gradient's scale, not of each element (CI's run with ATen's non-vectorised
    # kernels, ATEN_CPU_CAPABILITY=default, reproduced here: 1.2e-9 on an element of 9.5e-5 whose map reaches 5.7e-3;
    # a wrong layout or class moves elements by the scale itself).
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-5 * float(np.abs(want).max()))


def test_pair_ig_weighting_reproduced(setup):
    pytest.importorskip("saliency")
    net, x, t = setup
    same, trap = C.check_pair_ig(net, x, t, x_steps=9, batch_size=4)
    assert same.rel_l2.max() < 1e-5
    assert trap.rel_l2.min() > 1e-3  # a different rule, not rounding
    a, w = C.pair_ig_nodes(9)
    assert a[0] == 0 and a[-1] == 1 and w.sum() == pytest.approx(1)


def test_pair_blurig_forward_difference_explains_most(setup):
    pytest.importorskip("saliency")
    net, x, t = setup
    exact, fd, scipy_pts = C.check_pair_blurig(net, x, t, max_sigma=3.0, steps=12, grad_step=0.01, batch_size=8)
    # With PAIR's own forward-difference velocity riemannkit's points reproduce PAIR up to the kernel truncation.
    assert fd.rel_l2.max() < exact.rel_l2.max()
    # With PAIR's own scipy points and velocity only the gradients' rounding is left.
    assert scipy_pts.rel_l2.max() < 1e-4
    assert C.blur_difference(x, [0.0, 3.0], 3.0)[1] < 1e-6  # at σ = max_sigma both truncate at 4σ


def test_pair_guidedig_agrees(setup):
    pytest.importorskip("saliency")
    net, x, t = setup
    r, _ = C.check_pair_guidedig(net, x, t, steps=6, fraction=0.25, max_dist=0.1)
    assert r.rel_l2.max() < 1e-4


def test_numpy2_shims_restore_numpy():
    q, had = np.quantile, hasattr(np, "trapz")
    with C.numpy2_shims():
        assert np.quantile(np.arange(10.0), 0.25, interpolation="lower") == 2.0
        assert np.trapz([0.0, 1.0], [0.0, 1.0]) == 0.5
    assert np.quantile is q and hasattr(np, "trapz") == had
    with pytest.raises(RuntimeError):
        with C.numpy2_shims():
            raise RuntimeError
    assert np.quantile is q and hasattr(np, "trapz") == had


def test_idgi_published_formula(setup):
    net, x, t = setup
    r = C.check_idgi(net, x, t, n=6, batch_size=5)
    assert r.rel_l2.max() < 1e-5
    assert r.completeness_ref.max() < 1e-5 and r.completeness_ours.max() < 1e-5
    # the loop itself on a hand example: two steps, gradients e1 and (1, 1)
    g = np.array([[1.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    np.testing.assert_allclose(C.idgi_published(g, np.array([0.0, 2.0, 3.0])), [2.5, 0.5])


def test_pair_pic_agrees():
    pytest.importorskip("saliency")

    class Bright(torch.nn.Module):  # class 1 grows with the brightness of the top-left quarter
        def forward(self, x):
            s = x[:, :, :16, :16].mean((1, 2, 3))
            return torch.stack([torch.zeros_like(s), 8 * s - 2], 1)

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 3, 32, 32, generator=g) * 0.3).clamp(0, 1)
    x[:, :, :16, :16] = 0.9 + 0.1 * torch.rand(1, 3, 16, 16, generator=g)
    sal = torch.zeros(1, 3, 32, 32)
    sal[:, :, :16, :16] = 1 + torch.rand(1, 3, 16, 16, generator=g)
    sic, aic = C.check_pair_pic(Bright(), x, sal, torch.tensor([1]), thresholds=(0.05, 0.25, 0.5), mask_fraction=0.05)
    assert sic.same_exclusions and aic.same_exclusions
    np.testing.assert_allclose(sic.auc_ours, sic.auc_ref, atol=1e-9, equal_nan=True)
    if not np.isnan(sic.max_curve_diff):
        assert sic.max_curve_diff < 1e-9


def test_pair_ig_with_its_own_float64_path_points_agrees_to_rounding(setup):
    pytest.importorskip("saliency")
    net, x, t = setup
    same, contiguous = C.check_pair_ig_same_points(net, x, t, x_steps=9, batch_size=4)
    assert same.rel_l2.max() < 1e-6 and contiguous.rel_l2.max() < 1e-5
    with pytest.raises(ValueError, match="x_steps"):
        C.pair_ig_points(net, x, t, x_steps=1)
