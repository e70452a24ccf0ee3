"""The one registry of quadrature rules on [0, 1]: each rule's nodes and weights, its largest n, whether it
takes a schedule, and how its levels nest.

Ground floor: imports only numpy, torch and :mod:`riemannkit.validate`.  A rule is one
:func:`register_rule` call; :func:`riemannkit.attribute`, the schedule studies, the placement table, the
cross-checks and the tests read everything from here, so adding a rule touches this one place.

A rule with ``n`` gradient evaluations has nodes α_i ∈ [0, 1] and weights w_i (float64, Σ w_i = 1);
a rule that takes a schedule also places nodes on a partition 0 = α_0 < … < α_k = 1 (a left-rule
schedule ``alphas`` with α_k = 1 implied, :func:`check_alphas`).  ``refine`` says how the rule's levels
nest: ``refine(n)`` is the next n whose nodes contain every node of n (left, right: 2n; trapezoid, Simpson: 2n − 1;
midpoint: 3n), so a refinement that reuses every gradient already computed walks
:func:`nested_levels`; a rule without ``refine`` (Gauss–Legendre) does not nest.  Simpson's panels (an interval with
its midpoint) are also what ``attribute(..., tol=...)`` bisects one by one (:mod:`riemannkit.tolerance`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch

from . import validate as V

# Past this many gradient evaluations per image a request is a typo, not an experiment.
MAX_EVALUATIONS = 100_000


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


class Rule(NamedTuple):
    """A quadrature rule on [0, 1]: what the engine and the studies need to know about it."""

    name: str
    nodes: Callable[[int], tuple[np.ndarray, np.ndarray]]  # n -> (nodes, weights), float64, nodes increasing
    max_n: int = MAX_EVALUATIONS  # the largest n accepted
    min_n: int = 1
    on_partition: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None  # ends α_0..α_k=1 -> (nodes, weights); None: takes no schedule
    refine: Callable[[int], int] | None = None  # n -> the next n whose nodes contain n's; None: the levels do not nest
    order: int = 1  # error order in 1/n on a smooth integrand (left 1, midpoint 2, …; Gauss–Legendre: 0 = spectral)
    why_max: Callable[[int], str] | None = None  # the cost of a too-large n, for the error message

    @property
    def takes_schedule(self) -> bool:
        """Whether the rule places nodes on a schedule's partition (``alphas``)."""
        return self.on_partition is not None

    @property
    def nests(self) -> bool:
        """Whether the rule's levels nest (``refine`` given)."""
        return self.refine is not None


_RULES: dict[str, Rule] = {}


RULES = V.LiveNames(lambda: tuple(_RULES))  # every rule: 'left', 'right', 'midpoint', 'trapezoid', 'simpson', 'gausslegendre', and any registered later
SCHEDULE_RULES = V.LiveNames(lambda: tuple(k for k, r in _RULES.items() if r.takes_schedule))  # the rules that take a schedule (alphas)


def register_rule(
    name: str,
    nodes: Callable[[int], tuple[np.ndarray, np.ndarray]],
    max_n: int = MAX_EVALUATIONS,
    min_n: int = 1,
    on_partition: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    refine: Callable[[int], int] | None = None,
    order: int = 1,
    why_max: Callable[[int], str] | None = None,
) -> Rule:
    """Register quadrature rule ``name`` (lower-cased); see :class:`Rule` for the fields."""
    key = str(name).lower()
    if key in _RULES:
        raise ValueError(f"rule={name!r} is registered already")
    if not callable(nodes) or (on_partition is not None and not callable(on_partition)) or (refine is not None and not callable(refine)):
        raise ValueError("nodes, on_partition and refine must be callables (on_partition and refine may be None)")
    _RULES[key] = Rule(key, nodes, int(max_n), int(min_n), on_partition, refine, int(order), why_max)
    return _RULES[key]


def unregister_rule(name: str) -> None:
    """Remove a registered rule (tests that register a toy rule clean up with this)."""
    _RULES.pop(str(name).lower(), None)


