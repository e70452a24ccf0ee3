"""The path integral ∫₀¹ ∇f(γ(α)) ⊙ γ'(α) dα, evaluated in batches at any set of alphas.

``attribute`` is the one entry point: a rule name ('left', 'right', 'midpoint', 'trapezoid',
'gausslegendre') with ``n`` nodes, or an explicit sorted schedule ``alphas``: a partition
0 = α_0 < … < α_n = 1 (α_n = 1 implied) on which 'left' (the default: weights α_{i+1} − α_i), 'right',
'midpoint' or 'trapezoid' place their nodes (:func:`schedule_nodes`).  Images × alphas are flattened
into one forward/backward per chunk.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np
import torch
from torch import nn

from . import paths as P

RULES = ("left", "right", "midpoint", "trapezoid", "gausslegendre")
OUTPUTS = ("prob", "logit")


class Attribution(NamedTuple):
    """An attribution map with what completeness needs."""

    attr: torch.Tensor  # (B, C, H, W)
    f_input: torch.Tensor  # (B,) f(x)
    f_baseline: torch.Tensor  # (B,) f(γ(0))
    target: torch.Tensor  # (B,) class index
    n_gradients: int  # gradient evaluations per image


def rule_nodes(rule: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (float64) of a quadrature rule with ``n`` gradient evaluations on [0, 1]."""
    name = str(rule).lower()
    if name not in RULES:
        raise ValueError(f"unknown rule={rule!r}; accepted values: {', '.join(RULES)}")
    if int(n) != n or n < 1 or (name == "trapezoid" and n < 2):
        raise ValueError(f"n must be an integer >= {2 if name == 'trapezoid' else 1} for rule={name!r}, got {n!r}")
    n = int(n)
    if name == "left":
        a, w = np.arange(n) / n, np.full(n, 1 / n)
    elif name == "right":
        a, w = np.arange(1, n + 1) / n, np.full(n, 1 / n)
    elif name == "midpoint":
        a, w = (np.arange(n) + 0.5) / n, np.full(n, 1 / n)
    elif name == "trapezoid":
        a, w = np.linspace(0, 1, n), np.full(n, 1 / (n - 1))
        w[0] = w[-1] = 0.5 / (n - 1)
    else:
        t, w = np.polynomial.legendre.leggauss(n)
        a, w = (t + 1) / 2, w / 2
    return torch.from_numpy(a), torch.from_numpy(w)


def check_alphas(alphas) -> torch.Tensor:
    """Validate a left-rule schedule: 1-D, finite, α_0 = 0, strictly increasing, all < 1."""
    a = torch.as_tensor(alphas, dtype=torch.float64).detach().cpu()
    if a.ndim != 1 or a.numel() == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence, got shape {tuple(a.shape)}")
    if not torch.isfinite(a).all():
        raise ValueError("alphas must be finite")
    if a[0] != 0:
        raise ValueError(f"alphas[0] must be 0 so the left rule covers [0, 1], got {a[0].item():.6g}")
    if (a >= 1).any():
        raise ValueError("alphas must lie in [0, 1) for a left rule (α_n = 1 is implied)")
    steps = a[1:] - a[:-1]
    if (steps <= 0).any():
        i = int(torch.nonzero(steps <= 0)[0])
        raise ValueError(f"alphas must be sorted and distinct; alphas[{i}]={a[i].item():.6g} >= alphas[{i+1}]={a[i+1].item():.6g}")
    return a


def schedule_weights(alphas) -> torch.Tensor:
    """Left-rule weights α_{i+1} − α_i (α_n = 1) of a validated schedule."""
    a = check_alphas(alphas)
    return torch.diff(torch.cat([a, torch.ones(1, dtype=a.dtype)]))


# Rules that take a schedule: the partition 0 = α_0 < … < α_{n−1} < α_n = 1 given by ``alphas``.
SCHEDULE_RULES = ("left", "right", "midpoint", "trapezoid")


