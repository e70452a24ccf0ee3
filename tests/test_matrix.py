"""Every registered path × every rule × every engine knob through the same invariants (in the manner of
Captum's test_config.py): completeness on a linear model, pass-size invariance, knob equivalence, and bad
input rejected with a message naming the parameter.

A linear model's gradient w is constant, so Σ attr = w · Σ_i w_i γ'(α_i): it equals f(x) − f(x') exactly
(to float32 rounding) wherever the rule integrates γ' exactly: the straight line (γ' constant) with every
rule, Guided IG and SAMP (their steps telescope to x − x'), and the manifold path with a linear decoder
(piecewise linear between knots at α = i/4) with the left and midpoint rules, whose nodes each sample the
segment they stand for.  BlurIG's γ' varies with
α, so there the rules only converge."""
from __future__ import annotations

import itertools

import pytest
import torch

import riemannkit as rk
from riemannkit import paths as P
from riemannkit import quadrature as Q

from conftest import ConvNet, LinearDecoder, LinearModel

RULES = tuple(rk.RULES)  # the quadrature registry's rules, as registered when the tests are collected
KNOTS = 5  # manifold knots at α = i/4


def _images(b: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def _kwargs(path: str, x: torch.Tensor) -> dict:
    """The keyword arguments each registered path needs on 3×8×8 images."""
    if path == "blurig":
        return {"max_sigma": 3.0}
    if path == "manifold":
        knots = torch.randn(x.shape[0], KNOTS, 4, generator=torch.Generator().manual_seed(7))
        return {"decoder": LinearDecoder(shape=(3, 8, 8)), "knots": knots}
    return {}


def _combos():
    for path in sorted({*P.CLOSED_FORM_PATHS, *P.ADAPTIVE_PATHS}):
        for rule in RULES:
            if path in P.ADAPTIVE_PATHS and rule != "left":
                continue
            yield path, rule


COMBOS = list(_combos())


def _n(rule: str, n: int) -> int:
    """``n`` nodes, or the next count the rule takes (Simpson: an odd n)."""
    return n + 1 if rule == "simpson" and n % 2 == 0 else n


def test_the_matrix_covers_every_registered_path():
    assert {p for p, _ in COMBOS} == {*P.CLOSED_FORM_PATHS, *P.ADAPTIVE_PATHS}
    assert {"ig", "blurig", "guidedig", "samp", "manifold"} <= {p for p, _ in COMBOS}


def _exact(path: str, rule: str) -> bool:
    if path == "ig" or path in P.ADAPTIVE_PATHS:
        return True
    # Nodes of width 1/8 never straddle a knot at i/4, but γ' at a knot is the derivative of the segment
    # that starts there: right for the left rule, wrong for a right-rule (or trapezoid) node that closes the
    # segment before it.  Gauss–Legendre's nodes are not aligned with the knots at all.
    return path == "manifold" and rule in ("left", "midpoint")


@pytest.mark.parametrize("path,rule", COMBOS)
def test_completeness_on_a_linear_model(path, rule):
    model, x = LinearModel(n_out=3).eval(), _images()
    kw = _kwargs(path, x)
    errs = []
    for n in (8, 64):
        r = rk.attribute(model, x, path=path, rule=rule, n=_n(rule, n), target=1, output="logit", **kw)
        delta = r.f_input - r.f_baseline
        errs.append((r.attr.flatten(1).sum(1) - delta).abs().max() / delta.abs().max())
        if _exact(path, rule):
            # float32 sums of 192 features × n nodes: a few ulps of the largest term, relative
            assert errs[-1] < 1e-5, (path, rule, n, errs[-1])
    if not _exact(path, rule):
        assert errs[1] < errs[0] or errs[1] < 1e-5, (path, rule, errs)


@pytest.mark.parametrize("path,rule", COMBOS)
def test_pass_size_does_not_change_the_map(path, rule):
    model, x = ConvNet().eval(), _images()
    kw = _kwargs(path, x)
    ref = rk.attribute(model, x, path=path, rule=rule, n=_n(rule, 6), target=2, batch_size=1000, **kw)
    for bs in (1, 4, 7):
        r = rk.attribute(model, x, path=path, rule=rule, n=_n(rule, 6), target=2, batch_size=bs, **kw)
        # the same float32 products summed in another order: ~1e-6 relative
        torch.testing.assert_close(r.attr, ref.attr, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(r.f_input, ref.f_input, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(r.f_baseline, ref.f_baseline, rtol=1e-6, atol=1e-7)
        assert r.n_gradients == ref.n_gradients


@pytest.mark.parametrize("knob", [{"channels_last": True}, {"amp_dtype": "bf16"}])
@pytest.mark.parametrize("path,rule", COMBOS)
def test_speed_knobs_keep_the_map(path, rule, knob):
    model, x = ConvNet().eval(), _images()
    kw = _kwargs(path, x)
    ref = rk.attribute(model, x, path=path, rule=rule, n=_n(rule, 6), target=0, **kw)
    r = rk.attribute(ConvNet().eval(), x, path=path, rule=rule, n=_n(rule, 6), target=0, **knob, **kw)
    # bf16 keeps 8 bits of mantissa (relative 2^-8 per product); channels_last only reorders the sums
    tol = 5e-2 if "amp_dtype" in knob else 1e-5
    assert float((r.attr - ref.attr).norm() / ref.attr.norm()) < tol
    if path not in P.ADAPTIVE_PATHS:
        # f(x) and f(x') are computed in full precision whatever the knob (completeness is judged against them)
        torch.testing.assert_close(r.f_input, ref.f_input, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("path", sorted({*P.CLOSED_FORM_PATHS, *P.ADAPTIVE_PATHS}))
def test_bad_rule_and_knobs_are_rejected_naming_the_parameter(path):
    model, x = ConvNet().eval(), _images()
    kw = _kwargs(path, x)
    cases = [({"rule": "boole"}, "rule"), ({"batch_size": 0}, "batch_size"), ({"n": 0}, "n"),
             ({"amp_dtype": "fp8"}, "amp_dtype"), ({"output": "softmax"}, "output")]
    if path in P.ADAPTIVE_PATHS:
        cases.append(({"rule": "midpoint"}, "rule"))
    for bad, name in cases:
        with pytest.raises(ValueError, match=name):
            rk.attribute(model, x, path=path, **{"n": 4, **bad}, **kw)


def test_schedules_run_through_every_closed_form_path_and_rule():
    """A non-uniform schedule takes the same route as n nodes: every closed-form path × rule accepts it."""
    model, x = LinearModel(n_out=3).eval(), _images()
    alphas = [0.0, 0.05, 0.25, 0.5, 0.75]  # left bounds on a partition aligned with the manifold's knots
    for path, rule in itertools.product(sorted(P.CLOSED_FORM_PATHS), tuple(Q.SCHEDULE_RULES)):
        r = rk.attribute(model, x, path=path, rule=rule, alphas=alphas, target=1, output="logit", **_kwargs(path, x))
        assert r.n_gradients == Q.evaluations_on_partition(rule, len(alphas))
        if _exact(path, rule) and path != "manifold":  # 0.05 straddles no knot but 0..0.05..0.25 is one segment
            delta = r.f_input - r.f_baseline
            assert float((r.attr.flatten(1).sum(1) - delta).abs().max() / delta.abs().max()) < 1e-5
    with pytest.raises(ValueError, match="alphas"):
        rk.attribute(model, x, alphas=[0.5, 0.2], target=1)
    with pytest.raises(ValueError, match="n"):
        rk.attribute(model, x, n=Q.rule("left").max_n + 1, target=1)
