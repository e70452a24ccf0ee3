"""Adaptive paths frozen as polylines: build Guided IG's path once, then integrate along it with any rule or schedule.

Guided IG's path depends on the gradients taken along it, so a schedule's points change the path they are meant
to sample.  The remedy: build the path once on a fine grid of K steps, freeze it as a polyline through image-space
knots, then integrate along the frozen path like any closed-form path.  It sits above integrate, like manifold
(a polyline is the manifold path with the identity as decoder).
"""
from __future__ import annotations

import torch
from torch import nn

from . import integrate as I
from . import manifold  # noqa: F401  (registers the 'manifold' path that polyline_attribute integrates along)
from . import paths as P


def guided_polyline(
    model: nn.Module, x: torch.Tensor, K: int = 128, target=None, output: str = "prob", batch_size: int = 64, **gig_kwargs
) -> torch.Tensor:
    """Guided IG's path on K linear steps as knots (K+1, B, C, H, W) from the baseline to ``x`` (K gradients)."""
    if int(K) != K or K < 1:
        raise ValueError(f"K must be a positive integer, got {K!r}")
    x, target = I.prepare(model, x, target, batch_size)
    grads, deltas = P.guided_ig(
        lambda pts: I.batched_gradients(model, pts, target, output, batch_size),
        x, I.rule_nodes("left", int(K))[0], **gig_kwargs,
    )
    start = P.check_baseline(x, gig_kwargs.get("baseline")).unsqueeze(0)
    return torch.cat([start, start + torch.cumsum(deltas, 0)])


def polyline_attribute(
    model: nn.Module, x: torch.Tensor, knots: torch.Tensor, rule: str = "left", n: int = 16, alphas=None,
    target=None, output: str = "prob", batch_size: int = 64,
) -> I.Attribution:
    """∫ ∇f(γ) ⊙ γ' along the polyline through ``knots`` (K+1, B, …) at α = j/K, by a rule (on a schedule's partition
    when ``alphas`` is given, as :func:`riemannkit.attribute`)."""
    x, target = I.prepare(model, x, target, batch_size)
    knots = knots.to(x)
    if knots.ndim != x.ndim + 1 or knots.shape[1:] != x.shape or knots.shape[0] < 2:
        raise ValueError(f"knots must be (K+1, *x.shape) with K >= 1, got {tuple(knots.shape)} for x {tuple(x.shape)}")
    # A polyline through image-space knots is the manifold path with the identity as decoder and no
    # endpoint residual: its points and velocity, chunking and rules are riemannkit.attribute's.
    flat = knots.movedim(0, 1).reshape(x.shape[0], knots.shape[0], -1)
    return I.attribute(
        model, x, "manifold", rule, n, alphas, target, output, batch_size,
        decoder=lambda z: z.view(-1, *x.shape[1:]), knots=flat, residual=False,
    )