def schedule_nodes(rule: str, alphas) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (float64) of ``rule`` on the partition 0 = α_0 < … < α_n = 1 given by ``alphas``.

    ``alphas`` is validated as by :func:`check_alphas` (α_0 = 0, increasing, < 1; α_n = 1 implied);
    with Δα_i = α_{i+1} − α_i:

    * 'left':      nodes α_0 … α_{n−1},               weights Δα_i               (n evaluations);
    * 'right':     nodes α_1 … α_n,                   weights Δα_i               (n evaluations);
    * 'midpoint':  nodes (α_i + α_{i+1})/2,           weights Δα_i               (n evaluations);
    * 'trapezoid': nodes α_0 … α_n (1 included),      weights (Δα_{i−1} + Δα_i)/2 (n + 1 evaluations).

    Gauss–Legendre has its own nodes and takes no schedule.
    """
    name = str(rule).lower()
    if name not in SCHEDULE_RULES:
        raise ValueError(
            f"rule={rule!r} does not take a schedule (alphas); accepted values with alphas: {', '.join(SCHEDULE_RULES)}"
        )
    a = check_alphas(alphas)
    ends = torch.cat([a, torch.ones(1, dtype=a.dtype)])
    d = torch.diff(ends)
    if name == "left":
        return a, d
    if name == "right":
        return ends[1:], d
    if name == "midpoint":
        return 0.5 * (ends[:-1] + ends[1:]), d
    w = torch.zeros(len(ends), dtype=a.dtype)
    w[:-1] += 0.5 * d
    w[1:] += 0.5 * d
    return ends, w


def quadrature(rule: str, n: int, alphas=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of ``rule``: on a schedule's partition when ``alphas`` is given (``n`` unused),
    else the rule's own ``n`` nodes on [0, 1]."""
    # A schedule is a partition of [0, 1]; ``rule`` picks the nodes in it (left by default).
    return schedule_nodes(rule, alphas) if alphas is not None else rule_nodes(rule, n)


def target_output(model: nn.Module, x: torch.Tensor, target: torch.Tensor, output: str = "prob") -> torch.Tensor:
    """f(x) per image: softmax probability (or logit) of class ``target``."""
    logits = model(x)
    if output == "prob":
        logits = logits.softmax(-1)
    elif output != "logit":
        raise ValueError(f"unknown output={output!r}; accepted values: {', '.join(OUTPUTS)}")
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


def values_and_gradients(
    model: nn.Module, points: torch.Tensor, target: torch.Tensor, output: str = "prob"
) -> tuple[torch.Tensor, torch.Tensor]:
    """f (N,) and ∇f (N, C, H, W) at each point for its class ``target`` (N,) from one forward pass."""
    with torch.enable_grad():
        pts = points.detach().requires_grad_(True)
        f = target_output(model, pts, target, output)
        (g,) = torch.autograd.grad(f.sum(), pts)
    if not torch.isfinite(g).all():
        raise FloatingPointError("gradient of the model output is not finite (NaN or Inf) at some path point")
    return f.detach(), g


def gradients(model: nn.Module, points: torch.Tensor, target: torch.Tensor, output: str = "prob") -> torch.Tensor:
    """∇f at each point (N, C, H, W) for its class ``target`` (N,); raises on non-finite values."""
    return values_and_gradients(model, points, target, output)[1]


