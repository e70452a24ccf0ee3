"""Attribution methods that are not path integrals: Gradient × input and SmoothGrad (the chapters' controls).

Both report f(x) and f(0) as ``f_input`` / ``f_baseline`` so they fit the metric tables beside the path methods;
their sums are not f(x) − f(0) (SmoothGrad) or only by luck (Gradient × input, a one-point rule of IG).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import integrate as I
from . import validate as V


@V.evaluates_model
def gradient_x_input(model: nn.Module, x: torch.Tensor, target=None, output: str = "prob", batch_size: int = 64) -> I.Attribution:
    """Gradient × input, ∇f(x) ⊙ x (a one-point rule of IG from a black baseline; f_baseline = f(0))."""
    x, target = I.prepare(model, x, target, batch_size)
    g = I.batched_gradients(model, x, target, output, batch_size)
    return I.Attribution(g * x, *_f_input_and_black(model, x, target, output), target, 1)


def _f_input_and_black(model: nn.Module, x: torch.Tensor, target: torch.Tensor, output: str) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x) and f(0): the completeness reference of the methods with a black baseline."""
    with torch.no_grad():
        return I.target_output(model, x, target, output), I.target_output(model, torch.zeros_like(x), target, output)


@V.evaluates_model
def smoothgrad(
    model: nn.Module, x: torch.Tensor, n: int = 16, noise: float = 0.15, target=None, output: str = "prob",
    batch_size: int = 64, seed: int = 0,
) -> I.Attribution:
    """SmoothGrad (Smilkov et al. 2017): the mean gradient at n noisy copies x + N(0, σ²), σ = ``noise`` ·
    (max − min of each image) as the paper's noise level; seeded by ``seed`` (the same noise for every
    call).  Not a path method: f_input / f_baseline are f(x) and f(0), and its sum is not f(x) − f(0)."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    x, target = I.prepare(model, x, target, batch_size)
    gen = torch.Generator().manual_seed(int(seed))
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, *([1] * (x.ndim - 1)))
    total = torch.zeros_like(x)
    for _ in range(int(n)):
        eps = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        pts = x + noise * span * eps
        total += I.batched_gradients(model, pts, target, output, batch_size)
    return I.Attribution(total / n, *_f_input_and_black(model, x, target, output), target, int(n))


