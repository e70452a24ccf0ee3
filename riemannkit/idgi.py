"""IDGI: Important Direction Gradient Integration (Yang et al., CVPR 2023), on any riemannkit path.

A path attribution sums g_j ⊙ (x_{j+1} − x_j) over the steps of a discretised path x_0 = γ(α_0), …,
x_n = γ(1).  The first-order Taylor series of one step,

    f(x_{j+1}) − f(x_j) ≈ g_j · (x_{j+1} − x_j),        g_j = ∇f(x_j)  (the left gradient),

shows that only the component of the step along g_j changes f; the orthogonal components add noise to
the map without changing f (the reproducibility study's derivation).  IDGI keeps only that important
direction: the step along the gradient that moves f by exactly Δf_j = f(x_{j+1}) − f(x_j) is

    Δx_j = g_j Δf_j / ||g_j||²,    and its attribution    g_j ⊙ Δx_j = g_j ⊙ g_j Δf_j / ||g_j||²

sums over the features to Δf_j exactly.  So Σ attr telescopes to f(x_n) − f(x_0) = f(x) − f(x'): the
completeness error of IDGI is ≈ 0 (float error) by construction, whatever n or the schedule, and
completeness cannot judge IDGI; judge it with insertion / PIC / stability (riemannkit.metrics).

As the reference (yangruo1226/IDGI) it uses the left gradients g_0 … g_{n−1} (the gradient at x_n
would be unused) and f at all n + 1 points.  The reference divides by ||g_j||² with no epsilon, so a
zero-gradient step gives 0/0 = NaN; here such a step contributes 0 and its Δf_j is lost (reported by
a warning when it is non-zero, so the telescoping sum misses exactly that Δf_j).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

import torch
from torch import nn

from . import integrate as I
from . import paths as P
from . import validate as V

GUIDED_KWARGS = P.ADAPTIVE_PATHS["guidedig"].kwargs


def idgi_combine(grads: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IDGI sum Σ_j g_j ⊙ g_j (f_{j+1} − f_j) / ||g_j||² from left gradients (n, B, …) and values (n+1, B).

    Returns ``(attr, lost)`` in float64: the (B, …) attribution and, per image, the summed Δf_j of the
    zero-gradient steps, which contribute 0 (the reference would give NaN) so Σ attr = Δf − lost.
    """
    if grads.ndim < 2 or values.ndim != 2:
        raise ValueError(f"grads must be (n, B, ...) and values (n+1, B); got {tuple(grads.shape)} and {tuple(values.shape)}")
    n, b = grads.shape[:2]
    if tuple(values.shape) != (n + 1, b):
        raise ValueError(f"values must have shape (n+1, B) = {(n + 1, b)} for grads {tuple(grads.shape)}, got {tuple(values.shape)}")
    return idgi_steps(grads, torch.diff(values.to(device=grads.device, dtype=torch.float64), dim=0))


