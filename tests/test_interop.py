"""riemannkit.interop: a riemannkit schedule through Captum's IntegratedGradients (captum 0.9.0)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import riemannkit as rk
from riemannkit import interop
from riemannkit import schedule as S

captum_attr = pytest.importorskip("captum.attr")


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5)
    ).eval()


SCHED = np.array([0.0, 0.05, 0.2, 0.33, 0.5, 0.61, 0.7, 0.9])


def test_step_sizes_and_alphas_form():
    steps, alphas = interop.captum_step_sizes_and_alphas(SCHED)
    assert isinstance(steps, list) and isinstance(alphas, list)
    assert all(isinstance(v, float) for v in steps + alphas)
    np.testing.assert_allclose(alphas, SCHED)
    np.testing.assert_allclose(steps, np.diff(np.append(SCHED, 1.0)))
    assert sum(steps) == pytest.approx(1.0)
    # the left rule of Captum's own builders is the linear schedule
    from captum.attr._utils.approximation_methods import approximation_parameters

    fs, fa = approximation_parameters("riemann_left")
    s2, a2 = interop.captum_step_sizes_and_alphas(S.linear_schedule(8))
    np.testing.assert_allclose(a2, fa(8), atol=1e-7)
    np.testing.assert_allclose(s2, fs(8))


@pytest.mark.parametrize("output", ["logit", "prob"])
@pytest.mark.parametrize("use_baseline", [False, True])
def test_captum_matches_riemannkit(output, use_baseline):
    net = _net()
    torch.manual_seed(1)
    x = torch.rand(3, 3, 6, 6)
    base = torch.rand(3, 3, 6, 6) * 0.3 if use_baseline else None
    target = torch.tensor([0, 3, 1])
    fwd = net if output == "logit" else (lambda z: net(z).softmax(-1))
    ig = captum_attr.IntegratedGradients(fwd)
    ours = rk.attribute(net, x, "ig", alphas=SCHED, target=target, output=output,
                        **({"baseline": base} if use_baseline else {}))
    theirs = interop.captum_attribute(ig, x, base, target, SCHED)
    assert theirs.shape == x.shape
    scale = ours.attr.abs().max()
    # Captum sums the float32 terms in its own order and pass shape: ~1e-7 of the map's scale apart (measured
    # at most 7 % of this tolerance with two threads or one, ATen's AVX2 or default kernels).
    torch.testing.assert_close(theirs, ours.attr, rtol=1e-6, atol=1e-6 * float(scale))
    # and the same schedule differs from Captum's own left rule with the same n
    left = ig.attribute(x, base, target=target, n_steps=len(SCHED), method="riemann_left")
    assert (left - ours.attr).abs().max() > 1e-4 * scale


def test_captum_linear_schedule_equals_captum_riemann_left():
    net = _net()
    x = torch.rand(2, 3, 6, 6)
    ig = captum_attr.IntegratedGradients(net)
    a = interop.captum_attribute(ig, x, None, 2, S.linear_schedule(10))
    b = ig.attribute(x, target=2, n_steps=10, method="riemann_left")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_tuple_inputs_give_tuple_output():
    net = _net()
    x = torch.rand(2, 3, 6, 6)
    ig = captum_attr.IntegratedGradients(net)
    out = interop.captum_attribute(ig, (x,), None, 0, SCHED)
    assert isinstance(out, tuple) and out[0].shape == x.shape


@pytest.mark.parametrize(
    "bad,match",
    [
        ([0.1, 0.5], "alphas\\[0\\] must be 0"),
        ([0.0, 0.5, 0.4], "sorted and distinct"),
        ([0.0, 0.5, 1.0], "\\[0, 1\\)"),
        ([0.0, float("nan")], "finite"),
        ([], "non-empty"),
    ],
)
def test_bad_schedules_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        interop.captum_step_sizes_and_alphas(bad)
    ig = captum_attr.IntegratedGradients(_net())
    with pytest.raises(ValueError, match=match):
        interop.captum_attribute(ig, torch.rand(1, 3, 6, 6), None, 0, bad)


def test_wrong_object_and_version(monkeypatch):
    with pytest.raises(TypeError, match="IntegratedGradients"):
        interop.captum_attribute(object(), torch.rand(1, 3, 6, 6), None, 0, SCHED)
    import captum

    monkeypatch.setattr(captum, "__version__", "9.9.9")
    ig = captum_attr.IntegratedGradients(_net())
    with pytest.raises(RuntimeError, match="0.9.0"):
        interop.captum_attribute(ig, torch.rand(1, 3, 6, 6), None, 0, SCHED)
    out = interop.captum_attribute(ig, torch.rand(1, 3, 6, 6), None, 0, SCHED, check_version=False)
    assert out.shape == (1, 3, 6, 6)
