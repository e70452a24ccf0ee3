"""Where along a path the model responds: response_along_path, half_rise, gprime_summary."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import LinearModel
from riemannkit import experiments as E


def test_response_along_ig_is_linear_for_a_linear_model():
    torch.manual_seed(0)
    model = LinearModel().eval()
    x = torch.rand(3, 3, 8, 8)
    alphas = np.linspace(0, 1, 11)
    r = E.response_along_path(model, x, "ig", alphas, target=torch.tensor([0, 1, 0]), output="logit", batch_size=4)
    assert r.shape == (11, 3)
    with torch.no_grad():
        f0 = model(torch.zeros_like(x)).gather(1, torch.tensor([[0], [1], [0]])).squeeze(1)
        f1 = model(x).gather(1, torch.tensor([[0], [1], [0]])).squeeze(1)
    expect = f0 + torch.as_tensor(alphas, dtype=torch.float32).view(-1, 1) * (f1 - f0)
    assert torch.allclose(r, expect, atol=1e-4)
    assert torch.allclose(E.half_rise(alphas, r), torch.full((3,), 0.5, dtype=torch.float64), atol=1e-6)


def test_half_rise_interpolates_and_handles_decreasing_curves():
    a = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    v = torch.tensor([[0.0, 1.0], [0.0, 0.9], [0.2, 0.1], [0.8, 0.05], [1.0, 0.0]])
    # Image 0 rises 0 → 1: half (0.5) is between 0.5 (0.2) and 0.75 (0.8) at 0.5 + 0.25·0.3/0.6.
    # Image 1 falls 1 → 0: half its change is reached between 0.25 (0.9) and 0.5 (0.1).
    h = E.half_rise(a, v)
    assert h[0].item() == pytest.approx(0.625)
    assert h[1].item() == pytest.approx(0.25 + 0.25 * 0.4 / 0.8)
    with pytest.raises(ValueError, match="values must be"):
        E.half_rise(a, v[:3])


def test_gprime_summary():
    grid = np.arange(64) / 64
    flat = E.gprime_summary(grid, np.ones(64))
    assert flat["median"] == pytest.approx(0.5)
    peak = np.exp(-0.5 * ((grid - 0.8) / 0.03) ** 2)
    s = E.gprime_summary(grid, peak)
    assert s["peak"] == pytest.approx(0.796875) and abs(s["median"] - 0.8) < 0.02
    with pytest.raises(ValueError, match="same length"):
        E.gprime_summary(grid, np.ones(3))


def test_per_image_curves_average_to_algorithm_1():
    from riemannkit import schedule as S
    from conftest import QuadraticModel

    torch.manual_seed(0)
    model = QuadraticModel().eval()
    x = torch.rand(3, 3, 8, 8)
    grid, curves = E.per_image_gprime(model, x, "ig", k=8, target=torch.zeros(3, dtype=torch.long), output="logit")
    g_all, gp_all = S.estimate_gprime(model, x, "ig", k=8, target=torch.zeros(3, dtype=torch.long), output="logit")
    assert curves.shape == (3, 8) and np.allclose(grid, g_all)
    assert np.allclose(curves.mean(0), gp_all, rtol=1e-5)


def test_schedule_distance_and_subsets():
    assert E.schedule_distance([0, 0.5], [0, 0.25]) == pytest.approx(0.125)
    with pytest.raises(ValueError, match="same length"):
        E.schedule_distance([0, 0.5], [0, 0.2, 0.4])
    grid = np.arange(32) / 32
    curves = np.stack([np.exp(-0.5 * ((grid - c) / 0.1) ** 2) + 0.01 for c in (0.2, 0.5, 0.8, 0.6)])
    sub = E.subset_schedules(grid, curves, [1, 4], draws=3, n=8)
    assert len(sub[1]) == 3 and len(sub[4]) == 1  # all 4 images: one possible draw
    for a in sub[1] + sub[4]:
        assert a[0] == 0 and np.all(np.diff(a) > 0) and a[-1] < 1 and len(a) == 8
    with pytest.raises(ValueError, match="calibration size m=5"):
        E.subset_schedules(grid, curves, [5], draws=1, n=8)


def test_completeness_of_schedules_exact_for_linear_model():
    torch.manual_seed(0)
    model = LinearModel().eval()
    x = torch.rand(2, 3, 8, 8)
    errs = E.completeness_of_schedules(model, x, "ig", [[0.0, 0.3], [0.0, 0.1, 0.7]], output="logit")
    assert errs.shape == (2, 2) and errs.max() < 1e-4


def test_polyline_attribute_linear_model_and_straight_knots():
    from riemannkit import integrate as I

    torch.manual_seed(0)
    model = LinearModel().eval()
    x = torch.rand(2, 3, 8, 8)
    t = torch.tensor([0, 1])
    # Knots on the straight line from black: the polyline is IG's path, any rule gives IG's attribution.
    knots = torch.linspace(0, 1, 5).view(-1, 1, 1, 1, 1) * x.unsqueeze(0)
    for rule, n in (("left", 7), ("midpoint", 3), ("gausslegendre", 4)):
        r = E.polyline_attribute(model, x, knots, rule=rule, n=n, target=t, output="logit")
        ig = I.attribute(model, x, "ig", rule=rule, n=n, target=t, output="logit")
        assert torch.allclose(r.attr, ig.attr, atol=1e-5)
        assert r.n_gradients == n
    # A schedule's partition with a rule, as attribute: the rule is not ignored.
    from conftest import QuadraticModel

    quad = QuadraticModel().eval()
    sched = [0.0, 0.2, 0.45, 0.8]
    z = torch.zeros(2, dtype=torch.long)
    for rule in ("left", "midpoint", "trapezoid"):
        r = E.polyline_attribute(quad, x, knots, rule=rule, alphas=sched, target=z, output="logit")
        ig = I.attribute(quad, x, "ig", rule=rule, alphas=sched, target=z, output="logit")
        assert torch.allclose(r.attr, ig.attr, atol=1e-5) and r.n_gradients == ig.n_gradients
    # A bent polyline on a linear model: completeness is exact for any rule (the integrand is piecewise constant
    # and each segment's gradient is w), with a schedule too.
    bent = knots.clone()
    bent[2] = bent[2] + 0.3 * torch.rand_like(bent[2])
    r = E.polyline_attribute(model, x, bent, alphas=[0, 0.25, 0.5, 0.75], target=t, output="logit")
    assert torch.allclose(r.attr.sum((1, 2, 3)), r.f_input - r.f_baseline, atol=1e-4)
    with pytest.raises(ValueError, match="knots must be"):
        E.polyline_attribute(model, x, bent[:, :1], target=t)


def test_guided_polyline_ends_at_the_input():
    from conftest import QuadraticModel

    torch.manual_seed(0)
    model = QuadraticModel().eval()
    x = torch.rand(2, 3, 8, 8)
    knots = E.guided_polyline(model, x, K=8, target=torch.zeros(2, dtype=torch.long), output="logit")
    assert knots.shape == (9, 2, 3, 8, 8)
    assert torch.equal(knots[0], torch.zeros_like(x)) and torch.allclose(knots[-1], x, atol=1e-6)
    with pytest.raises(ValueError, match="K must be"):
        E.guided_polyline(model, x, K=0)