def idgi_steps(grads: torch.Tensor, df: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IDGI sum Σ_j g_j ⊙ g_j Δf_j / ||g_j||² from gradients (n, B, …) and the steps' Δf_j (n, B); see :func:`idgi_combine`."""
    if tuple(df.shape) != tuple(grads.shape[:2]):
        raise ValueError(f"df must have shape (n, B) = {tuple(grads.shape[:2])}, got {tuple(df.shape)}")
    g = grads.double()
    df = df.to(device=g.device, dtype=torch.float64)
    sq = g * g
    norm2 = sq.flatten(2).sum(2)
    zero = norm2 == 0
    # Float64 keeps ||g||² from underflowing for tiny float32 gradients; a zero gradient has sq = 0,
    # so dividing it by 1 instead of 0 makes its weight exactly 0.
    scale = df / torch.where(zero, torch.ones_like(norm2), norm2)
    attr = torch.einsum("nb...,nb->b...", sq, scale)
    lost = (df * zero).sum(0)
    return attr, lost


def _warn_lost(lost: torch.Tensor) -> None:
    if bool((lost != 0).any()):  # the warning's path: the call's checks found a lost Δf
        idx = torch.nonzero(lost != 0).flatten().tolist()
        warnings.warn(
            f"IDGI: zero-gradient steps with non-zero Δf in image(s) {idx}; they contribute 0, so Σ attr "
            f"misses Δf = {lost[idx].tolist()} of f(x) − f(x')",
            RuntimeWarning,
            stacklevel=6,
        )


@V.evaluates_model
def path_and_idgi(
    model: nn.Module,
    x: torch.Tensor,
    path: str = "ig",
    n: int = 16,
    alphas=None,
    target=None,
    output: str = "prob",
    batch_size: int | str = 64,
    amp_dtype=None,
    channels_last: bool = False,
    compile: bool | str = False,
    engine: I.Engine | None = None,
    **path_kwargs,
) -> tuple[I.Attribution, I.Attribution]:
    """(plain left-rule, IDGI) attributions of one path from the same n gradient evaluations per image.

    Equal to ``riemannkit.attribute(..., rule='left')`` and ``riemannkit.idgi.idgi_attribute`` with the
    same ``n`` or schedule ``alphas``, at half their joint cost.
    """
    nodes = I.check_alphas(alphas) if alphas is not None else I.rule_nodes("left", n)[0]
    return path_and_idgi_schedules(
        model, x, path, [nodes], target, output, batch_size, amp_dtype, channels_last, compile, engine, **path_kwargs
    )[0]


@V.evaluates_model
def path_and_idgi_schedules(
    model: nn.Module,
    x: torch.Tensor,
    path: str,
    schedules: Sequence,
    target=None,
    output: str = "prob",
    batch_size: int | str = 64,
    amp_dtype=None,
    channels_last: bool = False,
    compile: bool | str = False,
    engine: I.Engine | None = None,
    **path_kwargs,
) -> list[tuple[I.Attribution, I.Attribution]]:
    """(plain, IDGI) attributions for each left-rule schedule (α_0 = 0, increasing, < 1; α_n = 1 implied).

    On a closed-form path ('ig', 'blurig') the gradient at a point shared by several schedules is
    computed once: the linear schedules i/8, i/16, i/32 … are nested, so a sweep over n costs only its
    largest n, and every n still integrates over the whole of [0, 1] with its own points.  The adaptive
    paths (Guided IG, SAMP: the path depends on the schedule) compute each schedule on its own.  Path points
    (images × alphas) are evaluated ``batch_size`` at a time, whole rows of alphas per pass (a pass holds
    max(1, batch_size // B) alphas); the engine knobs are those of :func:`riemannkit.attribute`.
    """
    if isinstance(schedules, (str, torch.Tensor, np.ndarray)) or len(schedules) == 0:
        raise ValueError("schedules must be a non-empty list of schedules (each a sorted 1-D sequence of alphas)")
    knobs = I.engine_options(engine, batch_size, amp_dtype, channels_last, compile)
    plan = I.make_plan(model, path, output=output, engine=knobs, **path_kwargs)
    nodes = [I.check_alphas(a) for a in schedules]
    checks = V.DeviceChecks()
    x, plan = plan.prepare(x, target, checks, total_per_image=max(len(a) for a in nodes) + 1)
    parts = [_path_and_idgi(p, x[sl], nodes, checks) for sl, p in plan.batches(x)]
    checks.settle()
    return [tuple(I.cat_attributions([part[k][j] for part in parts]) for j in (0, 1)) for k in range(len(nodes))]


def _path_and_idgi(plan: I.Plan, x: torch.Tensor, nodes: list[torch.Tensor], checks: V.DeviceChecks) -> list[tuple[I.Attribution, I.Attribution]]:
    """:func:`path_and_idgi_schedules` on images that fit in a pass, with a prepared plan."""
    b = x.shape[0]
    results = []
    if plan.path.adaptive:
        for sched in nodes:
            run = I.adaptive_run(plan, x, sched, checks)
            df = plan.path.entry.step_df(run.values, run.f_input, run.f_baseline, **plan.path.kwargs)
            idgi, lost = idgi_steps(run.grads, df)
            plain = (run.grads * run.deltas).sum(0)
            checks.add(torch.isfinite(plain).all(), I._not_finite)
            results.append((plain, idgi, lost, run.f_input, run.f_baseline, run.grads.shape[0]))
    else:
        union = torch.unique(torch.cat(nodes))  # sorted
        n_union = len(union)
        # positions[k][j]: index of union[j] in schedule k, or -1 where schedule k has no such point (numpy: the
        # selections below are host arithmetic, never a tensor-to-bool sync).
        positions = []
        for sched in nodes:
            s_np, u_np = sched.numpy(), union.numpy()
            i = np.minimum(np.searchsorted(s_np, u_np), len(s_np) - 1)
            positions.append(np.where(s_np[i] == u_np, i, -1))
        weights = [I.schedule_weights(sched).to(dtype=x.dtype).to(device=x.device, non_blocking=True) for sched in nodes]
        plain = [torch.zeros_like(x) for _ in nodes]
        idgi = [torch.zeros(x.shape, dtype=torch.float64, device=x.device) for _ in nodes]
        lost = [torch.zeros(b, dtype=torch.float64, device=x.device) for _ in nodes]
        pending: list = [None] * len(nodes)
        f_baseline = f_input = None
        # f(x) rides as one extra row of the passes (every schedule starts at α = 0, which gives f(x')); under
        # mixed precision it takes one float32 forward instead.
        full = plan.amp is None
        ends = x.unsqueeze(0) if full else None
        for p in I.passes(plan, x, union, ends=ends, whole_rows=True, checks=checks):
            s, a_all = p.rows.start, p.rows.stop - p.rows.start
            a = max(0, min(p.rows.stop, n_union) - s)  # rows of nodes; a row past them is f(x)
            if a < a_all:
                f_input = p.f.view(a_all, b)[a]
            if a == 0:
                continue
            f, g, integrand = p.f.view(a_all, b)[:a], p.g.view(a_all, *x.shape)[:a], p.integrand.view(a, *x.shape)
            if f_baseline is None:
                f_baseline = f[0]  # every schedule starts at α = 0
            for k, pos in enumerate(positions):
                sel = pos[s : s + a] >= 0
                if not sel.any():
                    continue
                idx = torch.from_numpy(pos[s : s + a][sel]).to(x.device, non_blocking=True)
                if sel.all():
                    fk, gk, ik = f, g, integrand
                else:
                    rows = torch.from_numpy(np.flatnonzero(sel)).to(x.device, non_blocking=True)
                    fk, gk, ik = f[rows], g[rows], integrand[rows]
                plain[k] += torch.tensordot(weights[k][idx], ik, dims=1)
                # A chunk's last IDGI step needs f at the schedule's next point: combine one chunk behind.
                if pending[k] is not None:
                    d, l = idgi_combine(pending[k][1], torch.cat([pending[k][0], fk[:1]]))
                    idgi[k], lost[k] = idgi[k] + d, lost[k] + l
                pending[k] = (fk, gk)
        if not full:
            f_input = plan.full_precision_f(x, plan.target)
        # Every gradient enters some schedule's plain sum with a positive weight, and a NaN or Inf there
        # stays non-finite: one check after the loop, settled with the call's other checks.
        checks.add(torch.stack([torch.isfinite(p_).all() for p_ in plain]).all(), I._not_finite)
        for k in range(len(nodes)):
            d, l = idgi_combine(pending[k][1], torch.cat([pending[k][0], f_input.unsqueeze(0)]))
            results.append((plain[k], idgi[k] + d, lost[k] + l, f_input, f_baseline, len(nodes[k])))
    out = []
    for pl, idg, ls, fi, fb, n_grad in results:
        checks.warn_unless((ls == 0).all(), lambda ls=ls: _warn_lost(ls))
        out.append((
            I.Attribution(pl.to(x.dtype), fi, fb, plan.target, n_grad),
            I.Attribution(idg.to(x.dtype), fi, fb, plan.target, n_grad),
        ))
    return out


def idgi_on_nodes(state, i: int) -> torch.Tensor:
    """IDGI of image i of a refinement to a tolerance (:class:`riemannkit.tolerance.Refinement` with ``keep_grad``) on
    its nodes: a left-rule schedule (every node but α = 1) with the gradients and f kept at the nodes."""
    nodes = state.nodes(i)
    f = torch.tensor([state.f[i][a] for a in nodes.tolist()], dtype=torch.float64)
    attr = lost = None
    for lo in range(0, len(nodes) - 1, 64):  # chunks: no copy of every node's gradient at once
        hi = min(lo + 64, len(nodes) - 1)
        g = torch.stack([state.gradient(i, a) for a in nodes[lo:hi].tolist()]).unsqueeze(1)
        d, l = idgi_steps(g, torch.diff(f[lo : hi + 1]).unsqueeze(1))
        attr, lost = (d, l) if attr is None else (attr + d, lost + l)
    if bool(lost != 0):
        _warn_lost(lost)
    return attr[0].to(state.chunks[i][0][1].dtype)


@V.evaluates_model
def idgi_attribute(
    model: nn.Module,
    x: torch.Tensor,
    path: str = "ig",
    n: int | None = None,
    alphas=None,
    target=None,
    output: str = "prob",
    batch_size: int | str = 64,
    amp_dtype=None,
    channels_last: bool = False,
    compile: bool | str = False,
    engine: I.Engine | None = None,
    tol: float | list[float] | None = None,
    n_max: int | None = None,
    **path_kwargs,
) -> I.Attribution:
    """IDGI attribution of ``x`` (B, C, H, W in [0, 1]) along path 'ig', 'blurig', 'guidedig' or 'samp'.

    The path is sampled at the left-rule nodes of ``n`` steps (α_i = i/n) or at a schedule ``alphas``
    (α_0 = 0, increasing, < 1), plus α_n = 1 (the input).  With g_j = ∇f(x_j) the left gradient,

        attr = Σ_j g_j ⊙ g_j · (f(x_{j+1}) − f(x_j)) / ||g_j||².

    Origin (first-order Taylor): f(x_{j+1}) − f(x_j) ≈ g_j·(x_{j+1} − x_j), and only the component of
    the step along g_j changes f.  IDGI keeps that component only: the step along the gradient moving
    f by Δf_j is Δx = g_j Δf_j / ||g_j||², whose attribution g_j ⊙ Δx sums to Δf_j exactly, so Σ attr
    telescopes to f(x) − f(x') and the completeness error is ≈ 0 by construction (it cannot judge IDGI).
    A zero-gradient step contributes 0 and its Δf_j is lost (a warning says so when Δf_j ≠ 0).

    f and ∇f come from the same forward pass at each point; n gradient evaluations per image (default 16), and
    f(x) from one extra row per image in the same passes.  ``path_kwargs``: ``baseline`` (ig, guidedig),
    ``max_sigma`` (blurig), ``fraction`` and ``max_dist`` (guidedig), ``direction`` and ``momentum`` (samp).
    f_baseline is f at the baseline (the path's first point).

    **To a tolerance** (``tol``, ``n_max``: closed-form paths): IDGI's sum is complete by construction, so it
    cannot tell when its nodes suffice; the nodes are placed as ``riemannkit.attribute(..., tol=...)`` places them
    for the path's own integral (adaptive Simpson, starting from rule 'simpson' with ``n`` (odd, default 17) or
    a schedule ``alphas``), and IDGI is applied on the final nodes as a left-rule schedule (every node but α = 1).
    The :class:`~riemannkit.integrate.ToleranceAttribution` returned holds the IDGI map; its ``completeness``
    and ``map_error`` are those of the path integral that drove the refinement (the same nodes).
    """
    if tol is not None:
        knobs = I.engine_options(engine, batch_size, amp_dtype, channels_last, compile)
        return I._attribute_to_tol(model, x, path, None, n, alphas, target, output, knobs, tol, n_max, path_kwargs,
                                   keep_grad=True, finish=idgi_on_nodes)
    if n_max is not None:
        raise ValueError(f"n_max={n_max!r} limits a refinement to a tolerance: pass it with tol= (e.g. tol=0.05), or leave it None")
    return path_and_idgi(model, x, path, 16 if n is None else n, alphas, target, output, batch_size, amp_dtype, channels_last,
                         compile, engine, **path_kwargs)[1]