def batched_gradients(model: nn.Module, points: torch.Tensor, target: torch.Tensor, output: str = "prob", batch_size: int = 64) -> torch.Tensor:
    """:func:`gradients` of N points, ``batch_size`` points per forward/backward pass."""
    return torch.cat([gradients(model, p, t, output) for p, t in zip(points.split(batch_size), target.split(batch_size))])


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Predicted class per image."""
    with torch.no_grad():
        return torch.cat([model(c).argmax(-1) for c in x.split(batch_size)])


# Path kwargs with one entry per image, sliced with the images when a batch is split: a baseline of
# the images' shape (B, C, H, W) (one (C, H, W) baseline is shared) and the manifold path's knots (B, T, d).
PER_IMAGE_KWARGS = ("baseline", "knots")


def _per_image(name: str, value, x: torch.Tensor) -> bool:
    if value is None or name not in PER_IMAGE_KWARGS:
        return False
    shape = torch.as_tensor(value).shape
    if name == "baseline":
        return shape == x.shape
    return len(shape) >= 1 and shape[0] == x.shape[0]


def image_batches(x: torch.Tensor, batch_size: int, path_kwargs: dict) -> list[tuple[slice, dict]]:
    """(slice of the images, path kwargs for them) per batch of ``batch_size`` images; the per-image
    kwargs (PER_IMAGE_KWARGS: a per-image baseline, the manifold path's knots) are sliced too."""
    per_image = [k for k, v in path_kwargs.items() if _per_image(k, v, x)]
    out = []
    for i in range(0, x.shape[0], batch_size):
        sl = slice(i, i + batch_size)
        kw = dict(path_kwargs)
        for k in per_image:
            kw[k] = torch.as_tensor(path_kwargs[k])[sl]
        out.append((sl, kw))
    return out


def cat_attributions(parts: list[Attribution]) -> Attribution:
    """One Attribution from the Attributions of consecutive batches of images."""
    return Attribution(*(torch.cat([getattr(p, f) for p in parts]) for f in Attribution._fields[:4]), parts[0].n_gradients)


def _prepare(model: nn.Module, x: torch.Tensor, target, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if x.ndim != 4:
        raise ValueError(f"x must be a (B, C, H, W) batch of images, got shape {tuple(x.shape)}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    # Inputs follow the model's device and floating dtype (float32 for the shipped models).
    ref = next(iter([*model.parameters(), *model.buffers()]), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    x = x.to(device=device, dtype=dtype)
    if target is None:
        target = predict(model, x, batch_size)
    target = torch.as_tensor(target, device=device).long().reshape(-1)
    if target.numel() == 1 and x.shape[0] > 1:
        target = target.expand(x.shape[0])
    if target.shape[0] != x.shape[0]:
        raise ValueError(f"target has {target.shape[0]} entries for {x.shape[0]} images")
    return x, target


def integrand_chunks(
    model: nn.Module,
    x: torch.Tensor,
    alphas: torch.Tensor,
    target: torch.Tensor,
    path: str = "ig",
    output: str = "prob",
    batch_size: int = 64,
    **path_kwargs,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(slice of alphas, g)`` with g = ∇f(γ(α)) ⊙ γ'(α) of shape (a, B, C, H, W)."""
    fn = P.path_function(path, **path_kwargs)
    b = x.shape[0]
    per = max(1, batch_size // b)
    a_dev = alphas.to(device=x.device, dtype=x.dtype)
    for s in range(0, len(alphas), per):
        sl = slice(s, min(s + per, len(alphas)))
        pts, vel = fn(x, a_dev[sl])
        a = pts.shape[0]
        g = gradients(model, pts.reshape(a * b, *x.shape[1:]), target.repeat(a), output)
        yield sl, g.view(a, b, *x.shape[1:]) * vel


def attribute(
    model: nn.Module,
    x: torch.Tensor,
    path: str = "ig",
    rule: str = "left",
    n: int = 16,
    alphas=None,
    target=None,
    output: str = "prob",
    batch_size: int = 64,
    **path_kwargs,
) -> Attribution:
    """Path attribution of ``x`` (B, C, H, W in [0, 1]) with a rule of ``n`` nodes or a schedule ``alphas``.

    With ``alphas`` the rule ('left' by default, 'right', 'midpoint', 'trapezoid') is applied on the
    partition the schedule defines (:func:`schedule_nodes`; 'trapezoid' costs n + 1 evaluations) and
    ``n`` is ignored.  Adaptive paths (Guided IG, SAMP) take only the left rule."""
    path = P.check_path_name(path)
    if output not in OUTPUTS:
        raise ValueError(f"unknown output={output!r}; accepted values: {', '.join(OUTPUTS)}")
    x, target = _prepare(model, x, target, batch_size)
    if x.shape[0] > batch_size:
        # More images than one batch holds: attribute them a batch at a time.
        return cat_attributions([
            attribute(model, x[sl], path, rule, n, alphas, target[sl], output, batch_size, **kw)
            for sl, kw in image_batches(x, batch_size, path_kwargs)
        ])
    if path in P.ADAPTIVE_PATHS and str(rule).lower() != "left":
        raise ValueError(
            f"path={path!r} is adaptive and takes only rule='left' (with n or a schedule alphas), got rule={rule!r}"
        )
    nodes, weights = quadrature(rule, n, alphas)
    n_grad = len(nodes)
    if path in P.ADAPTIVE_PATHS:
        entry = P.adaptive_path(path, path_kwargs)
        grads, deltas = entry.fn(lambda pts: gradients(model, pts, target, output), x, nodes, **path_kwargs)
        attr = (grads * deltas).sum(0)
        n_grad = grads.shape[0]
        start = P.check_baseline(x, path_kwargs.get("baseline"))
    else:
        w = weights.to(device=x.device, dtype=x.dtype)
        attr = torch.zeros_like(x)
        for sl, g in integrand_chunks(model, x, nodes, target, path, output, batch_size, **path_kwargs):
            attr += torch.tensordot(w[sl], g, dims=1)
        start = P.path_function(path, **path_kwargs)(x, torch.zeros(1, dtype=torch.float64))[0][0]
    with torch.no_grad():
        f_in = target_output(model, x, target, output)
        f_base = target_output(model, start, target, output)
    return Attribution(attr, f_in, f_base, target, n_grad)
