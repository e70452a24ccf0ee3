"""riemannkit.metrics: per-image and pooled relative completeness errors."""
from __future__ import annotations

import pytest
import torch

import riemannkit as rk


def _case():
    # image 0: Σ attr = 3, Δf = 2 → |3 − 2| / 2 = 0.5 ; image 1: Σ attr = −1, Δf = −1 → 0
    attr = torch.zeros(2, 1, 2, 2)
    attr[0] = torch.tensor([[1.0, 1.0], [0.5, 0.5]])
    attr[1] = torch.tensor([[-2.0, 0.5], [0.25, 0.25]])
    f_in = torch.tensor([2.5, 0.0])
    f_base = torch.tensor([0.5, 1.0])
    return attr, f_in, f_base


def test_completeness_error_known_answer():
    err = rk.completeness_error(*_case())
    assert err.dtype == torch.float64 and err.shape == (2,)
    torch.testing.assert_close(err, torch.tensor([0.5, 0.0], dtype=torch.float64))


def test_completeness_error_pooled_known_answer():
    # (|3 − 2| + |−1 − (−1)|) / (|2| + |−1|) = 1/3
    assert rk.completeness_error_pooled(*_case()) == pytest.approx(1 / 3)
    attr, f_in, f_base = _case()
    attr[1] += 0.25  # Σ attr = 0 for image 1 → |0 + 1| = 1 more error
    assert rk.completeness_error_pooled(attr, f_in, f_base) == pytest.approx(2 / 3)
    assert isinstance(rk.completeness_error_pooled(attr, f_in, f_base), float)


def test_pooled_differs_from_mean_of_ratios():
    attr = torch.tensor([[1.1], [0.0]])
    f_in, f_base = torch.tensor([1.0, 10.0]), torch.tensor([0.0, 0.0])
    per = rk.completeness_error(attr, f_in, f_base)
    torch.testing.assert_close(per, torch.tensor([0.1, 1.0], dtype=torch.float64))
    assert rk.completeness_error_pooled(attr, f_in, f_base) == pytest.approx(10.1 / 11)


def test_zero_delta_raises():
    attr, f_in, _ = _case()
    with pytest.raises(ValueError, match="is 0"):
        rk.completeness_error(attr, f_in, f_in.clone())
    f_base = f_in.clone()
    f_base[0] = 0.0  # only image 1 has Δf = 0: still undefined per image
    with pytest.raises(ValueError, match="is 0"):
        rk.completeness_error(attr, f_in, f_base)
    # pooled: defined while some Δf ≠ 0, undefined (raises) when every Δf is 0
    assert rk.completeness_error_pooled(attr, f_in, f_base) == pytest.approx((abs(3 - 2.5) + 1) / 2.5)
    with pytest.raises(ValueError, match="is 0"):
        rk.completeness_error_pooled(attr, f_in, f_in.clone())


def test_metrics_on_attribute_output(linear_model, images):
    a = rk.attribute(linear_model, images, n=4, output="logit", target=0)
    assert (rk.completeness_error(a.attr, a.f_input, a.f_baseline) < 1e-5).all()
    assert rk.completeness_error_pooled(a.attr, a.f_input, a.f_baseline) < 1e-5
