"""Where along a path the model responds and how schedules of a study behave: response_along_path (integrate),
half_rise, gprime_summary, per-image curves, schedule distances and subsets (schedule), completeness of schedules
(placement)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import LinearModel
from riemannkit import integrate as I
from riemannstudy import placement
from riemannkit import schedule as S


def test_response_along_ig_is_linear_for_a_linear_model():
    torch.manual_seed(0)
    model = LinearModel().eval()
    x = torch.rand(3, 3, 8, 8)
    alphas = np.linspace(0, 1, 11)
    r = I.response_along_path(model, x, "ig", alphas, target=torch.tensor([0, 1, 0]), output="logit", batch_size=4)
    assert r.shape == (11, 3)
    with torch.no_grad():
        f0 = model(torch.zeros_like(x)).gather(1, torch.tensor([[0], [1], [0]])).squeeze(1)
        f1 = model(x).gather(1, torch.tensor([[0], [1], [0]])).squeeze(1)
    expect = f0 + torch.as_tensor(alphas, dtype=torch.float32).view(-1, 1) * (f1 - f0)
    assert torch.allclose(r, expect, atol=1e-4)
    assert torch.allclose(S.half_rise(alphas, r), torch.full((3,), 0.5, dtype=torch.float64), atol=1e-6)


def test_half_rise_interpolates_and_handles_decreasing_curves():
    a = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    v = torch.tensor([[0.0, 1.0], [0.0, 0.9], [0.2, 0.1], [0.8, 0.05], [1.0, 0.0]])
    # Image 0 rises 0 → 1: half (0.5) is between 0.5 (0.2) and 0.75 (0.8) at 0.5 + 0.25·0.3/0.6.
    # Image 1 falls 1 → 0: half its change is reached between 0.25 (0.9) and 0.5 (0.1).
    h = S.half_rise(a, v)
    assert h[0].item() == pytest.approx(0.625)
    assert h[1].item() == pytest.approx(0.25 + 0.25 * 0.4 / 0.8)
    with pytest.raises(ValueError, match="values must be"):
        S.half_rise(a, v[:3])


def test_gprime_summary():
    grid = np.arange(64) / 64
    flat = S.gprime_summary(grid, np.ones(64))
    assert flat["median"] == pytest.approx(0.5)
    peak = np.exp(-0.5 * ((grid - 0.8) / 0.03) ** 2)
    s = S.gprime_summary(grid, peak)
    assert s["peak"] == pytest.approx(0.796875) and abs(s["median"] - 0.8) < 0.02
    with pytest.raises(ValueError, match="same length"):
        S.gprime_summary(grid, np.ones(3))


def test_per_image_curves_average_to_algorithm_1():
    from riemannkit import schedule as S
    from conftest import QuadraticModel

    torch.manual_seed(0)
    model = QuadraticModel().eval()
    x = torch.rand(3, 3, 8, 8)
    grid, curves = S.per_image_gprime(model, x, "ig", k=8, target=torch.zeros(3, dtype=torch.long), output="logit")
    g_all, gp_all = S.estimate_gprime(model, x, "ig", k=8, target=torch.zeros(3, dtype=torch.long), output="logit")
    assert curves.shape == (3, 8) and np.allclose(grid, g_all)
    assert np.allclose(curves.mean(0), gp_all, rtol=1e-5)


def test_schedule_distance_and_subsets():
    assert S.schedule_distance([0, 0.5], [0, 0.25]) == pytest.approx(0.125)
    with pytest.raises(ValueError, match="same length"):
        S.schedule_distance([0, 0.5], [0, 0.2, 0.4])
    grid = np.arange(32) / 32
    curves = np.stack([np.exp(-0.5 * ((grid - c) / 0.1) ** 2) + 0.01 for c in (0.2, 0.5, 0.8, 0.6)])
    sub = S.subset_schedules(grid, curves, [1, 4], draws=3, n=8)
    assert len(sub[1]) == 3 and len(sub[4]) == 1  # all 4 images: one possible draw
    for a in sub[1] + sub[4]:
        assert a[0] == 0 and np.all(np.diff(a) > 0) and a[-1] < 1 and len(a) == 8
    with pytest.raises(ValueError, match="calibration size m=5"):
        S.subset_schedules(grid, curves, [5], draws=1, n=8)


def test_completeness_of_schedules_exact_for_linear_model():
    torch.manual_seed(0)
    model = LinearModel().eval()
    x = torch.rand(2, 3, 8, 8)
    errs = placement.completeness_of_schedules(model, x, "ig", [[0.0, 0.3], [0.0, 0.1, 0.7]], output="logit")
    assert errs.shape == (2, 2) and errs.max() < 1e-4

