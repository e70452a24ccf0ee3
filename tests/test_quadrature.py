"""The quadrature registry (riemannkit.quadrature): every registered rule's invariants read from its entry, nested
levels, and a toy rule registered here and used through ``attribute`` without touching any other module."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

import riemannkit as rk
from riemannkit import quadrature as Q

from conftest import LinearModel


@pytest.mark.parametrize("name", list(Q.RULES))
def test_every_rule_has_nodes_in_the_unit_interval_and_weights_summing_to_one(name):
    entry = Q.rule(name)
    for n in (entry.min_n, 5, 17):
        a, w = rk.rule_nodes(name, n)
        assert a.dtype == w.dtype == torch.float64 and a.shape == w.shape == (n,)
        assert (a >= 0).all() and (a <= 1).all() and (torch.diff(a) > 0).all()
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-13)


@pytest.mark.parametrize("name", [r for r in Q.RULES if Q.rule(r).nests])
def test_nested_levels_contain_every_node_of_the_level_before(name):
    entry = Q.rule(name)
    levels = Q.nested_levels(name, max(entry.min_n, 3), 200)
    assert len(levels) >= 3
    for lo, hi in zip(levels, levels[1:]):
        coarse, fine = rk.rule_nodes(name, lo)[0].numpy(), rk.rule_nodes(name, hi)[0].numpy()
        assert np.abs(fine[None, :] - coarse[:, None]).min(1).max() < 1e-14, (name, lo, hi)


def test_nested_levels_of_the_built_in_rules():
    assert Q.nested_levels("left", 4, 40) == [4, 8, 16, 32]
    assert Q.nested_levels("trapezoid", 3, 40) == [3, 5, 9, 17, 33]
    assert Q.nested_levels("midpoint", 2, 60) == [2, 6, 18, 54]
    with pytest.raises(ValueError, match="rule='gausslegendre' has no nested levels; rules that nest: left"):
        Q.nested_levels("gausslegendre", 4, 64)


@pytest.mark.parametrize("name", list(Q.SCHEDULE_RULES))
def test_a_rule_on_the_uniform_partition_is_the_rule_itself(name):
    k = 6
    a, w = rk.schedule_nodes(name, np.arange(k) / k)
    ra, rw = rk.rule_nodes(name, Q.evaluations_on_partition(name, k))
    torch.testing.assert_close(a, ra, rtol=0, atol=1e-15)
    torch.testing.assert_close(w, rw, rtol=0, atol=1e-15)


def _smooth(a):
    return np.exp(np.sin(3 * a))


@pytest.mark.parametrize("name", [r for r in Q.RULES if Q.rule(r).order > 0])
def test_each_rule_converges_at_its_registered_order(name):
    exact = quad(_smooth, 0, 1, epsabs=1e-14, epsrel=1e-14)[0]
    ns = (65, 257) if name == "simpson" else (64, 256)  # Simpson takes an odd n: 32 and 128 panels
    errs = [abs(float((w * torch.from_numpy(_smooth(a.numpy()))).sum()) - exact) for a, w in
            (rk.rule_nodes(name, n) for n in ns)]
    assert math.log(errs[0] / errs[1], 4) == pytest.approx(Q.rule(name).order, abs=0.15)


def test_largest_n_is_refused_with_its_cost():
    with pytest.raises(ValueError, match=r"n=4097 exceeds the largest accepted value 4096 for rule='gausslegendre'; Gauss–Legendre nodes alone"):
        rk.rule_nodes("gausslegendre", 4097)
    with pytest.raises(ValueError, match=r"n=100001 exceeds the largest accepted value 100000 for rule='left'"):
        rk.rule_nodes("left", Q.MAX_EVALUATIONS + 1)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        rk.rule_nodes("trapezoid", 1)


def test_rule_names_are_a_live_tuple():
    assert rk.RULES == ("left", "right", "midpoint", "trapezoid", "simpson", "gausslegendre", "gausslegendre_graded")
    assert rk.integrate.SCHEDULE_RULES == ("left", "right", "midpoint", "trapezoid", "simpson")
    assert rk.RULES + ("schedule",) == (*rk.RULES, "schedule") and "left" in rk.RULES and ", ".join(rk.RULES).startswith("left, ")
    with pytest.raises(ValueError, match="rule='left' is registered already"):
        Q.register_rule("left", Q.rule("left").nodes)


@pytest.mark.parametrize("n", [16, 64, 4096, 8192, 32768])
def test_graded_gausslegendre_is_exact_on_each_panel_and_grades_toward_one(n):
    a, w = (t.numpy() for t in rk.rule_nodes("gausslegendre_graded", n))
    head = n // 8
    assert np.sum(a < Q.GRADED_SPLIT) == head and np.isclose(w.sum(), 1.0, rtol=0, atol=1e-13)
    for k in range(min(2 * head, 24)):  # exact to degree 2m − 1 on every panel (monomials checked to 23: float64)
        assert np.isclose(w @ a**k, 1 / (k + 1), rtol=1e-12, atol=0), k
    # a jump at the split (where BlurIG's head meets its tail) is integrated exactly: the split is a panel end
    assert np.isclose(w @ (a >= Q.GRADED_SPLIT), 1 - Q.GRADED_SPLIT, rtol=1e-12, atol=0)
    # past 4096 tail nodes the tail is cut into equal panels, each a Gauss–Legendre rule the registry can compute
    tail = n - head
    panels = -(-tail // 4096)
    ends = np.linspace(Q.GRADED_SPLIT, 1, panels + 1)
    per_panel = [np.sum((a > lo) & (a < hi)) for lo, hi in zip(ends, ends[1:])]
    assert sum(per_panel) == tail and max(per_panel) <= 4096 and max(per_panel) - min(per_panel) <= 1
    assert np.allclose([w[(a > lo) & (a < hi)].sum() for lo, hi in zip(ends, ends[1:])], np.diff(ends), rtol=1e-12, atol=0)


def test_graded_gausslegendre_refuses_what_it_cannot_place():
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        rk.rule_nodes("gausslegendre_graded", 1)
    with pytest.raises(ValueError, match="n=32769 exceeds the largest accepted value 32768 for rule='gausslegendre_graded'"):
        rk.rule_nodes("gausslegendre_graded", 8 * 4096 + 1)
    with pytest.raises(ValueError, match=r"split=1\.5 and head_share=0\.125 must lie in \(0, 1\)"):
        Q.graded_gausslegendre(16, split=1.5)


# ------------------------------------------------------------------------------------- a toy rule
@pytest.fixture
def simpson():
    # the built-in Simpson's nodes under another name, registered without a schedule
    Q.register_rule("toysimpson", Q.rule("simpson").nodes, max_n=1001, min_n=3, refine=lambda n: 2 * n - 1, order=4)
    try:
        yield "toysimpson"
    finally:
        Q.unregister_rule("toysimpson")


def test_a_toy_rule_registered_in_one_place_works_through_attribute(simpson, scalar_model, images):
    assert simpson in rk.RULES and simpson not in rk.integrate.SCHEDULE_RULES
    # exact on a linear model (IG's integrand is constant), f(x) and f(x') from its nodes at 0 and 1
    model = LinearModel(n_out=3).eval()
    r = rk.attribute(model, images, rule=simpson, n=9, target=1, output="logit")
    assert r.n_gradients == 9
    delta = r.f_input - r.f_baseline
    assert float((r.attr.flatten(1).sum(1) - delta).abs().max() / delta.abs().max()) < 1e-5
    # fourth order through the engine: f(u) = exp(sin 3u) along x' = 0 → x = 1
    x = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    exact = math.exp(math.sin(3.0)) - 1.0
    errs = [abs(float(rk.attribute(scalar_model.double(), x, rule=simpson, n=n, output="logit", target=0).attr.sum()) - exact)
            for n in (9, 17)]
    assert math.log2(errs[0] / errs[1]) == pytest.approx(4, abs=0.3)
    assert Q.nested_levels(simpson, 3, 40) == [3, 5, 9, 17, 33]
    # its own checks and the registry's, named
    with pytest.raises(ValueError, match="n must be odd"):
        rk.attribute(model, images, rule=simpson, n=8, target=1)
    with pytest.raises(ValueError, match="does not take a schedule"):
        rk.attribute(model, images, rule=simpson, alphas=[0, 0.5], target=1)
    with pytest.raises(ValueError, match=r"exceeds the largest accepted value 1001 for rule='toysimpson'"):
        rk.attribute(model, images, rule=simpson, n=1003, target=1)


def test_unknown_rule_lists_the_registered_rules(simpson):
    with pytest.raises(ValueError, match="unknown rule='boole'; accepted values: left, right, midpoint, trapezoid, simpson, gausslegendre, gausslegendre_graded, toysimpson"):
        rk.rule_nodes("boole", 5)


def test_rules_taking_names_the_rules_that_accept_every_n():
    from riemannkit import quadrature as Q

    even = Q.rules_taking([4, 8, 16])
    assert "simpson" not in even and {"left", "right", "midpoint", "trapezoid", "gausslegendre"} <= set(even)
    assert "simpson" in Q.rules_taking(5) and "simpson" in Q.rules_taking([5, 9])
    assert Q.rules_taking([]) == list(Q.RULES)  # no n: no rule is left out
    assert [r for r in Q.RULES if r in even] == even  # registry order
