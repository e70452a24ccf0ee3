"""Attribution to a tolerance: per-image adaptive Simpson on [0, 1] for the map-valued integrand
g(α) = ∇f(γ(α)) ⊙ γ'(α), reusing every gradient computed (the bookkeeping; the engine calls are
``riemannkit.attribute(..., tol=...)`` and ``riemannkit.idgi.idgi_attribute(..., tol=...)``).

Ground floor: imports only numpy, torch, :mod:`riemannkit.quadrature` and :mod:`riemannkit.validate`.

**The scheme.**  The starting level is a partition 0 = e_0 < … < e_K = 1 into *panels* (rule 'simpson' with n
nodes: (n − 1)/2 equal panels; or the intervals of a schedule ``alphas``; plus the α where the path bends, the
manifold path's knots, so that no panel straddles a kink).  A panel [a, b] of width h holds the gradients at
a, its midpoint m and b, and gives

    Simpson          S = h/6 (g_a + 4 g_m + g_b)                  (the map is Q = Σ_j S_j: rule 'simpson' on the panels),
    Richardson       E = S − T₂ = h/12 (2 g_m − g_a − g_b)        (T₂ = h/4 (g_a + 2 g_m + g_b), the trapezoid),
    local residual   r = Σ_pixels S − (f(γ(b)) − f(γ(a))).

Bisection [a, b] → [a, m], [m, b] adds the two quarter points and nothing else: a, m and b are reused, so a
refinement never recomputes a node (nested levels: Simpson's n → 2n − 1).  Simpson with bisection is the classic
adaptive rule (Kuncir 1962; Lyness, J. ACM 16, 1969); Gauss–Kronrod pairs (QUADPACK) would not reuse the parent
panel's nodes on bisection, and Romberg's higher levels presume the smoothness that g lacks (below).

**The error estimate.**  On a ReLU network g(α) is only piecewise smooth: every activation that switches along the
path makes the gradient of some pixels jump.  On EfficientNet-Lite0 the second differences of g are as large as
its first differences (‖Δ²g‖ ≈ √2 ‖Δg‖, the signature of independent increments; the chapter "Attribution to a
tolerance" measures it), every uniform rule's map error falls only as 1/n, and the asymptotic factor 1/15 of
Lyness's (S₂ − S₁)/15 underestimates the error several-fold (benchmarks/tolerance_estimators.py replays the
candidate estimates on one photo's integrand at 1025 nodes).  So the estimate is calibrated on
the rough regime: for an integrand with independent increments (a Brownian motion or a jump process of the
same covariance) the Simpson error of a panel has exactly twice the standard deviation of E (with
Cov(W_s, W_t) = min(s, t): Var(S − ∫W) = h³/36, Var(E) = h³/144), and the errors of different panels are
independent; for a smooth g, 2E (O(h³)) bounds S's error (O(h⁵)) with a wide margin.  Per image

    estimated map error   ε̂ = 2 max(‖Σ_j E_j‖₂, (Σ_j ‖E_j‖₂²)^½) / ‖Q‖₂,
    completeness error    c = |Σ_pixels Q − Δf| / |Δf|,            Δf = f(x) − f(x'),

(L2 over all pixels and channels).  The root-sum-square of the panels' error norms cannot cancel (panels whose
errors point in opposite directions add in it), the norm of their sum covers errors aligned across panels, and
c is an exact global check: completeness alone can be met by a wrong map whose errors cancel in the pixel sum,
and ε̂ alone could miss a spike between nodes, which c sees, and the local residual r says where (f at every
node comes from the same pass as its gradient, and on a panel the path integral must equal f(γ(b)) − f(γ(a))).

**Stopping and refinement.**  An image stops when ε̂ ≤ tol and c ≤ tol, or when it has used ``n_max`` gradients
(the caller warns, naming it).  Otherwise each round bisects, per image, the fewest panels with the largest
η_j = (2‖E_j‖₂ / ‖Q‖₂)² + (r_j / Δf)² whose sum reaches THETA = ½ of Σ_j η_j (Dörfler's marking, SIAM J. Numer.
Anal. 33, 1996): nodes gather where g spikes, and a round adds many nodes where many panels need them, so the
rounds are few and the passes full.  The new nodes of every unfinished image go through the engine's passes
together; an image that has stopped leaves the batch.  The marking does not depend on ``tol``, so one run to
the smallest of several tolerances passes through the states where the larger ones stop (``tol=[0.1, 0.05,
0.01]`` keeps a snapshot at each).

**Memory.**  Per unfinished image: the integrand at each node (every node is an end or a midpoint of a panel
that a later round may bisect), f and the pixel sum at each node, and two numbers per panel; the maps Q and
Σ_j E_j are recomputed from the nodes each round (no per-panel maps are kept).  With ``keep_grad`` (IDGI) the
raw gradient at each node is kept as well.
"""
from __future__ import annotations

