"""Attribution paths γ: [0, 1] → input space, each giving the points γ(α) and the velocity γ'(α).

Every path here runs from the baseline (α = 0) to the input (α = 1), so that a path integral of
∇f(γ(α)) ⊙ γ'(α) sums to f(x) − f(γ(0)) (completeness).  Straight-line IG and BlurIG are defined in
closed form at any α; Guided IG is adaptive (each step depends on the gradient at the current point),
so it is produced by :func:`guided_ig`, which returns the exact per-segment differences instead.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

PATH_NAMES = ("ig", "blurig", "guidedig")

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


def check_baseline(x: torch.Tensor, baseline: torch.Tensor | None) -> torch.Tensor:
    """Return a baseline broadcast to ``x`` (black = zeros by default), or raise on a shape mismatch."""
    if baseline is None:
        return torch.zeros_like(x)
    baseline = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    if baseline.shape != x.shape:
        if baseline.shape == x.shape[1:]:
            return baseline.expand_as(x)
        raise ValueError(
            f"baseline shape {tuple(baseline.shape)} does not match image shape {tuple(x.shape)} "
            f"(or one image {tuple(x.shape[1:])})"
        )
    return baseline


def straight_line(
    x: torch.Tensor, alphas: torch.Tensor, baseline: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """IG path γ(α) = x' + α (x − x'); returns points and velocity, each (A, B, C, H, W)."""
    _check_alphas_tensor(alphas)
    baseline = check_baseline(x, baseline)
    diff = x - baseline
    a = alphas.to(x).view(-1, *([1] * x.ndim))
    points = baseline.unsqueeze(0) + a * diff.unsqueeze(0)
    velocity = diff.unsqueeze(0).expand_as(points)
    return points, velocity


def _gauss_kernels(sigmas: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised 1-D Gaussian kernels (S, 2r+1) and their exact derivatives with respect to σ."""
    t = torch.arange(-radius, radius + 1, dtype=sigmas.dtype, device=sigmas.device)
    s = sigmas.clamp_min(1e-12).unsqueeze(1)
    g = torch.exp(-0.5 * (t / s) ** 2)
    dg = g * t**2 / s**3
    z, dz = g.sum(1, keepdim=True), dg.sum(1, keepdim=True)
    k = g / z
    dk = (dg - k * dz) / z
    # σ = 0 is the identity: a unit impulse whose σ-derivative is 0 (the heat equation's σ∇²u → 0).
    delta = (t == 0).to(k).expand_as(k)
    zero = (sigmas == 0).unsqueeze(1)
    return torch.where(zero, delta, k), torch.where(zero, torch.zeros_like(dk), dk)


def _separable(img: torch.Tensor, kh: torch.Tensor, kw: torch.Tensor) -> torch.Tensor:
    """Convolve (A, N, H, W) images with per-A kernels kh, kw (A, K), zero padding ('constant')."""
    a, n, h, w = img.shape
    kk = kh.shape[1]
    r = kk // 2
    flat = img.reshape(1, a * n, h, w)
    wh = kh.repeat_interleave(n, 0).view(a * n, 1, kk, 1)
    ww = kw.repeat_interleave(n, 0).view(a * n, 1, 1, kk)
    out = F.conv2d(F.pad(flat, (0, 0, r, r)), wh, groups=a * n)
    out = F.conv2d(F.pad(out, (r, r, 0, 0)), ww, groups=a * n)
    return out.view(a, n, h, w)


def gaussian_blur(
    x: torch.Tensor, sigmas: torch.Tensor, truncate: float = 4.0, support_sigma: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur (B, C, H, W) at each σ (zero padding as scipy's mode='constant'); returns (A, B, C, H, W)
    blurred images and their exact derivative with respect to σ.

    Every kernel spans truncate·``support_sigma`` pixels each side (default: the largest σ given), so a
    path passes a fixed ``support_sigma`` to make each point independent of the other σ in the call."""
    b, c, h, w = x.shape
    sigmas = sigmas.to(x)
    top = float(sigmas.max()) if support_sigma is None else float(support_sigma)
    full = max(1, int(math.ceil(truncate * top)))
    # A kernel wider than the image adds only zero-padding products: cap it without changing the result
    # (normalise over the full truncated kernel first, then crop, so the weights stay those of scipy).
    radius = min(full, max(h, w) - 1)
    k, dk = _gauss_kernels(sigmas, full)
    k, dk = k[:, full - radius : full + radius + 1], dk[:, full - radius : full + radius + 1]
    img = x.reshape(1, b * c, h, w).expand(len(sigmas), -1, -1, -1)
    blurred = _separable(img, k, k)
    dblurred = _separable(img, dk, k) + _separable(img, k, dk)
    shape = (len(sigmas), b, c, h, w)
    return blurred.reshape(shape), dblurred.reshape(shape)


def blur(
    x: torch.Tensor, alphas: torch.Tensor, max_sigma: float = BLUR_MAX_SIGMA
) -> tuple[torch.Tensor, torch.Tensor]:
    """BlurIG path γ(α) = G_{σ(α)} * x with σ(α) = (1 − α)·max_sigma; returns points and velocity.

    The velocity is the exact derivative of the discrete (truncated, normalised) blur, where the PAIR
    reference uses a forward difference with grad_step = 0.01.
    """
    _check_alphas_tensor(alphas)
    if not (max_sigma > 0 and math.isfinite(max_sigma)):
        raise ValueError(f"max_sigma must be a positive finite number, got {max_sigma!r}")
    sigmas = (1 - alphas.to(x)) * max_sigma
    # One kernel support for the whole path (that of max_sigma): γ(α) must not depend on which other
    # alphas are evaluated in the same chunk (batch_size), nor jump where the support would change.
    points, dpoints_dsigma = gaussian_blur(x, sigmas, support_sigma=max_sigma)
    return points, -max_sigma * dpoints_dsigma


def path_function(path: str, **kwargs) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Return ``(x, alphas) -> (points, velocity)`` for a closed-form path ('ig' or 'blurig')."""
    name = check_path_name(path)
    if name == "ig":
        allowed = {"baseline"}
        fn = straight_line
    elif name == "blurig":
        allowed = {"max_sigma"}
        fn = blur
    else:
        raise ValueError("path='guidedig' is adaptive: it has no closed form, use riemannkit.paths.guided_ig")
    extra = set(kwargs) - allowed
    if extra:
        raise ValueError(f"path={name!r} does not take {sorted(extra)}; accepted: {sorted(allowed)}")
    return lambda x, alphas: fn(x, alphas, **kwargs)


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
    grads, deltas = [], []
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
        grads.append(grad_actual)
        deltas.append(cur - start)
    return torch.stack(grads).to(x.dtype), torch.stack(deltas).to(x.dtype)