def rule(name: str) -> Rule:
    """The registry entry of ``name`` (case-insensitive), or a ValueError naming the accepted rules."""
    key = str(name).lower()
    if key not in _RULES:
        raise ValueError(f"unknown rule={name!r}; accepted values: {', '.join(_RULES)}")
    return _RULES[key]


def check_n(entry: Rule, n) -> int:
    """``n`` as an int in [entry.min_n, entry.max_n], or a ValueError naming ``n`` (and, past the largest, its cost)."""
    n = V.check_count(n, "n", minimum=entry.min_n)
    if n > entry.max_n:
        cost = entry.why_max(n) if entry.why_max else (
            f"that is n gradient evaluations per image, and n × 8 bytes = {_gib(8 * float(n))} per node array")
        raise ValueError(f"n={n} exceeds the largest accepted value {entry.max_n} for rule={entry.name!r}; {cost}")
    return n


def rule_nodes(rule_name: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (float64) of a quadrature rule with ``n`` gradient evaluations on [0, 1]."""
    entry = rule(rule_name)
    a, w = entry.nodes(check_n(entry, n))
    return torch.from_numpy(np.asarray(a, np.float64)), torch.from_numpy(np.asarray(w, np.float64))


def rules_taking(ns) -> list[str]:
    """The rules (registry order) that accept every gradient count in ``ns`` (an int or a sequence): a comparison of
    rules over n = 2, 4, 8, … leaves out a rule with odd n only (Simpson's)."""
    ns = [ns] if isinstance(ns, (int, np.integer)) else list(ns)
    out = []
    for name in RULES:
        try:
            for n in ns:
                rule_nodes(name, n)
        except ValueError:
            continue
        out.append(name)
    return out


def _check_alphas_array(alphas) -> np.ndarray:
    # numpy, not torch: a schedule is checked on the host without a single tensor→bool conversion
    accepted = "a 1-D sequence of numbers 0 = α_0 < α_1 < … < α_{n−1} < 1 (a list, numpy array or tensor)"
    if isinstance(alphas, (str, bytes)):
        raise ValueError(f"alphas={alphas!r} is text; accepted values: {accepted}")
    try:
        a = np.asarray(torch.as_tensor(alphas, dtype=torch.float64).detach().cpu().numpy(), dtype=np.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"alphas={alphas!r} is not numbers ({err}); accepted values: {accepted}") from None
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence, got shape {tuple(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError("alphas must be finite")
    if a[0] != 0:
        raise ValueError(f"alphas[0] must be 0 so the left rule covers [0, 1], got {a[0]:.6g}")
    if (a >= 1).any():
        raise ValueError("alphas must lie in [0, 1) for a left rule (α_n = 1 is implied)")
    steps = a[1:] - a[:-1]
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(f"alphas must be sorted and distinct; alphas[{i}]={a[i]:.6g} >= alphas[{i+1}]={a[i+1]:.6g}")
    return a


def check_alphas(alphas) -> torch.Tensor:
    """Validate a left-rule schedule: 1-D, finite, α_0 = 0, strictly increasing, all < 1."""
    return torch.from_numpy(_check_alphas_array(alphas).copy())


def schedule_weights(alphas) -> torch.Tensor:
    """Left-rule weights α_{i+1} − α_i (α_n = 1) of a validated schedule."""
    return torch.from_numpy(np.diff(np.append(_check_alphas_array(alphas), 1.0)))


def schedule_nodes(rule_name: str, alphas) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (float64) of ``rule`` on the partition 0 = α_0 < … < α_n = 1 given by ``alphas``.

    ``alphas`` is validated as by :func:`check_alphas` (α_0 = 0, increasing, < 1; α_n = 1 implied);
    with Δα_i = α_{i+1} − α_i:

    * 'left':      nodes α_0 … α_{n−1},               weights Δα_i               (n evaluations);
    * 'right':     nodes α_1 … α_n,                   weights Δα_i               (n evaluations);
    * 'midpoint':  nodes (α_i + α_{i+1})/2,           weights Δα_i               (n evaluations);
    * 'trapezoid': nodes α_0 … α_n (1 included),      weights (Δα_{i−1} + Δα_i)/2 (n + 1 evaluations);
    * 'simpson':   nodes α_0, the midpoint, α_1, …, α_n, weights Δα_i/6 at the ends, 4Δα_i/6 at the midpoints
                   (2n + 1 evaluations: each interval is a Simpson panel).

    Gauss–Legendre has its own nodes and takes no schedule.
    """
    key = str(rule_name).lower()
    entry = _RULES.get(key)
    if entry is None or not entry.takes_schedule:
        raise ValueError(
            f"rule={rule_name!r} does not take a schedule (alphas); accepted values with alphas: {', '.join(SCHEDULE_RULES)}"
        )
    a, w = entry.on_partition(np.append(_check_alphas_array(alphas), 1.0))
    return torch.from_numpy(np.asarray(a, np.float64)), torch.from_numpy(np.asarray(w, np.float64))


def nodes_and_weights(rule_name: str, n: int, alphas=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of ``rule``: on a schedule's partition when ``alphas`` is given (``n`` unused),
    else the rule's own ``n`` nodes on [0, 1]."""
    return schedule_nodes(rule_name, alphas) if alphas is not None else rule_nodes(rule_name, n)


def evaluations_on_partition(rule_name: str, intervals: int) -> int:
    """Gradient evaluations the rule makes on a partition of ``intervals`` intervals (trapezoid: intervals + 1)."""
    entry = rule(rule_name)
    if not entry.takes_schedule:
        raise ValueError(f"rule={rule_name!r} does not take a schedule; accepted values: {', '.join(SCHEDULE_RULES)}")
    return len(entry.on_partition(np.linspace(0.0, 1.0, int(intervals) + 1))[0])


def nested_levels(rule_name: str, n0: int, n_max: int) -> list[int]:
    """The nested levels n0, refine(n0), … up to ``n_max`` of a rule whose levels nest (each level's nodes
    contain the previous level's, so a refinement reuses every gradient computed)."""
    entry = rule(rule_name)
    if not entry.nests:
        raise ValueError(f"rule={entry.name!r} has no nested levels; rules that nest: {', '.join(k for k, r in _RULES.items() if r.nests)}")
    levels = [check_n(entry, n0)]
    while True:
        nxt = entry.refine(levels[-1])
        if nxt <= levels[-1]:
            raise ValueError(f"rule={entry.name!r}: refine({levels[-1]}) = {nxt} does not grow")
        if nxt > n_max or nxt > entry.max_n:
            return levels
        levels.append(nxt)


# ------------------------------------------------------------------------------------- the built-in rules
def _left(n):
    return np.arange(n) / n, np.full(n, 1 / n)


def _right(n):
    return np.arange(1, n + 1) / n, np.full(n, 1 / n)


def _midpoint(n):
    return (np.arange(n) + 0.5) / n, np.full(n, 1 / n)


def _trapezoid(n):
    w = np.full(n, 1 / (n - 1))
    w[0] = w[-1] = 0.5 / (n - 1)
    return np.linspace(0, 1, n), w


def _simpson(n):
    if n % 2 == 0:
        raise ValueError(f"n must be odd for rule='simpson' (2k + 1 nodes: k panels, each with its midpoint), got n={n}")
    w = np.full(n, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return np.linspace(0, 1, n), w / (3 * (n - 1))


def _gausslegendre(n):
    t, w = np.polynomial.legendre.leggauss(n)
    return (t + 1) / 2, w / 2


# Graded Gauss–Legendre: BlurIG's integrand lives where σ is small, near α = 1 (on the Lite0 pool 90 % of Σ|g| lies
# beyond α = 0.87, σ < 6.5 px of σ_max = 50), where plain Gauss–Legendre puts about a fifth of its nodes; and ReLU6 makes
# g jump along the path, so every rule converges as 1/n there and what counts is the node density where g lives.
GRADED_SPLIT, GRADED_HEAD_SHARE = 0.85, 1 / 8
_GL_PANEL_MAX = 4096  # a panel's nodes come from an n × n eigenproblem (see 'gausslegendre')


def graded_gausslegendre(n: int, split: float = GRADED_SPLIT, head_share: float = GRADED_HEAD_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre on [0, 1]: max(1, ⌊n · head_share⌋) nodes on [0, split], the rest on [split, 1] in equal
    panels of at most 4096 nodes; weights sum to 1, exact on each panel to its Gauss degree."""
    if not 0 < split < 1 or not 0 < head_share < 1:
        raise ValueError(f"split={split!r} and head_share={head_share!r} must lie in (0, 1)")
    head = max(1, int(n * head_share))
    tail = n - head
    if tail < 1:
        raise ValueError(f"n={n} is too small for rule='gausslegendre_graded': it needs a node on each side of {split}")
    k = -(-tail // _GL_PANEL_MAX)
    ends = np.linspace(split, 1.0, k + 1)
    counts = [tail // k + (i < tail % k) for i in range(k)]
    parts = [(0.0, split, head)] + [(ends[i], ends[i + 1], counts[i]) for i in range(k)]
    nodes, weights = [], []
    for lo, hi, m in parts:
        t, w = _gausslegendre(m)
        nodes.append(lo + t * (hi - lo))
        weights.append(w * (hi - lo))
    return np.concatenate(nodes), np.concatenate(weights)


# On a partition ``ends`` = α_0 … α_k = 1 (validated, increasing).
def _left_on(ends):
    return ends[:-1], np.diff(ends)


def _right_on(ends):
    return ends[1:], np.diff(ends)


def _midpoint_on(ends):
    return 0.5 * (ends[:-1] + ends[1:]), np.diff(ends)


def _trapezoid_on(ends):
    d = np.diff(ends)
    w = np.zeros(len(ends))
    w[:-1] += 0.5 * d
    w[1:] += 0.5 * d
    return ends, w


def _simpson_on(ends):
    # each interval [α_i, α_{i+1}] is a panel with its midpoint: weights Δα/6 at the ends, 4Δα/6 at the midpoint
    d = np.diff(ends)
    nodes = np.empty(2 * len(d) + 1)
    nodes[0::2], nodes[1::2] = ends, 0.5 * (ends[:-1] + ends[1:])
    w = np.zeros(len(nodes))
    w[0:-1:2] += d / 6
    w[2::2] += d / 6
    w[1::2] = 4 * d / 6
    return nodes, w


register_rule("left", _left, on_partition=_left_on, refine=lambda n: 2 * n, order=1)
register_rule("right", _right, on_partition=_right_on, refine=lambda n: 2 * n, order=1)
register_rule("midpoint", _midpoint, on_partition=_midpoint_on, refine=lambda n: 3 * n, order=2)
register_rule("trapezoid", _trapezoid, min_n=2, on_partition=_trapezoid_on, refine=lambda n: 2 * n - 1, order=2)
register_rule("simpson", _simpson, min_n=3, on_partition=_simpson_on, refine=lambda n: 2 * n - 1, order=4)
# Gauss–Legendre's nodes come from an n × n eigenproblem, and stop improving in float64 long before 4096.
register_rule("gausslegendre", _gausslegendre, max_n=4096, order=0,
              why_max=lambda n: f"Gauss–Legendre nodes alone need n² × 8 bytes = {_gib(8 * float(n) ** 2)} to compute")
# A reference rule for BlurIG (the tolerance study's): Gauss–Legendre graded toward α = 1, n/8 nodes before 0.85.
register_rule("gausslegendre_graded", graded_gausslegendre, min_n=2, max_n=8 * _GL_PANEL_MAX, order=0)