import numbers
import warnings
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

from . import quadrature as Q
from . import validate as V

TOL_RULES = ("simpson",)  # the rules whose levels tol= refines panel by panel
DEFAULT_N = 17  # the starting level with tol: Simpson, 8 panels
DEFAULT_N_MAX = 1024  # gradient evaluations per image at most, by default
THETA = 0.5  # Dörfler's marking fraction
MIN_WIDTH = 2.0**-24  # panels this narrow are not bisected (α in float32 would repeat a node)
PANEL_CHUNK = 64  # panels whose estimates are computed at once (bounds the transient memory)


def check_tol(tol) -> tuple[float, ...]:
    """``tol`` (a number in (0, 1); or several, the run stopping at the smallest and keeping a snapshot at each)
    as a decreasing tuple, or a ValueError naming the accepted values."""
    many = isinstance(tol, (list, tuple))
    values = list(tol) if many else [tol]
    if not values:
        raise ValueError("tol must be a number in (0, 1) or a non-empty list of them, got an empty list")
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not (0 < float(v) < 1):
            raise ValueError(f"tol must be a number in (0, 1) (a relative error: 0.05 is 5 %), or a list of them; got {tol!r}")
        out.append(float(v))
    return tuple(sorted(set(out), reverse=True))


def check_tol_rule(rule: str) -> str:
    """The rule a refinement to a tolerance starts from ('simpson'), or a ValueError saying why another is refused."""
    entry = Q.rule(rule)
    if entry.name in TOL_RULES:
        return entry.name
    why = "its levels do not nest (a refinement would recompute every node)" if not entry.nests else (
        "tol= bisects Simpson panels (an interval with its midpoint), whose trapezoid and Simpson values give the error estimate")
    raise ValueError(f"rule={rule!r} cannot be refined to a tolerance: {why}; accepted with tol: "
                     f"{', '.join(repr(r) for r in TOL_RULES)} (the default with tol), with n (odd) nodes or a schedule alphas")


def starting_ends(n: int | None, alphas, breaks: Sequence[float] = ()) -> np.ndarray:
    """Panel ends 0 = e_0 < … < e_K = 1 of the starting level: rule 'simpson' with ``n`` nodes ((n − 1)/2 equal
    panels), or the intervals of the schedule ``alphas``; the path's ``breaks`` are added as ends."""
    if alphas is not None:
        ends = np.append(Q.check_alphas(alphas).numpy(), 1.0)
    else:
        nodes, _ = Q.rule_nodes("simpson", DEFAULT_N if n is None else n)
        ends = nodes.numpy()[0::2]
    return np.unique(np.concatenate([ends, np.asarray(list(breaks), dtype=np.float64)]))


def check_n_max(n_max, start: int) -> int:
    """``n_max`` (gradient evaluations per image at most) as an int >= the starting level's ``start``."""
    if n_max is None:
        return max(DEFAULT_N_MAX, start)
    try:
        n_max = V.check_count(n_max, "n_max", minimum=1, maximum=Q.MAX_EVALUATIONS)
    except ValueError as err:
        raise ValueError(f"{err}; n_max is the most gradient evaluations per image (>= the starting level's {start})") from None
    if n_max < start:
        raise ValueError(f"n_max={n_max} is below the starting level's {start} gradient evaluations per image; "
                         f"accepted: n_max >= {start} (or a coarser start: a smaller odd n, or fewer alphas)")
    return n_max


