"""Gaussian blur of image batches with its exact derivative with respect to σ (ground floor: imports only torch).

Used by BlurIG's path (riemannkit.paths) and the blur training augmentation (riemannkit.models).  Zero
padding as scipy.ndimage.gaussian_filter(mode='constant'); kernels truncated at ``truncate``·σ and normalised.
"""
from __future__ import annotations

import math

import torch


def gauss_kernels(sigmas: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
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


def band(k: torch.Tensor, n: int) -> torch.Tensor:
    """(S, n, n) matrices M_s with M_s[i, j] = k_s[j − i + r] where |j − i| ≤ r, else 0: multiplying by M_s
    convolves a length-n signal with the symmetric kernel k_s (S, 2r+1) under zero padding ('constant')."""
    r = k.shape[1] // 2
    i = torch.arange(n, device=k.device)
    d = i.view(1, -1) - i.view(-1, 1) + r
    inside = (d >= 0) & (d <= 2 * r)
    return k[:, d.clamp(0, 2 * r)] * inside


def separable(img: torch.Tensor, kh: torch.Tensor, kw: torch.Tensor) -> torch.Tensor:
    """Convolve (A, N, H, W) images with per-A kernels kh, kw (A, K) under zero padding ('constant').

    As banded matrices, M_h · X · M_wᵀ: two dense matrix products, far faster than a depthwise
    convolution with hundreds of taps (BlurIG's σ = 50 px kernels)."""
    h, w = img.shape[-2:]
    cols = torch.matmul(img, band(kw, w).transpose(1, 2).unsqueeze(1))  # blurred along W
    return torch.matmul(band(kh, h).unsqueeze(1), cols)


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
    k, dk = gauss_kernels(sigmas, full)
    k, dk = k[:, full - radius : full + radius + 1], dk[:, full - radius : full + radius + 1]
    img = x.reshape(b * c, h, w)
    # One product along W per kernel, shared by the blur and its σ-derivative (d/dσ (K X Kᵀ) = K' X Kᵀ + K X K'ᵀ).
    mh_k, mh_dk = band(k, h).unsqueeze(1), band(dk, h).unsqueeze(1)
    x_k = torch.matmul(img.unsqueeze(0), band(k, w).transpose(1, 2).unsqueeze(1))
    x_dk = torch.matmul(img.unsqueeze(0), band(dk, w).transpose(1, 2).unsqueeze(1))
    blurred = torch.matmul(mh_k, x_k)
    dblurred = torch.matmul(mh_dk, x_k) + torch.matmul(mh_k, x_dk)
    shape = (len(sigmas), b, c, h, w)
    return blurred.reshape(shape), dblurred.reshape(shape)
