"""Adaptive paths frozen as polylines (riemannkit.polyline): exact on straight knots, Guided IG's knots end at the
input."""
from __future__ import annotations

import pytest
import torch

from conftest import LinearModel
from riemannkit import integrate as I
from riemannkit import polyline


def test_polyline_attribute_linear_model_and_straight_knots():
    from riemannkit import integrate as I

    torch.manual_seed(0)
    model = LinearModel().eval()
    x = torch.rand(2, 3, 8, 8)
    t = torch.tensor([0, 1])
    # Knots on the straight line from black: the polyline is IG's path, any rule gives IG's attribution.
    knots = torch.linspace(0, 1, 5).view(-1, 1, 1, 1, 1) * x.unsqueeze(0)
    for rule, n in (("left", 7), ("midpoint", 3), ("gausslegendre", 4)):
        r = polyline.polyline_attribute(model, x, knots, rule=rule, n=n, target=t, output="logit")
        ig = I.attribute(model, x, "ig", rule=rule, n=n, target=t, output="logit")
        assert torch.allclose(r.attr, ig.attr, atol=1e-5)
        assert r.n_gradients == n
    # A schedule's partition with a rule, as attribute: the rule is not ignored.
    from conftest import QuadraticModel

    quad = QuadraticModel().eval()
    sched = [0.0, 0.2, 0.45, 0.8]
    z = torch.zeros(2, dtype=torch.long)
    for rule in ("left", "midpoint", "trapezoid"):
        r = polyline.polyline_attribute(quad, x, knots, rule=rule, alphas=sched, target=z, output="logit")
        ig = I.attribute(quad, x, "ig", rule=rule, alphas=sched, target=z, output="logit")
        assert torch.allclose(r.attr, ig.attr, atol=1e-5) and r.n_gradients == ig.n_gradients
    # A bent polyline on a linear model: completeness is exact for any rule (the integrand is piecewise constant
    # and each segment's gradient is w), with a schedule too.
    bent = knots.clone()
    bent[2] = bent[2] + 0.3 * torch.rand_like(bent[2])
    r = polyline.polyline_attribute(model, x, bent, alphas=[0, 0.25, 0.5, 0.75], target=t, output="logit")
    assert torch.allclose(r.attr.sum((1, 2, 3)), r.f_input - r.f_baseline, atol=1e-4)
    with pytest.raises(ValueError, match="knots must be"):
        polyline.polyline_attribute(model, x, bent[:, :1], target=t)


def test_guided_polyline_ends_at_the_input():
    from conftest import QuadraticModel

    torch.manual_seed(0)
    model = QuadraticModel().eval()
    x = torch.rand(2, 3, 8, 8)
    knots = polyline.guided_polyline(model, x, K=8, target=torch.zeros(2, dtype=torch.long), output="logit")
    assert knots.shape == (9, 2, 3, 8, 8)
    assert torch.equal(knots[0], torch.zeros_like(x)) and torch.allclose(knots[-1], x, atol=1e-6)
    with pytest.raises(ValueError, match="K must be"):
        polyline.guided_polyline(model, x, K=0)