def panel_weights(ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and Simpson weights on the panels ``ends`` (the 'simpson' rule on that partition)."""
    return Q.rule("simpson").on_partition(ends)


SIMPSON = (1 / 6, 4 / 6, 1 / 6)  # S = h (g_a/6 + 4 g_m/6 + g_b/6)
RICHARDSON = (-1 / 12, 2 / 12, -1 / 12)  # E = S − T₂ = h (−g_a + 2 g_m − g_b)/12


def panel_rule(ends: np.ndarray, coef: tuple[float, float, float], breaks: frozenset = frozenset()
               ) -> tuple[np.ndarray, np.ndarray, dict[float, float]]:
    """Σ_j h_j (c_a g(a_j⁺) + c_m g(m_j) + c_b g(b_j⁻)) over the panels ``ends`` as node weights: (nodes, weights,
    {break: weight of the left limit g(b⁻)}); at a node that is no break g(b⁻) = g(b), and its weights merge."""
    nodes, _ = panel_weights(ends)
    d = np.diff(ends)
    w = np.zeros(len(nodes))
    w[0:-1:2] += coef[0] * d
    w[1::2] = coef[1] * d
    at_break = np.isin(ends[1:], list(breaks)) if breaks else np.zeros(len(d), dtype=bool)
    w[2::2] += np.where(at_break, 0.0, coef[2] * d)
    return nodes, w, dict(zip(ends[1:][at_break].tolist(), (coef[2] * d[at_break]).tolist()))


class Snapshot(NamedTuple):
    """One image's state where a tolerance stopped it."""

    attr: torch.Tensor  # (C, H, W) the map
    gradients: int  # gradient evaluations so far
    completeness: float  # |Σ attr − Δf| / |Δf| of the map the stop was judged on
    map_error: float  # estimated relative map error ε̂
    hit_n_max: bool
    nodes: np.ndarray  # the node positions (sorted)


class Refinement:
    """The state of a refinement to a tolerance of B images: per image its panels, the nodes' integrands (and raw
    gradients with ``keep_grad``), f and pixel sums at the nodes, each panel's ‖E‖ and residual.

    One round: :meth:`wanted` gives the (image, α) pairs to evaluate, the engine hands each pass's values to
    :meth:`add`, and :meth:`update` computes the new panels' estimates, reads them with one host sync, stops the
    images that are done (a :class:`Snapshot` per tolerance, whose map ``finish(state, i)`` makes: Simpson's by
    default) and marks the panels to bisect next.  At a ``break`` (where the path's velocity jumps) the panel that
    ends there takes the integrand's left limit ∇f(γ(b)) ⊙ γ'(b⁻), which the engine passes as ``left`` (the
    same gradient: no extra evaluation)."""

    def __init__(self, n_images: int, ends: np.ndarray, tols: tuple[float, ...], n_max: int, keep_grad: bool = False,
                 finish: "Callable[[Refinement, int], torch.Tensor] | None" = None, breaks: Sequence[float] = ()):
        self.tols, self.n_max, self.keep_grad, self.finish = tols, int(n_max), keep_grad, finish
        self.breaks = frozenset(float(b) for b in breaks)
        self.ends = [ends.copy() for _ in range(n_images)]
        self.err = [np.full(len(ends) - 1, np.nan) for _ in range(n_images)]  # ‖E_j‖₂ per panel
        self.res = [np.full(len(ends) - 1, np.nan) for _ in range(n_images)]  # r_j per panel
        # per image: chunks of nodes as evaluated (alphas, integrands, raw gradients or None), α -> (chunk, row),
        # and the left limits at the breaks
        self.chunks: list[list[tuple[list[float], torch.Tensor, torch.Tensor | None]]] = [[] for _ in range(n_images)]
        self.where: list[dict[float, tuple[int, int]]] = [{} for _ in range(n_images)]
        self.left: list[dict[float, torch.Tensor]] = [{} for _ in range(n_images)]
        self.f: list[dict[float, float]] = [{} for _ in range(n_images)]  # f at the nodes (host)
        self.sums: list[dict[float, float]] = [{} for _ in range(n_images)]  # Σ_pixels of the integrand at the nodes
        self.sums_left: list[dict[float, float]] = [{} for _ in range(n_images)]  # … of its left limit at the breaks
        self.todo = [panel_weights(ends)[0] for _ in range(n_images)]  # nodes to evaluate next
        self.active = list(range(n_images))
        self.snapshots: list[dict[float, Snapshot]] = [{} for _ in range(n_images)]
        self.delta_f: np.ndarray | None = None  # (B,) Δf when the caller sets it (mixed precision), else from the nodes
        self._incoming: list[list] = [[] for _ in range(n_images)]
        self.rounds = 0

    # -------------------------------------------------------------------------------- evaluation
    def wanted(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, alphas) of the nodes to evaluate this round, image by image, α increasing."""
        if not self.active:
            return np.zeros(0, np.int64), np.zeros(0)
        return (np.concatenate([np.full(len(self.todo[i]), i, dtype=np.int64) for i in self.active]),
                np.concatenate([self.todo[i] for i in self.active]))

    def add(self, images: np.ndarray, alphas: np.ndarray, integrand: torch.Tensor, f: torch.Tensor,
            grad: torch.Tensor | None = None, left: dict[int, torch.Tensor] | None = None) -> None:
        """Take one pass's values at the pairs (images, alphas): rows of ``integrand``, ``f``, ``grad``, and ``left``
        {row: the integrand's left limit} at the rows that are breaks."""
        cuts = [0, *(1 + np.flatnonzero(images[1:] != images[:-1])), len(images)]
        for lo, hi in zip(cuts, cuts[1:]):
            # clone: an image's rows must not keep the whole pass's buffers alive
            g = grad[lo:hi].detach().clone() if self.keep_grad else None
            lim = {float(alphas[r]): v.detach().clone() for r, v in (left or {}).items() if lo <= r < hi}
            self._incoming[int(images[lo])].append((alphas[lo:hi].tolist(), integrand[lo:hi].detach().clone(), f[lo:hi].detach(), g, lim))

    def node(self, i: int, a: float, left: bool = False) -> torch.Tensor:
        """The integrand of image i at node α = a (``left``: its left limit there, where a is a break)."""
        if left and a in self.left[i]:
            return self.left[i][a]
        c, r = self.where[i][a]
        return self.chunks[i][c][1][r]

    def gradient(self, i: int, a: float) -> torch.Tensor:
        """The raw gradient ∇f of image i at node α = a (kept with ``keep_grad``)."""
        c, r = self.where[i][a]
        return self.chunks[i][c][2][r]

    def nodes(self, i: int) -> np.ndarray:
        """Image i's node positions, sorted."""
        return panel_weights(self.ends[i])[0]

    def used(self, i: int) -> int:
        """Gradient evaluations image i has used."""
        return len(self.where[i])

    def simpson(self, i: int) -> torch.Tensor:
        """Q = Σ_j S_j of image i: Simpson on its panels."""
        return self.weighted(i, SIMPSON)

    def weighted(self, i: int, coef: tuple[float, float, float]) -> torch.Tensor:
        """Σ_j h_j (c_a g_a + c_m g_m + c_b g_b) over image i's panels (:func:`panel_rule`), chunk by chunk (no copy of the nodes)."""
        nodes, w, wl = panel_rule(self.ends[i], coef, self.breaks)
        weight = dict(zip(nodes.tolist(), w.tolist()))
        q = None
        for alphas, integ, *_ in self.chunks[i]:
            wc = torch.tensor([weight.get(a, 0.0) for a in alphas], dtype=integ.dtype).to(integ.device, non_blocking=True)
            part = torch.tensordot(wc, integ, dims=1)
            q = part if q is None else q + part
        for a, v in wl.items():
            q = q + v * self.left[i][a]
        return q

    # ------------------------------------------------------------------------------------ a round
    def update(self, checks: V.DeviceChecks | None = None) -> None:
        """Estimates of the new panels, one host sync, stops and marks (see the class docstring); ``checks`` (the
        call's value checks) are settled at the first round, before anything is decided on the values."""
        self.rounds += 1
        parts, layout = [], []
        for i in self.active:
            alphas, fs, sums, keys = [], [], [], []
            for al, integ, f, g, lim in self._incoming[i]:
                c = len(self.chunks[i])
                self.chunks[i].append((al, integ, g))
                self.where[i].update((a, (c, r)) for r, a in enumerate(al))
                self.left[i].update(lim)
                alphas += al
                keys += [(a, False) for a in al] + [(a, True) for a in lim]
                fs.append(f.double())
                sums.append(integ.flatten(1).sum(1, dtype=torch.float64))
                sums += [v.sum(dtype=torch.float64).reshape(1) for v in lim.values()]
            self._incoming[i] = []
            new = np.flatnonzero(np.isnan(self.err[i]))
            q, e = self.simpson(i), self.weighted(i, RICHARDSON)
            parts += [*fs, *sums, self._panel_norms(i, new), q.flatten().norm(dtype=torch.float64).reshape(1),
                      q.flatten().sum(dtype=torch.float64).reshape(1), e.flatten().norm(dtype=torch.float64).reshape(1),
                      torch.isfinite(q).all().double().reshape(1)]
            layout.append((i, alphas, keys, new, q))
        if checks is not None and self.rounds == 1:
            checks.settle()  # bad images or targets are named before anything is decided on their values
        dev = parts[0].device if parts else None
        host = torch.cat([p.reshape(-1).to(dev) for p in parts]).cpu().numpy() if parts else np.zeros(0)  # the round's sync
        pos, still = 0, []
        for i, alphas, keys, new, q in layout:
            m, k = len(alphas), len(new)
            fv = host[pos : pos + m]
            sv = host[pos + m : pos + m + len(keys)]  # per chunk: its rows' pixel sums, then its left limits'
            pos += m + len(keys)
            enorm, (qn, qs, en, finite) = host[pos : pos + k], host[pos + k : pos + k + 4]
            pos += k + 4
            if finite != 1 or not np.isfinite(fv).all():
                raise FloatingPointError("gradient of the model output is not finite (NaN or Inf) at some path point, "
                                         "or the attribution sum overflowed")
            self.f[i].update(zip(alphas, fv.tolist()))
            for (a, lim), v in zip(keys, sv.tolist()):
                (self.sums_left if lim else self.sums)[i][a] = v
            self._estimate(i, new, enorm)
            if self._stop(i, q, float(qn), float(qs), float(en)):
                self.chunks[i], self.where[i], self.left[i] = [], {}, {}  # the image leaves the batch: its nodes are freed
            else:
                still.append(i)
        self.active = still

    def _panel_norms(self, i: int, panels: np.ndarray) -> torch.Tensor:
        """‖E_j‖₂ = ‖h/12 (2 g_m − g_a − g_b)‖₂ of image i's ``panels``, on the device."""
        ends, out = self.ends[i], []
        for lo in range(0, len(panels), PANEL_CHUNK):
            pan = panels[lo : lo + PANEL_CHUNK]
            a, b = ends[pan], ends[pan + 1]
            ga, gm = (torch.stack([self.node(i, v) for v in e.tolist()]) for e in (a, 0.5 * (a + b)))
            gb = torch.stack([self.node(i, v, left=True) for v in b.tolist()])
            h = torch.from_numpy((b - a) / 12).to(gm.device, non_blocking=True)
            out.append((2 * gm - ga - gb).flatten(1).norm(dim=1, dtype=torch.float64) * h)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def _estimate(self, i: int, panels: np.ndarray, enorm: np.ndarray) -> None:
        """Store the ‖E‖ and the residual r = Σ S − (f(b) − f(a)) of image i's new ``panels`` (host, float64)."""
        ends, f, s, sl = self.ends[i], self.f[i], self.sums[i], self.sums_left[i]
        a, b = ends[panels], ends[panels + 1]
        m = 0.5 * (a + b)
        get = lambda d, v: np.array([d[x] for x in v.tolist()], dtype=np.float64)  # noqa: E731
        sb = np.array([sl.get(x, s[x]) for x in b.tolist()], dtype=np.float64)
        self.err[i][panels] = enorm
        self.res[i][panels] = (b - a) / 6 * (get(s, a) + 4 * get(s, m) + sb) - (get(f, b) - get(f, a))

    def delta(self, i: int) -> float:
        """Δf = f(x) − f(x') of image i (from its nodes at α = 1 and 0 unless :attr:`delta_f` was set)."""
        return float(self.delta_f[i]) if self.delta_f is not None else self.f[i][1.0] - self.f[i][0.0]

    def errors(self, i: int, qn: float, qs: float, en: float) -> tuple[float, float]:
        """(ε̂, c): image i's estimated relative map error and completeness error, given ‖Q‖₂, Σ Q and ‖Σ_j E_j‖₂."""
        df = self.delta(i)
        e = 2 * max(en, float(np.sqrt(np.sum(self.err[i] ** 2))))
        eps = e / qn if qn > 0 else (0.0 if e == 0 else np.inf)
        comp = abs(qs - df) / abs(df) if df != 0 else (0.0 if qs == 0 else np.inf)
        return eps, comp

    def _stop(self, i: int, q: torch.Tensor, qn: float, qs: float, en: float) -> bool:
        """Keep a snapshot for every tolerance image i meets now; bisect its marked panels; whether it is done."""
        eps, comp = self.errors(i, qn, qs, en)
        met = [t for t in self.tols if t not in self.snapshots[i] and eps <= t and comp <= t]
        marked = np.zeros(0, dtype=np.int64)
        if len(self.snapshots[i]) + len(met) < len(self.tols):
            marked = self._mark(i, qn, self.delta(i), (self.n_max - self.used(i)) // 2)
        hit = len(self.snapshots[i]) + len(met) < len(self.tols) and len(marked) == 0
        if met or hit:
            attr = q if self.finish is None else self.finish(self, i)
            snap = Snapshot(attr, self.used(i), comp, eps, False, self.nodes(i))
            for t in met:
                self.snapshots[i][t] = snap
            for t in self.tols:  # n_max reached (or no panel left to bisect): the rest stop here
                if hit and t not in self.snapshots[i]:
                    self.snapshots[i][t] = snap._replace(hit_n_max=True)
        if len(self.snapshots[i]) == len(self.tols):
            return True
        self._bisect(i, marked)
        return False

    def _mark(self, i: int, qn: float, df: float, room: int) -> np.ndarray:
        """Dörfler's marking: the fewest panels with the largest η_j reaching THETA of Σ η, at most ``room``."""
        ends = self.ends[i]
        eta = (2 * self.err[i] / (qn if qn > 0 else 1.0)) ** 2 + (self.res[i] / (df if df != 0 else 1.0)) ** 2
        order = np.argsort(-eta, kind="stable")
        order = order[np.diff(ends)[order] > MIN_WIDTH]  # panels too narrow to bisect stay
        if room < 1 or len(order) == 0:
            return np.zeros(0, dtype=np.int64)
        k = int(np.searchsorted(np.cumsum(eta[order]), THETA * eta[order].sum()) + 1)
        return np.sort(order[: min(k, room)])

    def _bisect(self, i: int, marked: np.ndarray) -> None:
        """Split the marked panels at their midpoints; the new panels' midpoints are the next round's nodes."""
        ends = self.ends[i]
        new_ends = np.sort(np.concatenate([ends, 0.5 * (ends[marked] + ends[marked + 1])]))
        keep = np.setdiff1d(np.arange(len(ends) - 1), marked)
        err, res = np.full(len(new_ends) - 1, np.nan), np.full(len(new_ends) - 1, np.nan)
        pos = np.searchsorted(new_ends, ends[keep])
        err[pos], res[pos] = self.err[i][keep], self.res[i][keep]
        self.ends[i], self.err[i], self.res[i] = new_ends, err, res
        new = np.flatnonzero(np.isnan(err))
        self.todo[i] = 0.5 * (new_ends[new] + new_ends[new + 1])
