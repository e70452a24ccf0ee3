"""riemannkit.integrate: quadrature rules, schedules, attribute() exactness, batching and input errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

import riemannkit as rk
from riemannkit import integrate as I

SCHEDULE = [0.0, 0.05, 0.1, 0.3, 0.35, 0.6, 0.9, 0.97]  # an arbitrary, non-uniform left-rule schedule


def _schedule_steps(alphas) -> np.ndarray:
    return np.diff(np.append(np.asarray(alphas, np.float64), 1.0))


# ---------------------------------------------------------------- rule_nodes / schedules


@pytest.mark.parametrize("rule", rk.RULES)
@pytest.mark.parametrize("n", [2, 5, 16])
def test_rule_nodes_weights_sum_to_one_and_nodes_in_unit_interval(rule, n):
    if rule == "simpson" and n % 2 == 0:
        n += 1  # Simpson takes an odd n (its even n are refused: test_tolerance)
    a, w = rk.rule_nodes(rule, n)
    assert a.dtype == torch.float64 and w.dtype == torch.float64
    assert a.shape == (n,) and w.shape == (n,)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-14)
    assert (w > 0).all()
    assert (a >= 0).all() and (a <= 1).all()
    assert (torch.diff(a) > 0).all()


def test_rule_nodes_known_values():
    a, w = rk.rule_nodes("left", 4)
    assert torch.allclose(a, torch.tensor([0, 0.25, 0.5, 0.75], dtype=torch.float64))
    a, w = rk.rule_nodes("right", 4)
    assert torch.allclose(a, torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    a, w = rk.rule_nodes("midpoint", 2)
    assert torch.allclose(a, torch.tensor([0.25, 0.75], dtype=torch.float64))
    a, w = rk.rule_nodes("trapezoid", 3)
    assert torch.allclose(a, torch.tensor([0, 0.5, 1.0], dtype=torch.float64))
    assert torch.allclose(w, torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64))
    a, w = rk.rule_nodes("gausslegendre", 2)
    r = 0.5 / math.sqrt(3)
    assert torch.allclose(a, torch.tensor([0.5 - r, 0.5 + r], dtype=torch.float64))
    assert torch.allclose(w, torch.tensor([0.5, 0.5], dtype=torch.float64))
    # the rule name is case-insensitive
    assert torch.equal(rk.rule_nodes("LEFT", 3)[0], rk.rule_nodes("left", 3)[0])


def _f(a):
    return np.exp(np.sin(3 * a))


REF = quad(_f, 0, 1, epsabs=1e-14, epsrel=1e-14)[0]


def _rule_error(rule, n):
    a, w = rk.rule_nodes(rule, n)
    return abs(float((w * torch.from_numpy(_f(a.numpy()))).sum()) - REF)


@pytest.mark.parametrize("rule,order", [("left", 1), ("right", 1), ("midpoint", 2), ("trapezoid", 2)])
def test_rule_convergence_order_on_smooth_integrand(rule, order):
    # For this integrand the left/right leading term (f(1) − f(0))/(2n) is small, so their n = 16
    # errors are still pre-asymptotic: estimate every order over n = 64 → 256 (cheap here).
    e64, e256 = _rule_error(rule, 64), _rule_error(rule, 256)
    est = math.log(e64 / e256) / math.log(4)
    assert est == pytest.approx(order, abs=0.1)
    if order == 2:
        e16 = _rule_error(rule, 16)
        assert math.log(e16 / e64) / math.log(4) == pytest.approx(2, abs=0.1)
    else:
        # leading term of the left/right rule error: ∓(f(1) − f(0)) / (2n)
        a, w = rk.rule_nodes(rule, 256)
        signed = float((w * torch.from_numpy(_f(a.numpy()))).sum()) - REF
        lead = (_f(1.0) - _f(0.0)) / (2 * 256) * (-1 if rule == "left" else 1)
        assert signed == pytest.approx(lead, rel=0.1)


def test_gausslegendre_is_spectrally_accurate():
    assert _rule_error("gausslegendre", 4) > 1e-6  # not trivially exact
    assert _rule_error("gausslegendre", 16) < 1e-12


@pytest.mark.parametrize("rule,order", [("left", 1), ("right", 1), ("midpoint", 2), ("trapezoid", 2)])
def test_rule_convergence_order_through_attribute(scalar_model, rule, order):
    # One feature, f(u) = exp(sin 3u), x = 1, x' = 0: the IG integrand is f'(α); Σ attr → f(1) − f(0).
    x = torch.ones(1, 1, 1, 1)
    exact = math.exp(math.sin(3.0)) - 1.0
    errs = []
    for n in (16, 64):
        a = rk.attribute(scalar_model, x, rule=rule, n=n, output="logit", target=0)
        # f(1) = 1.15 in float32 (ulp 1.2e-7) through a CPU-dependent exp/sin: one ulp is 8e-7 of Δf = 0.15,
        # so allow a few ulps, not one.
        assert float(a.f_input - a.f_baseline) == pytest.approx(exact, rel=5e-6)
        errs.append(abs(float(a.attr.sum()) - exact))
    est = math.log(errs[0] / errs[1]) / math.log(4)
    assert est == pytest.approx(order, abs=0.2)


def test_schedule_weights_and_check_alphas():
    w = rk.schedule_weights(SCHEDULE)
    assert torch.allclose(w, torch.from_numpy(_schedule_steps(SCHEDULE)))
    assert float(w.sum()) == pytest.approx(1.0)
    assert torch.equal(I.check_alphas(np.array(SCHEDULE)), torch.tensor(SCHEDULE, dtype=torch.float64))


@pytest.mark.parametrize(
    "alphas,match",
    [
        ([0.0, 0.5, 0.3], "sorted"),
        ([0.0, 0.3, 0.3, 0.6], "distinct"),
        ([0.0, 0.5, 1.0], r"\[0, 1\)"),
        ([0.0, 0.5, 1.2], r"\[0, 1\)"),
        ([0.1, 0.5], r"alphas\[0\]"),
        ([-0.1, 0.5], r"alphas\[0\]"),
        ([0.0, float("nan")], "finite"),
        ([], "non-empty"),
        ([[0.0, 0.5]], "1-D"),
    ],
)
def test_bad_alphas_raise(linear_model, images, alphas, match):
    with pytest.raises(ValueError, match=match):
        I.check_alphas(alphas)
    with pytest.raises(ValueError, match="alphas"):
        rk.attribute(linear_model, images, alphas=alphas, output="logit", target=0)


@pytest.mark.parametrize("rule,n", [("left", 0), ("left", 2.5), ("trapezoid", 1), ("midpoint", -3)])
def test_bad_n_raises(rule, n):
    with pytest.raises(ValueError, match="n must be"):
        rk.rule_nodes(rule, n)


# ---------------------------------------------------------------- 1. linear model: IG is exact


@pytest.mark.parametrize("rule", rk.RULES + ("schedule",))
@pytest.mark.parametrize("base", ["zero", "nonzero", "one-image"])
def test_ig_on_linear_model_is_exact_for_every_rule(linear_model, images, baseline, rule, base):
    if base == "zero":
        kw, xb = {}, torch.zeros_like(images)
    elif base == "nonzero":
        kw, xb = {"baseline": baseline}, baseline
    else:  # one (C, H, W) baseline broadcast to every image
        kw, xb = {"baseline": baseline[0]}, baseline[0].expand_as(images)
    sched = {"alphas": SCHEDULE} if rule == "schedule" else {"rule": rule, "n": 7}
    for target in (0, 1):
        a = rk.attribute(linear_model, images, path="ig", output="logit", target=target, **sched, **kw)
        expected = (images - xb) * linear_model.w(target)
        assert a.attr.shape == images.shape
        torch.testing.assert_close(a.attr, expected, rtol=1e-5, atol=1e-6)
        # completeness: Σ attr = f(x) − f(x')
        torch.testing.assert_close(a.attr.flatten(1).sum(1), a.f_input - a.f_baseline, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(a.f_baseline, linear_model(xb)[:, target])
            torch.testing.assert_close(a.f_input, linear_model(images)[:, target])
        assert torch.equal(a.target, torch.tensor([target, target]))
        assert a.n_gradients == (len(SCHEDULE) if rule == "schedule" else 7)


def test_ig_on_linear_model_prob_output_completeness(linear_model, images):
    # softmax is non-linear, so only completeness (up to quadrature error) holds; f is a probability
    a = rk.attribute(linear_model, images, rule="gausslegendre", n=32, batch_size=64)
    with torch.no_grad():
        p = linear_model(images).softmax(-1)
    assert torch.equal(a.target, p.argmax(-1))
    torch.testing.assert_close(a.f_input, p.gather(1, a.target.view(-1, 1)).squeeze(1))
    assert (rk.completeness_error(a.attr, a.f_input, a.f_baseline) < 1e-3).all()


# ---------------------------------------------------------------- 2. quadratic model: closed-form errors


def _quad_case(quad_model, images, baseline):
    x, xb = images.double(), baseline.double()
    d = x - xb
    slope = d * quad_model.hess_dot(d)  # g'(α) = d ⊙ (Q d), constant in α
    exact = d * (quad_model.grad(xb) + 0.5 * quad_model.hess_dot(d))  # ∫₀¹ d ⊙ ∇f(x' + α d) dα
    return exact, slope


@pytest.mark.parametrize("rule", ["trapezoid", "midpoint", "gausslegendre"])
def test_quadratic_exact_rules(quad_model, images, baseline, rule):
    exact, _ = _quad_case(quad_model, images, baseline)
    for n in (2, 5):
        a = rk.attribute(quad_model, images, rule=rule, n=n, output="logit", target=0, baseline=baseline)
        torch.testing.assert_close(a.attr.double(), exact, rtol=1e-4, atol=1e-5)
        delta = quad_model.f(images) - quad_model.f(baseline)
        torch.testing.assert_close(a.attr.double().flatten(1).sum(1), delta, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rule,sign", [("left", -1.0), ("right", 1.0)])
@pytest.mark.parametrize("n", [3, 8])
def test_quadratic_left_right_error_closed_form(quad_model, images, baseline, rule, sign, n):
    exact, slope = _quad_case(quad_model, images, baseline)
    a = rk.attribute(quad_model, images, rule=rule, n=n, output="logit", target=0, baseline=baseline)
    err = a.attr.double() - exact
    # per feature: ±slope/(2n); summed: ±Σ slope / (2n)
    torch.testing.assert_close(err, sign * slope / (2 * n), rtol=1e-3, atol=2e-5)
    total_err = err.flatten(1).sum(1)
    expected = sign * slope.flatten(1).sum(1) / (2 * n)
    assert (expected.abs() > 50 * 1e-4).all()  # the error checked is far above the tolerance
    torch.testing.assert_close(total_err, expected, rtol=1e-3, atol=1e-4)


def test_quadratic_left_error_general_schedule(quad_model, images, baseline):
    exact, slope = _quad_case(quad_model, images, baseline)
    a = rk.attribute(quad_model, images, alphas=SCHEDULE, output="logit", target=0, baseline=baseline)
    steps = _schedule_steps(SCHEDULE)
    factor = -0.5 * float((steps**2).sum())
    err = a.attr.double() - exact
    torch.testing.assert_close(err, factor * slope, rtol=1e-3, atol=2e-5)
    torch.testing.assert_close(err.flatten(1).sum(1), factor * slope.flatten(1).sum(1), rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- 6. batching


@pytest.mark.parametrize("path,kw", [("ig", {}), ("ig", {"rule": "trapezoid"}), ("blurig", {"max_sigma": 4.0})])
def test_batch_size_does_not_change_result(conv_model, images, path, kw):
    results = [rk.attribute(conv_model, images, path=path, n=9, batch_size=bs, **kw) for bs in (1, 3, 64)]
    for r in results[1:]:
        torch.testing.assert_close(r.attr, results[0].attr, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(r.f_input, results[0].f_input)
        torch.testing.assert_close(r.f_baseline, results[0].f_baseline)
        assert torch.equal(r.target, results[0].target)


def test_each_image_alone_equals_batch(conv_model, images):
    both = rk.attribute(conv_model, images, rule="midpoint", n=8, target=[0, 2])
    for i, t in enumerate((0, 2)):
        one = rk.attribute(conv_model, images[i : i + 1], rule="midpoint", n=8, target=t)
        torch.testing.assert_close(one.attr[0], both.attr[i], rtol=1e-5, atol=1e-7)


def test_forward_calls_are_batched(conv_model, images, counting):
    model = counting(conv_model)
    a = rk.attribute(model, images, n=16, batch_size=64)
    # predict (2 images), then ONE forward/backward of 2 × 16 points plus 2 rows for f(x); f(x') is f at α = 0
    assert model.calls == [2, 34]
    assert a.n_gradients == 16

    model.calls.clear()
    rk.attribute(model, images, n=16, batch_size=8, target=1)
    # target given: no prediction; 16 alphas × 2 images take 4 passes of 8 points, and the 2 rows of f(x)
    # spread over them (a pass may hold a quarter more than batch_size rather than add a pass)
    assert model.calls == [9, 9, 9, 7]

    model.calls.clear()
    rk.attribute(model, images, n=5, batch_size=6, target=1)
    assert model.calls == [6, 6]  # 10 points and f(x)'s 2 rows: the second pass's free room holds them


def test_target_broadcast_and_mismatch(conv_model, images):
    a = rk.attribute(conv_model, images, n=4, target=2)
    assert torch.equal(a.target, torch.tensor([2, 2]))
    b = rk.attribute(conv_model, images, n=4, target=torch.tensor([2, 2]))
    torch.testing.assert_close(a.attr, b.attr)
    with pytest.raises(ValueError, match="target"):
        rk.attribute(conv_model, images, n=4, target=[0, 1, 2])


# ---------------------------------------------------------------- 11. bad input


def test_unknown_path_rule_output(linear_model, images):
    with pytest.raises(ValueError, match="path"):
        rk.attribute(linear_model, images, path="foo")
    with pytest.raises(ValueError, match="rule"):
        rk.attribute(linear_model, images, rule="simpson")
    with pytest.raises(ValueError, match="output"):
        rk.attribute(linear_model, images, output="softmax")
    with pytest.raises(ValueError, match="rule"):
        rk.rule_nodes("foo", 4)


def test_baseline_shape_mismatch(linear_model, images):
    with pytest.raises(ValueError, match="baseline shape"):
        rk.attribute(linear_model, images, baseline=torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="baseline shape"):
        rk.attribute(linear_model, images, path="guidedig", baseline=torch.zeros(3, 3, 8, 8))


def test_bad_image_shape_and_batch_size(linear_model, images):
    with pytest.raises(ValueError, match="x must be"):
        rk.attribute(linear_model, images[0])
    with pytest.raises(ValueError, match="batch_size"):
        rk.attribute(linear_model, images, batch_size=0)


def test_unknown_path_kwargs(linear_model, images):
    with pytest.raises(ValueError, match="max_sigma"):
        rk.attribute(linear_model, images, path="ig", max_sigma=3.0)
    with pytest.raises(ValueError, match="baseline"):
        rk.attribute(linear_model, images, path="blurig", baseline=torch.zeros_like(images))
    with pytest.raises(ValueError, match="max_sigma"):
        rk.attribute(linear_model, images, path="blurig", max_sigma=-1.0)


@pytest.mark.parametrize("path", ["ig", "blurig", "guidedig"])
def test_non_finite_gradient_raises(nan_model, images, path):
    with pytest.raises(FloatingPointError, match="not finite"):
        rk.attribute(nan_model, images, path=path, n=4, target=0)


def test_more_images_than_batch_size_matches_one_batch_with_per_image_baselines():
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    x = torch.rand(5, 3, 4, 4, dtype=torch.float64)
    base = torch.rand(5, 3, 4, 4, dtype=torch.float64)
    for path, kw in [("ig", {"baseline": base}), ("guidedig", {"baseline": base}), ("blurig", {"max_sigma": 2.0})]:
        one = rk.attribute(net, x, path=path, n=8, output="logit", batch_size=64, **kw)
        split = rk.attribute(net, x, path=path, n=8, output="logit", batch_size=2, **kw)
        assert split.attr.dtype == torch.float64  # follows the model's dtype
        torch.testing.assert_close(split.attr, one.attr)
        torch.testing.assert_close(split.f_baseline, one.f_baseline)
