"""IDGI (riemannkit.idgi): completeness by construction, closed forms, zero gradients, the reference sum."""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from riemannkit import integrate as I  # noqa: E402
from riemannkit import paths as P  # noqa: E402
from riemannkit.idgi import idgi_attribute, idgi_combine  # noqa: E402

from conftest import ConvNet, Counting, LinearLogits, Ridge

SHAPE = (3, 8, 8)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, *SHAPE, generator=_gen(10))


def _reference_idgi(grads: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """yangruo1226/IDGI's loop: result += G[i]**2 * d / sum(G[i]**2), d = f_{i+1} − f_i (float64)."""
    g, v = grads.double(), values.double()
    out = torch.zeros_like(g[0])
    for i in range(g.shape[0]):
        d = (v[i + 1] - v[i]).view(-1, *([1] * (g.ndim - 2)))
        out += g[i] ** 2 * d / (g[i] ** 2).flatten(1).sum(1).view_as(d)
    return out


def _f(model, x, target, output="prob"):
    with torch.no_grad():
        return I.target_output(model, x, target, output)


@pytest.mark.parametrize(
    "path, kwargs, alphas",
    [
        ("ig", {}, None),
        ("ig", {"baseline": None}, [0.0, 0.05, 0.1, 0.3, 0.6, 0.9]),  # non-uniform schedule
        ("blurig", {"max_sigma": 3.0}, None),
        ("blurig", {"max_sigma": 3.0}, [0.0, 0.2, 0.25, 0.7]),
        ("guidedig", {"fraction": 0.5, "max_dist": 1.0}, None),
        ("guidedig", {}, [0.0, 0.1, 0.4, 0.45, 0.8]),
    ],
)
def test_completeness_by_construction(images, path, kwargs, alphas):
    model = ConvNet(seed=0).eval()
    res = idgi_attribute(model, images, path, n=8, alphas=alphas, batch_size=5, **kwargs)
    delta = res.f_input.double() - res.f_baseline.double()
    assert delta.abs().min() > 1e-3  # a non-trivial Δf, so the check means something
    assert torch.allclose(res.attr.double().flatten(1).sum(1), delta, rtol=0, atol=1e-6)
    # f_input and f_baseline are f at the path's endpoints.
    target = res.target
    assert torch.allclose(res.f_input, _f(model, images, target), atol=1e-6)
    start = P.check_baseline(images, None) if path != "blurig" else P.blur(images, torch.zeros(1, dtype=torch.float64), 3.0)[0][0]
    assert torch.allclose(res.f_baseline, _f(model, start, target), atol=1e-6)
    assert res.n_gradients == (8 if alphas is None else len(alphas))
    assert res.attr.shape == images.shape and res.attr.dtype == torch.float32


@pytest.mark.parametrize("path, kwargs", [("ig", {}), ("guidedig", {"fraction": 0.5, "max_dist": 1.0})])
def test_linear_model_closed_form(images, path, kwargs):
    """Constant gradient w: attr = w ⊙ w (w·(x − x')) / ||w||² whatever the path and schedule."""
    model = LinearLogits().eval()
    base = 0.3 * torch.rand(2, *SHAPE, generator=_gen(5))
    res = idgi_attribute(model, images, path, alphas=[0.0, 0.1, 0.5, 0.6], target=[0, 1], output="logit", baseline=base, **kwargs)
    w = model.w.double()[[0, 1]]
    d = (images - base).double().flatten(1)
    expected = w * w * (w * d).sum(1, keepdim=True) / (w * w).sum(1, keepdim=True)
    assert torch.allclose(res.attr.double().flatten(1), expected, rtol=1e-4, atol=1e-6)


def test_blurig_linear_closed_form():
    model = LinearLogits().eval()
    x = torch.rand(1, *SHAPE, generator=_gen(6))
    res = idgi_attribute(model, x, "blurig", n=4, target=0, output="logit", max_sigma=2.0)
    start = P.blur(x, torch.zeros(1, dtype=torch.float64), 2.0)[0][0]
    w = model.w.double()[0]
    d = (x - start).double().flatten()
    assert torch.allclose(res.attr.double().flatten(), w * w * (w @ d) / (w @ w), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("path", ["ig", "guidedig"])
def test_matches_reference_sum_on_the_same_points(images, path):
    """IDGI equals the reference loop run on f and ∇f at the path points computed independently."""
    model = ConvNet(seed=4).eval()
    target = torch.tensor([0, 2])
    nodes = torch.tensor([0.0, 0.1, 0.3, 0.35, 0.8], dtype=torch.float64)
    res = idgi_attribute(model, images, path, alphas=nodes, target=target)
    grad_fn = lambda p: I.gradients(model, p, target, "prob")  # noqa: E731
    if path == "ig":
        ends = torch.cat([nodes, torch.ones(1, dtype=torch.float64)])
        pts = P.straight_line(images, ends)[0]
        grads = torch.stack([grad_fn(p) for p in pts[:-1]])
    else:
        grads, deltas = P.guided_ig(grad_fn, images, nodes)
        pts = torch.cat([torch.zeros_like(images)[None], torch.cumsum(deltas.double(), 0).float()])
    values = torch.stack([_f(model, p, target) for p in pts])
    expected = _reference_idgi(grads, values)
    assert torch.allclose(res.attr.double(), expected, rtol=1e-4, atol=1e-6)
    # It is not IG: the projection changes the map.
    ig = I.attribute(model, images, "ig", alphas=nodes, target=target).attr
    if path == "ig":
        assert not torch.allclose(ig, res.attr, atol=1e-4)


def test_idgi_combine_matches_reference_and_checks_shapes():
    g = torch.randn(5, 3, 2, 4, 4, generator=_gen(7))
    v = torch.randn(6, 3, generator=_gen(8))
    attr, lost = idgi_combine(g, v)
    assert torch.allclose(attr, _reference_idgi(g, v), atol=1e-12)
    assert torch.equal(lost, torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(attr.flatten(1).sum(1), (v[-1] - v[0]).double(), atol=1e-12)
    with pytest.raises(ValueError, match=r"values must have shape \(n\+1, B\)"):
        idgi_combine(g, v[:5])
    with pytest.raises(ValueError, match="grads must be"):
        idgi_combine(g, v[0])


def test_zero_gradient_step_contributes_zero_and_reports_lost_delta():
    g = torch.randn(3, 2, 1, 2, 2, generator=_gen(9))
    g[1, 0] = 0  # image 0, step 1: zero gradient, Δf = v[2] − v[1] is lost
    v = torch.tensor([[0.0, 0.0], [1.0, 2.0], [4.0, 3.0], [5.0, 7.0]])
    attr, lost = idgi_combine(g, v)
    assert torch.isfinite(attr).all()
    assert lost.tolist() == [3.0, 0.0]
    assert torch.allclose(attr.flatten(1).sum(1), torch.tensor([5.0 - 3.0, 7.0], dtype=torch.float64))


def test_zero_gradient_on_the_path_warns_and_loses_that_step():
    """relu(v·x − c): the gradient is 0 before the path crosses v·x = c (at α = 0.6)."""
    x = torch.rand(1, *SHAPE, generator=_gen(12)) * 0.9 + 0.1  # in [0.1, 1]: images must be in [0, 1]
    v = torch.randn(SHAPE, generator=_gen(13)).abs()
    s = float((v * x).sum())
    model = Ridge(v, 0.6 * s).eval()
    with pytest.warns(RuntimeWarning, match="zero-gradient steps"):
        res = idgi_attribute(model, x, "ig", n=4, target=0, output="logit")
    # Steps 0..2 start below the kink (g = 0); step 2 (α 0.5 → 0.75) has Δf = 0.15 s, which is lost;
    # step 3 keeps Δf = f(1) − f(0.75) = 0.25 s along v ⊙ v / ||v||².
    assert torch.isfinite(res.attr).all()
    vv = v.double().flatten()
    assert torch.allclose(res.attr.double().flatten(), vv * vv / (vv @ vv) * 0.25 * s, rtol=1e-4, atol=1e-7)
    assert res.attr.sum().item() == pytest.approx(float(res.f_input - res.f_baseline) - 0.15 * s, rel=1e-4)


def test_flat_model_gives_zero_map_without_warning():
    x = torch.rand(2, *SHAPE, generator=_gen(14))
    model = Ridge(torch.ones(SHAPE), 1e6).eval()  # relu(·) = 0 everywhere: f and ∇f are 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = idgi_attribute(model, x, "ig", n=4, target=0, output="logit")
    assert torch.equal(res.attr, torch.zeros_like(x))  # every gradient is exactly 0


def test_batching_one_forward_per_chunk(images):
    model = Counting(ConvNet(seed=0).eval())
    idgi_attribute(model, images, "ig", n=8, target=0, batch_size=4)
    # 8 alphas × 2 images in passes of whole rows, ≤ 4 points, f and ∇f from the same pass; f(x) is one more
    # row (2 points): the passes are full, and a quarter more than 4 points is not a row, so it takes a pass.
    assert model.calls == [4, 4, 4, 4, 2]
    model.calls.clear()
    idgi_attribute(model, images, "ig", n=8, target=0, batch_size=8)
    assert model.calls == [10, 8]  # 9 rows in the 2 passes 8 rows take: f(x) costs no pass


def test_bad_inputs(images):
    model = ConvNet(seed=0).eval()
    with pytest.raises(ValueError, match="unknown path='straight'; accepted values: ig, blurig, guidedig"):
        idgi_attribute(model, images, "straight")
    with pytest.raises(ValueError, match="unknown output='logprob'; accepted values: prob, logit"):
        idgi_attribute(model, images, output="logprob")
    with pytest.raises(ValueError, match=r"alphas\[0\] must be 0"):
        idgi_attribute(model, images, alphas=[0.1, 0.5])
    with pytest.raises(ValueError, match="sorted and distinct"):
        idgi_attribute(model, images, alphas=[0.0, 0.5, 0.4])
    with pytest.raises(ValueError, match="n must be an integer"):
        idgi_attribute(model, images, n=0)
    with pytest.raises(ValueError, match="does not take"):
        idgi_attribute(model, images, "guidedig", max_sigma=3.0)
    with pytest.raises(ValueError, match="does not take"):
        idgi_attribute(model, images, "blurig", baseline=torch.zeros_like(images))
    with pytest.raises(ValueError, match="B, C, H, W"):
        idgi_attribute(model, images[0])
    with pytest.raises(ValueError, match="target has 3 entries for 2 images"):
        idgi_attribute(model, images, target=[0, 1, 2])
