"""Attribution paths γ: [0, 1] → input space, each giving the points γ(α) and the velocity γ'(α).

Every path here runs from the baseline (α = 0) to the input (α = 1), so that a path integral of
∇f(γ(α)) ⊙ γ'(α) sums to f(x) − f(γ(0)) (completeness).  Straight-line IG and BlurIG are defined in
closed form at any α; Guided IG and SAMP are adaptive (each step depends on the gradient at the current
point), so they are produced by :func:`guided_ig` and :func:`samp`, which return the exact per-segment
differences instead (:data:`ADAPTIVE_PATHS` lists them with their keyword arguments).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from .blur import gaussian_blur
from . import validate as V

# Each registered path's short name in the book's tables, figures and claims (riemannkit.evaluation.LABELS adds
# '+IDGI'), in registration order: filled by register_path (bottom of this module; riemannkit.manifold adds "manifold").
PATH_LABELS: dict[str, str] = {}
# The registered path names, read live from the registry (order: IG, BlurIG, GIG, SAMP, MIG, then any registered later).
PATH_NAMES = V.LiveNames(lambda: tuple(PATH_LABELS))

# PAIR-code/saliency defaults (core/blur_ig.py and core/guided_ig.py).
BLUR_MAX_SIGMA = 50.0
GUIDED_FRACTION = 0.25
GUIDED_MAX_DIST = 0.02


def check_path_name(path: str) -> str:
    """Return ``path`` lower-cased, or raise naming the accepted path names."""
    name = str(path).lower()
    if name not in PATH_NAMES:
        raise ValueError(f"unknown path={path!r}; accepted values: {', '.join(PATH_NAMES)}")
    return name


def _check_alphas_tensor(alphas: torch.Tensor) -> None:
    if alphas.ndim != 1:
        raise ValueError(f"alphas must be 1-D, got shape {tuple(alphas.shape)}")
    if not torch.isfinite(alphas).all() or (alphas < 0).any() or (alphas > 1).any():
        raise ValueError("alphas must lie in [0, 1]")


def _baseline_not_finite() -> None:
    raise ValueError("baseline holds NaN or Inf values; a baseline must be a finite image")


def check_baseline(x: torch.Tensor, baseline: torch.Tensor | None, checks: V.DeviceChecks | None = None) -> torch.Tensor:
    """Return a baseline broadcast to ``x`` (black = zeros by default), or raise on a shape mismatch.

    With ``checks`` the finiteness check is added there (settled at the end of the call, no host sync now)."""
    if baseline is None:
        return torch.zeros_like(x)
    baseline = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    if checks is not None:
        checks.add(torch.isfinite(baseline).all(), _baseline_not_finite)
    elif not bool(torch.isfinite(baseline).all()):
        _baseline_not_finite()
    if baseline.shape != x.shape:
        if baseline.shape == x.shape[1:]:
            return baseline.expand_as(x)
        raise ValueError(
            f"baseline shape {tuple(baseline.shape)} does not match image shape {tuple(x.shape)} "
            f"(or one image {tuple(x.shape[1:])})"
        )
    return baseline


Along = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # alphas (A,) -> points, velocity (A, B, C, H, W)


def bind_straight_line(x: torch.Tensor, checks: V.DeviceChecks | None = None, baseline: torch.Tensor | None = None) -> Along:
    """The IG path of ``x`` with its baseline checked once: alphas -> (points, velocity), no host sync per call."""
    baseline = check_baseline(x, baseline, checks)
    diff = x - baseline

    def along(alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = alphas.to(x).view(-1, *([1] * x.ndim))
        points = baseline.unsqueeze(0) + a * diff.unsqueeze(0)
        return points, diff.unsqueeze(0).expand_as(points)

    return along


def straight_line(
    x: torch.Tensor, alphas: torch.Tensor, baseline: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """IG path γ(α) = x' + α (x − x'); returns points and velocity, each (A, B, C, H, W)."""
    _check_alphas_tensor(alphas)
    return bind_straight_line(x, None, baseline)(alphas)


def bind_blur(x: torch.Tensor, checks: V.DeviceChecks | None = None, max_sigma: float = BLUR_MAX_SIGMA) -> Along:
    """The BlurIG path of ``x`` with ``max_sigma`` checked once: alphas -> (points, velocity)."""
    if not (max_sigma > 0 and math.isfinite(max_sigma)):
        raise ValueError(f"max_sigma must be a positive finite number, got {max_sigma!r}")

    def along(alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = (1 - alphas.to(x)) * max_sigma
        # One kernel support for the whole path (that of max_sigma): γ(α) must not depend on which other
        # alphas are evaluated in the same chunk (batch_size), nor jump where the support would change.
        points, dpoints_dsigma = gaussian_blur(x, sigmas, support_sigma=max_sigma)
        return points, -max_sigma * dpoints_dsigma

    return along


def blur(
    x: torch.Tensor, alphas: torch.Tensor, max_sigma: float = BLUR_MAX_SIGMA
) -> tuple[torch.Tensor, torch.Tensor]:
    """BlurIG path γ(α) = G_{σ(α)} * x with σ(α) = (1 − α)·max_sigma; returns points and velocity.

    The velocity is the exact derivative of the discrete (truncated, normalised) blur, where the PAIR
    reference uses a forward difference with grad_step = 0.01.
    """
    _check_alphas_tensor(alphas)
    return bind_blur(x, None, max_sigma)(alphas)


class ClosedFormPath(NamedTuple):
    """A path defined at any α: ``fn(x, alphas, **kwargs) -> (points, velocity)``, the keyword arguments it takes,
    and optionally ``bind(x, checks, **kwargs) -> along``: the same path with its arguments checked once
    (value checks added to ``checks``), ``along(alphas)`` making no host sync, as the engine calls it per pass;
    and ``breaks(**kwargs) -> alphas``: the α where the path bends (its velocity jumps), which a refinement to a
    tolerance keeps as partition points so that no panel straddles a kink (the manifold path's knots)."""

    fn: Callable
    kwargs: tuple[str, ...]
    bind: Callable | None = None
    breaks: Callable | None = None


# The one registry of paths, filled by register_path: the closed-form paths here and in riemannkit.manifold
# (which registers 'manifold' when imported; the package's __init__ imports it), the adaptive ones below.
CLOSED_FORM_PATHS: dict[str, ClosedFormPath] = {}


def register_path(
    name: str, fn: Callable, kwargs: tuple[str, ...], step_df: Callable | None = None, bind: Callable | None = None,
    ends: Callable | None = None, breaks: Callable | None = None, label: str | None = None,
) -> None:
    """Register path ``name``: closed-form when ``step_df`` is None (``bind`` and ``breaks`` optional, see
    :class:`ClosedFormPath`), else adaptive (``ends`` optional, see :class:`AdaptivePath`); ``label``: its short
    name in tables and figures (:data:`PATH_LABELS`; default the name)."""
    key = str(name).lower()
    if key in PATH_LABELS:
        raise ValueError(f"path={name!r} is registered already")
    if step_df is None:
        CLOSED_FORM_PATHS[key] = ClosedFormPath(fn, tuple(kwargs), bind, breaks)
    else:
        ADAPTIVE_PATHS[key] = AdaptivePath(fn, tuple(kwargs), step_df, ends)
    PATH_LABELS[key] = key if label is None else str(label)


def unregister_path(name: str) -> None:
    """Remove a registered path (tests that register a toy path clean up with this)."""
    key = str(name).lower()
    for registry in (CLOSED_FORM_PATHS, ADAPTIVE_PATHS, PATH_LABELS):
        registry.pop(key, None)


class ResolvedPath(NamedTuple):
    """A path looked up once: its checked name, registry entry and keyword arguments (checked against the entry)."""

    name: str
    entry: "ClosedFormPath | AdaptivePath"
    kwargs: dict

    @property
    def adaptive(self) -> bool:
        """Whether the path is adaptive (Guided IG, SAMP): it exists only at its own steps."""
        return isinstance(self.entry, AdaptivePath)

    def breaks(self) -> list[float]:
        """The α in (0, 1) where the path bends (its registry entry's ``breaks``; none for most paths)."""
        if self.adaptive or self.entry.breaks is None:
            return []
        return sorted(float(a) for a in self.entry.breaks(**self.kwargs) if 0 < float(a) < 1)

    def along(self, x: torch.Tensor, kwargs: dict | None = None, checks: V.DeviceChecks | None = None) -> Along:
        """alphas -> (points, velocity) of a closed-form path for the images ``x`` (``kwargs``: this batch's
        slice of the per-image keyword arguments; default: all of them)."""
        if self.adaptive:
            raise ValueError(f"path={self.name!r} is adaptive: it has no closed form, use riemannkit.paths.{self.entry.fn.__name__}")
        kw = self.kwargs if kwargs is None else kwargs
        if self.entry.bind is not None:
            return self.entry.bind(x, checks, **kw)
        return lambda alphas: self.entry.fn(x, alphas, **kw)


def resolve_path(path: str, kwargs: dict | None = None) -> ResolvedPath:
    """``path`` looked up once in the registry, with ``kwargs`` checked against the keywords it takes."""
    name = check_path_name(path)
    kwargs = dict(kwargs or {})
    entry = CLOSED_FORM_PATHS.get(name) or ADAPTIVE_PATHS.get(name)
    if entry is None:
        raise ValueError(f"path={name!r} is not registered; import the module that defines it (riemannkit.manifold for 'manifold')")
    extra = set(kwargs) - set(entry.kwargs)
    if extra:
        raise ValueError(f"path={name!r} does not take {sorted(extra)}; accepted: {sorted(entry.kwargs)}")
    return ResolvedPath(name, entry, kwargs)


def path_function(path: str, **kwargs) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Return ``(x, alphas) -> (points, velocity)`` for a closed-form path ('ig', 'blurig', or 'manifold':
    a decoded latent curve, riemannkit.manifold.manifold_path, with kwargs decoder, knots, baseline, residual)."""
    name = check_path_name(path)
    if name in ADAPTIVE_PATHS:
        raise ValueError(
            f"path={name!r} is adaptive: it has no closed form, use riemannkit.paths.{ADAPTIVE_PATHS[name].fn.__name__}"
        )
    entry = resolve_path(name, kwargs).entry
    return lambda x, alphas: entry.fn(x, alphas, **kwargs)


def guided_ig(
    grad_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    alphas: torch.Tensor,
    baseline: torch.Tensor | None = None,
    fraction: float = GUIDED_FRACTION,
    max_dist: float = GUIDED_MAX_DIST,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided IG path (Kapishnikov et al. 2021, PAIR reference) at the left-rule schedule ``alphas``.

    Step i moves from the point at ``alphas[i]`` to the point at ``alphas[i+1]`` (``alphas[n]`` = 1):
    the features with the smallest |gradient| move towards the input until the L1 distance to the input
    is (1 − α_{i+1})·L1(x, x'), no feature leaving the band [α_{i+1} − max_dist, α_{i+1} + max_dist].
    Returns ``(grads, deltas)``, each (n, B, C, H, W): the gradient at each step's start point and that
    step's exact displacement, so the attribution is Σ_i grads[i] ⊙ deltas[i] (a left rule).
    Computed in float64 like the reference; batched over images, sequential over steps.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if not max_dist > 0:
        raise ValueError(f"max_dist must be > 0, got {max_dist!r}")
    _check_alphas_tensor(alphas)
    baseline = check_baseline(x, baseline)
    xin = x.double()
    xb = baseline.double()
    b = x.shape[0]
    dims = tuple(range(1, x.ndim))
    diff = xin - xb
    l1_total = diff.abs().sum(dims)
    ends = torch.cat([alphas.double().cpu(), torch.ones(1, dtype=torch.float64)]).tolist()
    cur = xb.clone()
    # Filled step by step in x's dtype (the rounding a float64 stack cast at the end would give): the n steps of a
    # large batch of images take a quarter of the memory of float64 lists and their stack.
    grads = torch.empty((len(ends) - 1, *x.shape), dtype=x.dtype, device=x.device)
    deltas = torch.empty_like(grads)
    eps = 1e-9

    def to_alpha(pt: torch.Tensor) -> torch.Tensor:
        a = (pt - xb) / diff
        return torch.where(diff == 0, torch.ones_like(a), a)

    for i in range(len(ends) - 1):
        start = cur.clone()
        grad_actual = grad_fn(cur.to(x.dtype)).double()
        alpha = ends[i + 1]
        a_min, a_max = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
        x_min, x_max = xb + a_min * diff, xb + a_max * diff
        l1_target = l1_total * (1 - alpha)
        active = l1_total > 0
        for _ in range(10_000):
            if not bool(active.any()):
                break
            act = active.view(-1, *([1] * (x.ndim - 1)))
            # Features lagging behind the band jump to its lower edge.
            lag = (to_alpha(cur) < a_min) & act
            cur = torch.where(lag, x_min, cur)
            l1_cur = (cur - xin).abs().sum(dims)
            # math.isclose(l1_target, l1_cur, rel_tol=1e-9, abs_tol=1e-9), as the reference.
            tol = torch.clamp(eps * torch.maximum(l1_cur, l1_target), min=eps)
            done = (l1_cur - l1_target).abs() <= tol
            active = active & ~done
            if not bool(active.any()):
                break
            act = active.view(-1, *([1] * (x.ndim - 1)))
            grad = grad_actual.abs()
            grad = torch.where(cur == x_max, torch.full_like(grad, math.inf), grad)
            # np.quantile(|grad|, fraction, 'lower') over all features, the +inf ones included.
            srt = torch.sort(grad.reshape(b, -1), dim=1).values
            k = int(math.floor((srt.shape[1] - 1) * fraction))
            thr = srt[:, k].view(-1, *([1] * (x.ndim - 1)))
            sel = (grad <= thr) & torch.isfinite(grad) & act
            l1_s = ((cur - x_max).abs() * sel).sum(dims)
            gamma = torch.where(l1_s > 0, (l1_cur - l1_target) / l1_s.clamp_min(1e-300), torch.full_like(l1_s, math.inf))
            g = gamma.view(-1, *([1] * (x.ndim - 1)))
            full = sel & (g > 1)
            part = sel & (g <= 1)
            cur = torch.where(full, x_max, cur)
            cur = torch.where(part, (1 - g) * cur + g * x_max, cur)
            active = active & (gamma > 1)
        else:
            raise RuntimeError("guided_ig did not converge in 10000 inner iterations")
        if i == len(ends) - 2:
            cur = xin.clone()  # the last step lands on the input exactly, as in the reference
        grads[i] = grad_actual
        deltas[i] = cur - start
    return grads, deltas


# --------------------------------------------------------------------------------------------- SAMP
SAMP_DIRECTIONS = ("both", "insertion", "deletion")
# The reference's ImageNet setting: step = 224·16 pixels of 224² move together, i.e. 1/14 of the pixels.
SAMP_FRACTION = 16 / 224


def _samp_step(cur: torch.Tensor, end: torch.Tensor, score: torch.Tensor, budget: torch.Tensor, top: int) -> torch.Tensor:
    """One SAMP step of L1 length ``budget`` (B,) from ``cur`` towards ``end``, pixels (all channels) ranked by
    ``score`` (B, H·W): the ``top`` best-ranked pixels move the same fraction min(1, budget / their L1 to go)
    of their way; if that does not spend the budget, the next-ranked pixels move fully, in order, until it
    is spent (the last one part of the way)."""
    b = cur.shape[0]
    diff = end - cur
    rem = diff.abs().sum(1).reshape(b, -1)  # L1 still to go, per pixel
    score = score.masked_fill(rem == 0, -math.inf)  # finished pixels last
    order = torch.sort(score, dim=1, descending=True, stable=True).indices  # ties by pixel index
    rem_s = rem.gather(1, order)
    before = rem_s.cumsum(1) - rem_s
    frac_s = ((budget.unsqueeze(1) - before) / rem_s.clamp_min(1e-300)).clamp(0, 1)  # greedy fill
    head = before[:, top - 1 : top] + rem_s[:, top - 1 : top]  # L1 to go of the top pixels
    share = (budget.unsqueeze(1) / head.clamp_min(1e-300)).clamp(max=1)
    rank = torch.arange(rem_s.shape[1], device=rem_s.device).unsqueeze(0)
    frac_s = torch.where(rank < top, share.expand_as(frac_s), frac_s)
    frac_s = torch.where(rem_s > 0, frac_s, torch.zeros_like(frac_s))
    frac = torch.zeros_like(frac_s).scatter(1, order, frac_s).view(b, 1, *cur.shape[2:])
    return torch.where(frac == 1, end, cur + frac * diff)


def _samp_chain(grad_fn, start, end, budgets, pick_max: bool, momentum: float, top: int, dtype):
    """One greedy SAMP path from ``start`` to ``end``: per step the gradient at the current point and the move."""
    cur = start.clone()
    ranking = None
    grads, moves = [], []
    for i, budget in enumerate(budgets):
        g = grad_fn(cur.to(dtype)).double()
        ranking = g if ranking is None or momentum == 0 else (1 - momentum) * g + momentum * ranking
        proj = (ranking * (end - cur)).sum(1).flatten(1)  # first-order change of f if a pixel moves fully
        nxt = end.clone() if i == len(budgets) - 1 else _samp_step(cur, end, proj if pick_max else -proj, budget, top)
        grads.append(g)
        moves.append(nxt - cur)
        cur = nxt
    return grads, moves


def samp(
    grad_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    alphas: torch.Tensor,
    baseline: torch.Tensor | None = None,
    direction: str = "both",
    momentum: float = 0.0,
    fraction: float = SAMP_FRACTION,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAMP, the Salient Manipulation Path (Zhang et al., ICLR 2024), at the left-rule schedule ``alphas``.

    α is the fraction of the L1 distance ||x − x'||₁ travelled: the point at α is α·||x − x'||₁ away from
    the baseline x' (in L1), and step i, from α_i to α_{i+1} (α_n = 1), moves exactly (α_{i+1} − α_i)·||x − x'||₁
    (the paper's infinitesimal constraint; n equal steps are its n_frag fragments).  Each step ranks the
    pixels by the first-order change of f if the pixel (all channels) moved fully to its end value,
    Σ_c g_c (end_c − cur_c), and moves the ⌈``fraction``·H·W⌉ best-ranked pixels (the reference's
    ``step`` pixels; default 1/14, its ImageNet setting) the same share of their remaining way, so that
    the step's L1 length is its budget; if moving them fully is not enough, the next-ranked pixels move
    fully in rank order until it is (the last one part of the way).  Moving whole pixels in one jump
    (``fraction`` → 0) would keep Σ|Δx|² from shrinking with n, and the Riemann sum would not converge:
    spreading a step over many pixels makes the steps small as n grows.

    ``direction``: 'insertion' runs from x' to x and moves the pixels that raise f most; 'deletion' runs
    from x to x' and moves the pixels that lower f most (gradient at each step's start, in its own
    travel direction: a right rule once written from x' to x); 'both' (the SAMP map) averages the two.
    ``momentum`` μ ∈ [0, 1): the ranking uses m_i = (1 − μ) g_i + μ m_{i−1} (the reference's ``momen``
    weights the new gradient, μ = 1 − momen; its 0.5 is μ = 0.5); the attribution always uses the true
    gradient g_i (the reference multiplies the moves by m_i).

    Returns ``(grads, deltas)`` like :func:`guided_ig`, steps in α order, deltas oriented from x' to x,
    so Σ deltas = x − x' and the attribution Σ_i grads[i] ⊙ deltas[i] is a Riemann sum of the path
    integral (f(x) − f(x') in the limit of small steps; on a CNN the greedy choice makes the sum
    overshoot by orders of magnitude at practical n, see the SAMP chapter).  'both' returns the n insertion steps, then the n deletion
    steps, each delta halved (2n gradient evaluations).  Float64 inside; batched over images.
    """
    direction = str(direction).lower()
    if direction not in SAMP_DIRECTIONS:
        raise ValueError(f"unknown direction={direction!r}; accepted values: {', '.join(SAMP_DIRECTIONS)}")
    if isinstance(momentum, bool) or not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        raise ValueError(f"momentum must be a number in [0, 1) (0 = no momentum), got {momentum!r}")
    if isinstance(fraction, bool) or not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction must be a number in (0, 1] (the share of pixels moved together per step), got {fraction!r}")
    _check_alphas_tensor(alphas)
    if x.ndim != 4:
        raise ValueError(f"x must be a (B, C, H, W) batch of images, got shape {tuple(x.shape)}")
    ends = torch.cat([alphas.double().cpu(), torch.ones(1, dtype=torch.float64)])
    if alphas.numel() == 0 or ends[0] != 0 or (torch.diff(ends) <= 0).any():
        raise ValueError("alphas must start at 0 and increase strictly, all < 1 (a left-rule schedule)")
    baseline = check_baseline(x, baseline)
    xin, xb = x.double(), baseline.double()
    l1_total = (xin - xb).abs().flatten(1).sum(1)
    widths = torch.diff(ends).to(xin.device)
    top = max(1, math.ceil(fraction * x.shape[2] * x.shape[3] - 1e-9))
    budgets = [w * l1_total for w in widths]  # per step, (B,)
    grads, deltas = [], []
    if direction in ("both", "insertion"):
        g, m = _samp_chain(grad_fn, xb, xin, budgets, True, float(momentum), top, x.dtype)
        grads += g
        deltas += m
    if direction in ("both", "deletion"):
        # Travel x → x' through the α intervals from the last to the first, then list the steps in α order.
        g, m = _samp_chain(grad_fn, xin, xb, budgets[::-1], False, float(momentum), top, x.dtype)
        grads += g[::-1]
        deltas += [-d for d in m[::-1]]
    grads_t, deltas_t = torch.stack(grads), torch.stack(deltas)
    if direction == "both":
        deltas_t = deltas_t / 2
    return grads_t.to(x.dtype), deltas_t.to(x.dtype)


def _samp_step_df(values: torch.Tensor, f_input: torch.Tensor, f_baseline: torch.Tensor, direction: str = "both", **_) -> torch.Tensor:
    """Δf per returned SAMP step (x' → x orientation) from f at the points of the gradient calls, in call order."""
    direction = str(direction).lower()
    out = []
    n = values.shape[0] // (2 if direction == "both" else 1)
    if direction in ("both", "insertion"):
        out.append(torch.diff(torch.cat([values[:n], f_input.unsqueeze(0)]), dim=0))
    if direction in ("both", "deletion"):
        v = values[-n:].flip(0)  # f at α_1 … α_n = 1 in α order
        out.append(torch.diff(torch.cat([f_baseline.unsqueeze(0), v]), dim=0))
    df = torch.cat(out)
    return df / 2 if direction == "both" else df


def _samp_ends(n_steps: int, direction: str = "both", **_) -> tuple[int | None, int | None]:
    """The gradient calls at x and at x' exactly: insertion starts at x', deletion at x (calls in call order)."""
    direction = str(direction).lower()
    if direction == "insertion":
        return None, 0
    if direction == "deletion":
        return 0, None
    return n_steps, 0


def _guided_step_df(values: torch.Tensor, f_input: torch.Tensor, f_baseline: torch.Tensor, **_) -> torch.Tensor:
    return torch.diff(torch.cat([values, f_input.unsqueeze(0)]), dim=0)


def _guided_ends(n_steps: int, **_) -> tuple[None, int]:
    """Guided IG's first gradient call is at the baseline x' exactly; x is never a call's point."""
    return None, 0


class AdaptivePath(NamedTuple):
    """An adaptive path: ``fn(grad_fn, x, alphas, **kwargs) -> (grads, deltas)``, its keyword arguments,
    ``step_df(values, f_input, f_baseline, **kwargs)``: Δf per returned step from f at the points
    where ``fn`` called ``grad_fn`` (in call order), as IDGI needs; and optionally
    ``ends(n_steps, **kwargs) -> (index of the call at x or None, index of the call at x' or None)``: the
    gradient calls whose points are the ends exactly (the engine then evaluates only the other ends)."""

    fn: Callable
    kwargs: tuple[str, ...]
    step_df: Callable
    ends: Callable | None = None


ADAPTIVE_PATHS: dict[str, AdaptivePath] = {}

register_path("ig", straight_line, ("baseline",), bind=bind_straight_line, label="IG")
register_path("blurig", blur, ("max_sigma",), bind=bind_blur, label="BlurIG")
register_path("guidedig", guided_ig, ("baseline", "fraction", "max_dist"), step_df=_guided_step_df, ends=_guided_ends, label="GIG")
register_path("samp", samp, ("baseline", "direction", "momentum", "fraction"), step_df=_samp_step_df, ends=_samp_ends, label="SAMP")


def adaptive_path(path: str, kwargs: dict) -> AdaptivePath:
    """The :data:`ADAPTIVE_PATHS` entry of ``path``, or ValueError for a closed-form path or a keyword it does not take."""
    name = check_path_name(path)
    if name not in ADAPTIVE_PATHS:
        raise ValueError(f"path={name!r} is not adaptive; adaptive paths: {', '.join(ADAPTIVE_PATHS)}")
    entry = ADAPTIVE_PATHS[name]
    extra = set(kwargs) - set(entry.kwargs)
    if extra:
        raise ValueError(f"path={name!r} does not take {sorted(extra)}; accepted: {sorted(entry.kwargs)}")
    return entry


def segment_integrands(grads: torch.Tensor, deltas: torch.Tensor, n: int) -> torch.Tensor:
    """grads ⊙ deltas summed per α interval (n, B, ...): an adaptive path's steps are one or more runs of
    n steps in α order (SAMP 'both': insertion then deletion, deltas already halved)."""
    prod = grads * deltas
    return prod.view(prod.shape[0] // n, n, *prod.shape[1:]).sum(0)
