"""How well an attribution computes its integral, and how good the map is (insertion / deletion, PIC, stability).

Completeness says whether a path integral is computed accurately; it cannot judge IDGI, which is complete
by construction.  The evaluation metrics here (insertion / deletion curves, SIC / AIC performance
information curves with a WebP or MS-SSIM information axis, JPEG stability) judge the map itself.
"""
from __future__ import annotations

import io
import math
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from . import compression as C
from . import integrate as I
from . import paths as P
from . import validate as V


def completeness_error(attr: torch.Tensor, f_input: torch.Tensor, f_baseline: torch.Tensor) -> torch.Tensor:
    """Per-image relative error |Σ attr − (f(x) − f(x'))| / |f(x) − f(x')|; a NaN or infinite Σ attr, f(x) or f(x')
    is an error naming the images (a NaN error would silently leave every mean and comparison NaN)."""
    delta = (f_input - f_baseline).double()
    total = attr.double().flatten(1).sum(1)
    bad = ~(torch.isfinite(total) & torch.isfinite(delta))
    if bad.any():
        idx = torch.nonzero(bad.reshape(-1)).flatten().tolist()
        raise ValueError(f"the completeness error is undefined for image(s) {idx[:10]}: Σ attr, f(x) or f(x') is NaN "
                         f"or infinite there (check the model's output and the attribution for those images)")
    if (delta == 0).any():
        raise ValueError("f(x) − f(x') is 0 for some image: the relative completeness error is undefined")
    return (total - delta).abs() / delta.abs()


def completeness_error_pooled(attr: torch.Tensor, f_input: torch.Tensor, f_baseline: torch.Tensor) -> float:
    """Ratio of sums Σ_b |Σ attr_b − Δf_b| / Σ_b |Δf_b| (RiemannOpt's pipeline, with a signed Δf)."""
    delta = (f_input - f_baseline).double()
    if (delta == 0).all():
        raise ValueError("f(x) − f(x') is 0 for every image: the pooled relative completeness error is undefined")
    total = attr.double().flatten(1).sum(1)
    return float((total - delta).abs().sum() / delta.abs().sum())


# ---------------------------------------------------------------------------------------------------
# Evaluation metrics that do not rely on completeness (which IDGI satisfies by construction):
# insertion / deletion curves, PIC (SIC, AIC) with a WebP or MS-SSIM information axis, JPEG stability.
# ---------------------------------------------------------------------------------------------------
REDUCES = ("sum", "abs_sum")
CURVE_KINDS = ("insertion", "deletion")
CURVE_OUTPUTS = ("prob", "ratio")
BLUR_MODES = ("normalized", "constant")
# Insertion's start image: 'blur' (blur_image(x, 20), the default: the IDGI study's and PAIR's reference) or
# 'black' (the IDGI study's and RiemannOpt's released scripts); deletion always ends at black by default.
INSERTION_STARTS = ("black", "blur")
PIC_STARTS = ("blur", "random_mask")
PIC_BOKEH = ("paste", "interpolate")
PIC_INFORMATION = ("webp", "msssim")
PIC_AGGREGATIONS = ("median", "mean")
# The IDGI reproducibility study blurs the start image with PIL GaussianBlur(radius=20).
BLUR_SIGMA = 20.0
# PAIR-code/saliency saliency/metrics/pic.py (and the XRAI / Guided IG papers).
PIC_THRESHOLDS = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.10, 0.13, 0.21, 0.34, 0.5, 0.75)
# Wang, Simoncelli & Bovik 2003 (and pytorch_msssim): per-scale exponents, finest scale first.
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# MS-SSIM holds ~15 full-size intermediates per image: PIC's images per call on a CPU (cache-sized) and on an accelerator.
MSSSIM_CHUNK, MSSSIM_CHUNK_DEVICE = 16, 512


def _check_choice(name: str, value, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise ValueError(f"unknown {name}={value!r}; accepted values: {', '.join(accepted)}")
    return value


def _check_images(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Raise unless ``x`` is a finite float (B, C, H, W) batch in [0, 1] (8-bit encoders would clip silently)."""
    return V.check_images(x, name)


def reduce_saliency(saliency: torch.Tensor, x: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """(B, H, W) ranking map from a (B, C, H, W) or (B, H, W) saliency: signed ('sum') or |·| ('abs_sum') channel sum."""
    _check_choice("reduce", reduce, REDUCES)
    s = torch.as_tensor(saliency)
    b, c, h, w = x.shape
    if s.ndim == 4:
        if s.shape[0] != b or tuple(s.shape[2:]) != (h, w) or s.shape[1] not in (c, 1):
            raise ValueError(
                f"saliency shape {tuple(s.shape)} does not match images {tuple(x.shape)} "
                f"(expected (B, C or 1, H, W) or (B, H, W))"
            )
    elif s.ndim == 3:
        if tuple(s.shape) != (b, h, w):
            raise ValueError(f"saliency shape {tuple(s.shape)} does not match images {tuple(x.shape)} (expected (B, H, W) = {(b, h, w)})")
        s = s.unsqueeze(1)
    else:
        raise ValueError(f"saliency must be (B, C, H, W) or (B, H, W), got shape {tuple(s.shape)}")
    if not torch.isfinite(s).all():
        raise ValueError("saliency holds NaN or Inf values")
    s = s.to(device=x.device, dtype=torch.float64)
    return (s.abs() if reduce == "abs_sum" else s).sum(1)


def blur_image(x: torch.Tensor, sigma: float = BLUR_SIGMA, mode: str = "normalized") -> torch.Tensor:
    """Gaussian blur (std ``sigma`` pixels) of (B, C, H, W) images; 'normalized' reweights the image border."""
    _check_choice("mode", mode, BLUR_MODES)
    try:
        ok = math.isfinite(float(sigma)) and float(sigma) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if x.ndim != 4:
        raise ValueError(f"x must be a (B, C, H, W) batch of images, got shape {tuple(x.shape)}")
    s = torch.tensor([float(sigma)], dtype=torch.float64)
    with torch.no_grad():
        out = P.gaussian_blur(x, s)[0][0]
        if mode == "normalized":
            # Zero padding ('constant', as scipy and the BlurIG path) darkens a border band of width
            # ~2σ; dividing by the blurred all-ones image averages over the pixels inside the image
            # only, close to PIL's GaussianBlur, which extends the edge pixels.
            out = out / P.gaussian_blur(torch.ones_like(x[:1, :1]), s)[0][0]
    return out


def _target_probs(model: nn.Module, imgs: torch.Tensor, target: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probability of ``target`` and top-1 class for (N, C, H, W) images, in chunks, no grad."""
    probs, top = [], []
    with torch.no_grad():
        for c, t in zip(imgs.split(batch_size), target.split(batch_size)):
            p = model(c).softmax(-1)
            probs.append(p.gather(1, t.view(-1, 1)).squeeze(1))
            top.append(p.argmax(-1))
    return torch.cat(probs), torch.cat(top)


@V.evaluates_model
def insertion_deletion(
    model: nn.Module,
    x: torch.Tensor,
    saliency: torch.Tensor,
    start: torch.Tensor | str | None = None,
    target=None,
    kind: str = "insertion",
    steps: int = 20,
    output: str = "prob",
    batch_size: int = 64,
    reduce: str = "sum",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Insertion or deletion curve (B, steps+1) of the target's softmax probability and its AUC (B,).

    Pixels are ranked by the channel-reduced saliency (``reduce``: 'sum' = signed sum over channels,
    as the IDGI study; 'abs_sum' = Σ_c |s|, as RiemannOpt), ties by pixel index.  At fraction k/steps
    the top ⌊k·H·W/steps⌋ pixels (all channels) are taken from ``x`` into ``start`` (insertion: from
    ``start`` to ``x``; default ``start`` = 'blur', blur_image(x, 20)), or replaced by ``start`` in ``x``
    (deletion: from ``x`` to ``start``; default 'black').  ``start`` is an image batch or a name of
    :data:`INSERTION_STARTS`.  ``output='ratio'`` divides by p(x) (the
    IDGI paper's variant: the insertion curve ends at 1, the deletion curve starts at 1).  AUC by the
    trapezoid rule over the revealed fraction on [0, 1].
    """
    _check_choice("kind", kind, CURVE_KINDS)
    _check_choice("output", output, CURVE_OUTPUTS)
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    steps = int(steps)
    x, target = I.prepare(model, x, target, batch_size)
    b, c, h, w = x.shape
    sal = reduce_saliency(saliency, x, reduce).flatten(1)
    if start is None:
        start = "blur" if kind == "insertion" else "black"
    if isinstance(start, str):
        _check_choice("start", start, INSERTION_STARTS)
        start = blur_image(x, BLUR_SIGMA) if start == "blur" else torch.zeros_like(x)
    start = P.check_baseline(x, start)
    order = torch.argsort(sal, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=x.device).expand(b, -1))
    counts = torch.arange(steps + 1, device=x.device) * (h * w) // steps
    per = max(1, batch_size // b)
    curve = []
    with torch.no_grad():
        for s in range(0, steps + 1, per):
            k = counts[s : s + per]
            mask = (rank.unsqueeze(0) < k.view(-1, 1, 1)).view(len(k), b, 1, h, w)
            imgs = torch.where(mask, x, start) if kind == "insertion" else torch.where(mask, start, x)
            p, _ = _target_probs(model, imgs.reshape(-1, c, h, w), target.repeat(len(k)), batch_size)
            curve.append(p.view(len(k), b))
    curve = torch.cat(curve).T.double()
    if output == "ratio":
        full = curve[:, -1] if kind == "insertion" else curve[:, 0]
        if (full == 0).any():
            raise ValueError("p(target | x) is 0 for some image: the probability ratio is undefined")
        curve = curve / full.unsqueeze(1)
    fractions = counts.double() / (h * w)
    return curve, torch.trapezoid(curve, fractions, dim=1)


# --------------------------------------------------------------------------------------- (MS-)SSIM
def _gauss_window(win_size: int, sigma: float, dtype) -> list[float]:
    """The normalised 1-D Gaussian window, computed on the CPU in ``dtype`` (the same weights for every device)."""
    t = torch.arange(win_size, dtype=dtype) - win_size // 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return (g / g.sum()).tolist()


def _filter_valid(z: torch.Tensor, win: list[float]) -> torch.Tensor:
    """Separable filter of (..., H, W) maps by the 1-D window ``win`` along H, then W, 'valid' region only.

    Shifted weighted sums instead of a 1-channel convolution: elementwise arithmetic, so every image gets the same
    float rounding whatever the batch and the device (a cuDNN convolution may run in TF32 and picks its algorithm per
    shape), and on a CPU about 8x faster than conv2d (which it matched to the last bit on the CPUs measured)."""
    n = len(win)
    h, w = z.shape[-2:]
    a = z[..., : h - n + 1, :] * win[0]
    for k in range(1, n):
        a.add_(z[..., k : k + h - n + 1, :], alpha=win[k])
    out = a[..., : w - n + 1] * win[0]
    for k in range(1, n):
        out.add_(a[..., k : k + w - n + 1], alpha=win[k])
    return out


def _ssim_cs(
    x: torch.Tensor, y: torch.Tensor, win: list[float], data_range: float, k1: float, k2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean SSIM and contrast-structure term (B, C), Gaussian window, 'valid' region only."""
    # The five local means in one pass.
    mx, my, exx, eyy, exy = _filter_valid(torch.stack([x, y, x * x, y * y, x * y]), win)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    # Population (not sample) covariances, as skimage's use_sample_covariance=False and pytorch_msssim.
    sxx = exx - mx * mx
    syy = eyy - my * my
    sxy = exy - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim_map = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return ssim_map.flatten(2).mean(-1), cs.flatten(2).mean(-1)


def _check_pair(x: torch.Tensor, y: torch.Tensor, win_size: int) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"x and y must be (B, C, H, W) batches of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if int(win_size) != win_size or win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd positive integer, got {win_size!r}")


def ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5,
    k1: float = 0.01, k2: float = 0.03,
) -> torch.Tensor:
    """Single-scale SSIM (B,) of (B, C, H, W) images, mean over channels (Gaussian 11×11, σ 1.5, valid region)."""
    _check_pair(x, y, win_size)
    if min(x.shape[2:]) < win_size:
        raise ValueError(f"SSIM with win_size={win_size} needs images of at least {win_size} px, got {tuple(x.shape[2:])}")
    win = _gauss_window(int(win_size), sigma, x.dtype)
    with torch.no_grad():
        return _ssim_cs(x, y, win, data_range, k1, k2)[0].mean(1)


def ms_ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, weights=MSSSIM_WEIGHTS, win_size: int = 11,
    sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
) -> torch.Tensor:
    """Multi-scale SSIM (B,) (Wang et al. 2003): ∏_j cs_j^{w_j} · SSIM_M^{w_M}, 2× average-pool between scales."""
    _check_pair(x, y, win_size)
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    levels = len(w)
    need = (int(win_size) - 1) * 2 ** (levels - 1) + 1
    if min(x.shape[2:]) < need:
        raise ValueError(
            f"MS-SSIM with {levels} scales and win_size={win_size} needs images of at least {need} px on the "
            f"short side, got {tuple(x.shape[2:])}"
        )
    win = _gauss_window(int(win_size), sigma, x.dtype)
    terms = []
    with torch.no_grad():
        for j in range(levels):
            s, cs = _ssim_cs(x, y, win, data_range, k1, k2)
            if j < levels - 1:
                terms.append(cs)
                pad = [d % 2 for d in x.shape[2:]]
                x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
        terms.append(s)
        # Negative terms would give NaN under fractional powers: clamp at 0, as pytorch_msssim does.
        stack = torch.stack(terms).clamp_min(0)
        return torch.prod(stack ** w.view(-1, 1, 1), dim=0).mean(1)


# -------------------------------------------------------------------------------------------- PIC
def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.detach().double() * 255).round().to(torch.uint8)


def _webp_arrays(x: torch.Tensor) -> list[np.ndarray]:
    x = _check_images(x)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"webp_bytes encodes 1- or 3-channel images, got {x.shape[1]} channels")
    # A few hundred images at a time: the float64 rounding of a large batch would hold 8 bytes per value on the device.
    return [a for part in x.split(256) for a in _to_uint8(part).permute(0, 2, 3, 1).contiguous().cpu().numpy()]


def webp_bytes(x: torch.Tensor) -> torch.Tensor:
    """Byte size (B,) of each [0, 1] image as an 8-bit lossless WebP: PIC's information estimate.

    Encoded in a process pool across the CPU cores (riemannkit.compression), each distinct image once."""
    return torch.tensor(C.webp_sizes(_webp_arrays(x)), dtype=torch.float64)


def prefetch_webp_bytes(x: torch.Tensor) -> None:
    """Start encoding [0, 1] images (B, C, H, W) as lossless WebP in the background; a later :func:`webp_bytes` (or
    PIC's WebP axis) of the same 8-bit images collects their sizes instead of encoding them then."""
    C.prefetch(_webp_arrays(x))


def one_blas_thread():
    """Context limiting BLAS to one thread (threadpoolctl if installed; otherwise a no-op): Delaunay interpolation's
    tiny per-simplex LAPACK calls spin-wait in a threaded OpenBLAS, for minutes when another process holds a core."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _interpolate_known(img: np.ndarray, known: np.ndarray) -> np.ndarray:
    """PAIR's create_blurred_image on one (H·W, C) float image: known pixels kept, the others linearly
    interpolated over a Delaunay triangulation of the known ones, the mean colour outside their hull."""
    from scipy.interpolate import LinearNDInterpolator

    if known.all():
        return img
    h, w = known.shape
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 2).astype(np.float64)
    k = known.reshape(-1)
    out = img.copy()
    # One triangulation for all channels (the reference calls griddata, which triangulates, per
    # channel).  Its per-simplex transforms are tiny LAPACK calls whose BLAS threading overhead
    # dominates with several threads (seconds per 224² image), so run them on one.
    with one_blas_thread():
        filled = LinearNDInterpolator(grid[k], img[k], fill_value=np.nan)(grid[~k])
    out[~k] = np.where(np.isnan(filled), np.broadcast_to(img.mean(0, keepdims=True), filled.shape), filled)
    # The reference stores into float32 before rounding: values within float32 eps of k + ½ round as there.
    return np.round(out.astype(np.float32)).astype(np.float64)


def _corners(mask: torch.Tensor) -> torch.Tensor:
    """Set the 4 corner pixels of (B, H, W) masks, as the reference always does."""
    mask = mask.clone()
    h, w = mask.shape[-2:]
    mask[:, [0, 0, h - 1, h - 1], [0, w - 1, 0, w - 1]] = True
    return mask


def _interpolate_images(xq: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Re-interpolate 8-bit images (B, C, H, W) from the pixels in ``known`` (B, H, W) plus the corners."""
    b, c, h, w = xq.shape
    img = _to_uint8(xq).double().cpu().permute(0, 2, 3, 1).reshape(b, h * w, c).numpy()
    known = _corners(known).cpu().numpy()
    out = [torch.from_numpy(_interpolate_known(img[i], known[i])).T.reshape(c, h, w) for i in range(b)]
    return torch.stack(out).to(device=xq.device, dtype=xq.dtype) / 255


def random_mask_start(x: torch.Tensor, fraction: float = 0.01, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """PAIR's fully blurred image: linear interpolation (Delaunay) of a seeded random ``fraction`` of pixels
    plus the corners; outside their hull the image's mean colour.  Returns (start (B, C, H, W), mask (B, H, W))."""
    x = _check_images(x)
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    b, c, h, w = x.shape
    gen = torch.Generator().manual_seed(int(seed))
    mask = torch.zeros(b, h * w, dtype=torch.bool)
    for i in range(b):
        mask[i, torch.randperm(h * w, generator=gen)[: int(h * w * fraction)]] = True
    mask = _corners(mask.view(b, h, w))
    return _interpolate_images(x, mask), mask.to(x.device)


class PICResult(NamedTuple):
    """One performance information curve per image; excluded images have NaN curve and AUC."""

    kind: str  # 'sic' (softmax probability) or 'aic' (top-1 correctness)
    curve_x: torch.Tensor  # (num_points + 1,) on [0, 1]
    curve_y: torch.Tensor  # (B, num_points + 1)
    auc: torch.Tensor  # (B,)
    valid: torch.Tensor  # (B,) bool: False where the reference would raise ComputePicMetricError
    reason: tuple[str, ...]  # why each image is excluded ('' when valid)
    info: torch.Tensor  # (B, T + 2) normalised x-axis of [start, thresholds…, original]
    score: torch.Tensor  # (B, T + 2) raw y (probability or correctness) of the same images


class PICCurves(NamedTuple):
    """SIC and AIC of the same bokeh images."""

    sic: PICResult
    aic: PICResult


def _interp_last(xs: torch.Tensor, ys: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Batched piecewise-linear interpolation of points (B, L) at q (Q,), as scipy interp1d/np.interp:
    points sorted stably by x; at a repeated x the last of them wins."""
    xs, idx = torch.sort(xs, dim=1, stable=True)
    ys = ys.gather(1, idx)
    last = xs.shape[1] - 1
    qq = q.expand(xs.shape[0], -1).contiguous()
    j = (torch.searchsorted(xs, qq, right=True) - 1).clamp(0, last)
    j1 = (j + 1).clamp(max=last)
    x0, x1, y0, y1 = xs.gather(1, j), xs.gather(1, j1), ys.gather(1, j), ys.gather(1, j1)
    exact = (x0 == qq) | (j == last)
    t = (qq - x0) / torch.where(exact, torch.ones_like(x1), x1 - x0)
    return torch.where(exact, y0, y0 + t * (y1 - y0))


def _pic_result(
    kind: str, score: torch.Tensor, info: torch.Tensor, bad: list[list[str]], keep_monotonous: bool, num_points: int
) -> PICResult:
    """Normalise y, make it monotone, interpolate at num_points + 1 abscissae and integrate (batched)."""
    b = score.shape[0]
    s0, s1 = score[:, :1], score[:, -1:]
    den = torch.where(s1 > s0, s1 - s0, torch.ones_like(s1))
    y = ((score - s0) / den).clamp(0, 1)[:, :-1]  # the original is the appended point (1, 1)
    if keep_monotonous:
        # The reference keeps the running maximum in threshold order (prefix max), so y only grows as
        # more pixels are revealed; the points are then sorted by x before interpolation.
        y = torch.cummax(y, dim=1).values
    xs = torch.cat([info[:, :-1], torch.zeros(b, 1, dtype=info.dtype), torch.ones(b, 1, dtype=info.dtype)], 1)
    ys = torch.cat([y, torch.zeros(b, 1, dtype=y.dtype), torch.ones(b, 1, dtype=y.dtype)], 1)
    curve_x = torch.cat([torch.arange(num_points, dtype=torch.float64) / num_points, torch.ones(1, dtype=torch.float64)])
    curve_y = torch.cat([_interp_last(xs, ys, curve_x[:-1]), torch.ones(b, 1, dtype=torch.float64)], 1)
    auc = torch.trapezoid(curve_y, curve_x, dim=1)
    valid = torch.tensor([not r for r in bad], dtype=torch.bool)
    curve_y[~valid] = math.nan
    auc[~valid] = math.nan
    return PICResult(kind, curve_x, curve_y, auc, valid, tuple("; ".join(r) for r in bad), info, score)


@V.evaluates_model
def pic_curves(
    model: nn.Module,
    x: torch.Tensor,
    saliency: torch.Tensor,
    target=None,
    thresholds=PIC_THRESHOLDS,
    start="random_mask",
    information: str | tuple[str, ...] = "webp",
    bokeh: str | None = None,
    reduce: str = "sum",
    blur_sigma: float = BLUR_SIGMA,
    mask_fraction: float = 0.01,
    seed: int = 0,
    min_pred_value: float = 0.8,
    keep_monotonous: bool = True,
    num_points: int = 1000,
    batch_size: int = 64,
) -> PICCurves | dict[str, PICCurves]:
    """SIC and AIC performance information curves (Kapishnikov et al.; PAIR-code/saliency pic.py).

    Images are 8-bit (``x`` in [0, 1] is rounded to uint8 levels, as the reference's uint8 input).  For
    each threshold t the pixels with saliency ≥ the (1 − t)-quantile (linear, ties included, as
    np.quantile) are revealed.  Default, PAIR's procedure (start='random_mask', bokeh='interpolate'):
    the start image interpolates a seeded random ``mask_fraction`` of pixels (plus the corners), and
    each bokeh image is re-interpolated (Delaunay, linear) from all its revealed pixels.  The IDGI
    study's procedure (start='blur', bokeh='paste'): the revealed pixels are pasted onto
    blur_image(x, blur_sigma) (its PIL GaussianBlur(20) start); a (B, C, H, W) tensor start is also
    pasted onto.  ``bokeh=None`` picks the pairing above.  Pasting is cheap, but scattered pixels make
    salt-and-pepper images whose WebP size reaches the original's long before the model recovers,
    which squeezes the 'webp' curve against x = 1 (AUC ≈ 0); interpolating costs one triangulation
    per image and threshold (seconds per 224² image on a CPU).
    x-axis ('webp'): lossless-WebP bytes normalised between the start's and the original's and clipped
    to [0, 1]; ('msssim'): MS-SSIM(bokeh, original) on [0, 1] images, as the IDGI study (≥ 161 px).
    y-axis: SIC = softmax probability of ``target`` (default: top-1 of x), AIC = 1 when the top-1 class
    equals x's, both normalised between the start's and the original's and clipped to [0, 1]; running
    maximum over thresholds if ``keep_monotonous``; points (0, 0) and (1, 1) added, interpolated at
    ``num_points`` + 1 abscissae, AUC by the trapezoid rule.  Where the reference raises
    ComputePicMetricError (original prediction < ``min_pred_value``, SIC only as in the reference;
    start prediction ≥ original; start information ≥ original) the image is flagged: valid False, a
    reason, NaN curve and AUC; aggregate with :func:`aggregate_pic`.  All (T + 2)·B bokeh images are
    held at once: pass the images in batches.  Random masks are drawn in batch order from ``seed``.
    A tuple of axes as ``information`` returns {information: PICCurves} from one forward pass per bokeh image (both
    axes score the same images: :func:`pic_curves_axes`).  The WebP sizes are encoded across the CPU cores while
    the model runs (riemannkit.compression).
    """
    informations = tuple(dict.fromkeys(information)) if isinstance(information, (tuple, list)) else (information,)
    if not informations:
        raise ValueError(f"information must name at least one of {', '.join(PIC_INFORMATION)}")
    for info in informations:
        _check_choice("information", info, PIC_INFORMATION)
    if int(num_points) != num_points or num_points < 1:
        raise ValueError(f"num_points must be a positive integer, got {num_points!r}")
    x = _check_images(x)
    need = 10 * 2 ** (len(MSSSIM_WEIGHTS) - 1) + 1
    if "msssim" in informations and min(x.shape[2:]) < need:
        raise ValueError(
            f"information='msssim' (5-scale MS-SSIM) needs images of at least {need} px on the short side, "
            f"got {tuple(x.shape[2:])}"
        )
    x, target = I.prepare(model, x, target, batch_size)
    b = x.shape[0]
    flat, levels, xq = _pic_setup(x, saliency, thresholds, start, bokeh, reduce, blur_sigma, mask_fraction, seed)
    if "webp" in informations:
        webp_arrays = _webp_arrays(flat.clamp(0, 1))
        webp_keys = C.prefetch(webp_arrays)  # encoded in the pool while the model and MS-SSIM run
    prob, top = _target_probs(model, flat, target.repeat(levels), batch_size)
    prob, top = prob.view(levels, b).T.double().cpu(), top.view(levels, b).T.cpu()
    correct = (top == top[:, -1:]).double()
    axes = {}
    for axis in informations:
        if axis == "webp":
            ent = torch.tensor(C.webp_sizes(webp_arrays, webp_keys), dtype=torch.float64).view(levels, b).T
            e0, e1 = ent[:, :1], ent[:, -1:]
            info = ((ent - e0) / torch.where(e1 > e0, e1 - e0, torch.ones_like(e1))).clamp(0, 1)
            info_bad = (e1 <= e0).squeeze(1)
            info_msg = "start image's WebP size is not below the original's"
        else:
            # Float32 as pytorch_msssim (the study's); a chunk of images at a time bounds the memory.  Bokeh image p
            # (level-major) compares with the original p % B.
            ref = xq.float()
            step = MSSSIM_CHUNK if flat.device.type == "cpu" else MSSSIM_CHUNK_DEVICE
            info = torch.cat([
                ms_ssim(flat[i : i + step].float(), ref[torch.arange(i, min(i + step, flat.shape[0]), device=ref.device) % b],
                        data_range=1.0)
                for i in range(0, flat.shape[0], step)
            ])
            info = info.double()
            info = info.view(levels, b).T.cpu().clamp(0, 1)
            info_bad = info[:, 0] >= 1
            info_msg = "start image's MS-SSIM to the original is 1 (it carries all the information)"
        results = []
        for kind, score in (("sic", prob), ("aic", correct)):
            bad = [[] for _ in range(b)]
            for i in range(b):
                if kind == "sic" and score[i, -1] < min_pred_value:
                    bad[i].append(f"prediction on the original {score[i, -1].item():.4g} < min_pred_value={min_pred_value}")
                if info_bad[i]:
                    bad[i].append(info_msg)
                if score[i, 0] >= score[i, -1]:
                    bad[i].append(
                        f"prediction on the start image {score[i, 0].item():.4g} is not below the original's "
                        f"{score[i, -1].item():.4g}"
                    )
            results.append(_pic_result(kind, score, info.double(), bad, keep_monotonous, int(num_points)))
        axes[axis] = PICCurves(*results)
    return axes if isinstance(information, (tuple, list)) else axes[information]


def _pic_setup(x: torch.Tensor, saliency: torch.Tensor, thresholds, start, bokeh: str | None, reduce: str,
               blur_sigma: float, mask_fraction: float, seed: int) -> tuple[torch.Tensor, int, torch.Tensor]:
    """PIC's bokeh images ((T + 2)·B, C, H, W), level-major [start, thresholds…, original], their number of levels
    T + 2, and the 8-bit images xq; ``x`` on its device, the arguments checked as :func:`pic_curves` documents."""
    if isinstance(start, str):
        _check_choice("start", start, PIC_STARTS)
    random_start = isinstance(start, str) and start == "random_mask"
    if bokeh is None:
        bokeh = "interpolate" if random_start else "paste"
    _check_choice("bokeh", bokeh, PIC_BOKEH)
    if bokeh == "interpolate" and not random_start:
        raise ValueError(f"bokeh='interpolate' re-interpolates from revealed pixels and needs start='random_mask', got start={start!r}")
    th = torch.as_tensor(thresholds, dtype=torch.float64).flatten()
    if th.numel() == 0 or not torch.isfinite(th).all() or (th <= 0).any() or (th >= 1).any() or (torch.diff(th) <= 0).any():
        raise ValueError("thresholds must be a non-empty increasing sequence of fractions in (0, 1)")
    x = _check_images(x)
    b, c, h, w = x.shape
    sal = reduce_saliency(saliency, x, reduce).flatten(1)
    xq = _to_uint8(x).to(x.dtype) / 255
    revealed = torch.zeros(b, h * w, dtype=torch.bool, device=x.device)
    if isinstance(start, str):
        if start == "blur":
            s_img = _to_uint8(pic_blur_start(xq, blur_sigma)).to(x.dtype) / 255
        else:
            s_img, m = random_mask_start(xq, mask_fraction, seed)
            revealed = m.flatten(1)
    else:
        s_img = _check_images(torch.as_tensor(start).to(device=x.device, dtype=x.dtype), "start")
        s_img = _to_uint8(P.check_baseline(x, s_img)).to(x.dtype) / 255
    # Bokeh images: [start, thresholds…, original], each a mask of revealed pixels.
    quant = torch.quantile(sal, 1 - th.to(sal.device), dim=1)  # (T, B)
    masks = (sal.unsqueeze(0) >= quant.unsqueeze(2)) | revealed.unsqueeze(0)
    masks = torch.cat([revealed.unsqueeze(0), masks, torch.ones_like(revealed).unsqueeze(0)])
    levels = masks.shape[0]
    flat = torch.where(masks.view(levels, b, 1, h, w), xq, s_img).reshape(levels * b, c, h, w)
    if bokeh == "interpolate":
        inner = slice(b, (levels - 1) * b)  # the start and the original need no interpolation
        flat[inner] = _interpolate_images(flat[inner], masks[1:-1].reshape(-1, h, w))
    return flat, levels, xq


def pic_blur_start(x: torch.Tensor, blur_sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """PIC's 'blur' start before its 8-bit rounding: blur_image of the 8-bit copy of x (B, C, H, W), clipped to [0, 1].

    Passed as ``start`` to :func:`pic_curves` it gives the images of start='blur'; computed once per set of photos,
    it makes every method's start the same tensor, whatever the batch (riemannkit.evaluation.metric_table)."""
    xq = _to_uint8(_check_images(x)).to(x.dtype) / 255
    return blur_image(xq, blur_sigma).clamp(0, 1)


def pic_images(x: torch.Tensor, saliency: torch.Tensor, thresholds=PIC_THRESHOLDS, start="blur", reduce: str = "sum",
               blur_sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """The ((T + 2)·B, C, H, W) bokeh images :func:`pic_curves` scores with a pasting ``start`` ('blur' or a tensor),
    level-major [start, thresholds…, original], on x's device: e.g. to :func:`prefetch_webp_bytes` them early."""
    if isinstance(start, str) and start == "random_mask":
        raise ValueError("pic_images builds pasted bokeh images: start must be 'blur' or a (B, C, H, W) tensor, got 'random_mask'")
    return _pic_setup(x, saliency, thresholds, start, "paste", reduce, blur_sigma, 0.0, 0)[0]


def pic_curves_axes(model: nn.Module, x: torch.Tensor, saliency: torch.Tensor, target=None,
                    informations=PIC_INFORMATION, **kwargs) -> dict[str, PICCurves]:
    """{information: PICCurves}: :func:`pic_curves` on each axis in ``informations`` ('webp', 'msssim') from one forward
    pass per bokeh image; ``kwargs``: pic_curves' other keywords (start, thresholds, reduce, min_pred_value, …)."""
    return pic_curves(model, x, saliency, target, information=tuple(informations), **kwargs)


def pic_from_points(kind: str, info, score, valid, reason=None, keep_monotonous: bool = True,
                    num_points: int = 1000) -> PICResult:
    """A PICResult rebuilt from the stored raw points of :func:`pic_curves` (``info`` and ``score``, (B, T + 2) each, and
    the per-image ``valid`` flags), so that curves stored image by image aggregate as one batch would."""
    _check_choice("kind", kind, ("sic", "aic"))
    info = torch.as_tensor(info, dtype=torch.float64)
    score = torch.as_tensor(score, dtype=torch.float64)
    valid = torch.as_tensor(valid, dtype=torch.bool).flatten()
    if info.ndim != 2 or info.shape != score.shape or info.shape[1] < 2 or valid.numel() != info.shape[0]:
        raise ValueError(f"info and score must be (B, T + 2) arrays of the same shape with one valid flag per image, got "
                         f"info {tuple(info.shape)}, score {tuple(score.shape)}, valid {tuple(valid.shape)}")
    reason = list(reason) if reason is not None else ["" if v else "invalid (stored flag)" for v in valid.tolist()]
    bad = [[r or "invalid (stored flag)"] if not v else [] for v, r in zip(valid.tolist(), reason)]
    return _pic_result(kind, score, info, bad, keep_monotonous, int(num_points))


def aggregate_pic(result: PICResult, method: str | None = None) -> tuple[torch.Tensor, float]:
    """Aggregate curve over the valid images and its AUC: median (default for SIC) or mean (default for AIC)."""
    if method is None:
        method = "median" if result.kind == "sic" else "mean"
    _check_choice("method", method, PIC_AGGREGATIONS)
    ys = result.curve_y[result.valid]
    if ys.shape[0] == 0:
        raise ValueError(f"no valid image to aggregate ({result.kind}): reasons {result.reason}")
    # torch.quantile(·, 0.5) averages the two middle values like np.median; torch.median does not.
    curve = torch.quantile(ys, 0.5, dim=0) if method == "median" else ys.mean(0)
    return curve, float(torch.trapezoid(curve, result.curve_x))


# ------------------------------------------------------------------------------------- stability
def jpeg_round_trip(x: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """[0, 1] images encoded as 8-bit JPEG at ``quality`` with PIL (default 4:2:0 subsampling) and decoded."""
    x = _check_images(x)
    if int(quality) != quality or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in [1, 100], got {quality!r}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"JPEG encodes 1- or 3-channel images, got {x.shape[1]} channels")
    out = []
    for a in _to_uint8(x).permute(0, 2, 3, 1).cpu().numpy():
        buf = io.BytesIO()
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        dec = np.asarray(Image.open(buf), dtype=np.float32) / 255
        out.append(torch.from_numpy(dec.reshape(*dec.shape[:2], -1)).permute(2, 0, 1))
    return torch.stack(out).to(device=x.device, dtype=x.dtype)


def jpeg_stability(
    saliency_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, quality: int = 75, reduce: str = "sum"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image MSE (B,) between the maps of x and of its JPEG copy, each divided by Σ|map|, and −ln MSE.

    Both maps are computed on 8-bit images (x rounded to uint8 levels), so only JPEG compression
    differs.  Maps (B, C, H, W) are reduced over channels by ``reduce`` (the study: signed 'sum');
    (B, H, W) maps are used as they are.  The study divides by the signed sum, which can be ≈ 0; Σ|map|
    cannot (an all-zero map raises).  Identical maps give MSE 0 and −ln MSE = +inf.
    """
    x = _check_images(x)
    xq = _to_uint8(x).to(x.dtype) / 255
    maps = []
    for img in (xq, jpeg_round_trip(xq, quality)):
        m = reduce_saliency(saliency_fn(img), img, reduce).flatten(1)
        norm = m.abs().sum(1, keepdim=True)
        if (norm == 0).any():
            raise ValueError("saliency_fn returned an all-zero map: it cannot be normalised by Σ|map|")
        maps.append(m / norm)
    mse = (maps[0] - maps[1]).pow(2).mean(1)
    return mse, -torch.log(mse)


# ---------------------------------------------------------------------------------------------------
# Comparing maps: completeness per method, how much attributions cancel, how concentrated a map is, and how
# far apart two maps are (the stability chapter's JPEG copy, the same maps on two devices).
# ---------------------------------------------------------------------------------------------------
def completeness_by_method(maps: dict[str, I.Attribution]) -> dict[str, torch.Tensor]:
    """Per-image relative completeness error (B,) of each map in ``maps``."""
    return {k: completeness_error(r.attr, r.f_input, r.f_baseline) for k, r in maps.items()}


def relative_map_error(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """||â − b̂||² / (||â||² + ||b̂||²) per image of the channel-reduced, Σ|·|-normalised maps: 0 equal, ≈ 1 unrelated."""
    ra, rb = (reduce_saliency(m, x, reduce).flatten(1) for m in (a, b))
    na, nb = ra.abs().sum(1, keepdim=True), rb.abs().sum(1, keepdim=True)
    if (na == 0).any() or (nb == 0).any():
        raise ValueError("a or b holds an all-zero map: it cannot be normalised by Σ|map|")
    ra, rb = ra / na, rb / nb
    return (ra - rb).pow(2).sum(1) / (ra.pow(2).sum(1) + rb.pow(2).sum(1))


def relative_l2(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-image ||a − b|| / ||b|| (B,) for each key of ``b`` (e.g. the same maps on two devices)."""
    missing = set(b) - set(a)
    if missing:
        raise ValueError(f"a lacks the key(s) {sorted(missing)} of b")
    out = {}
    for k, ref in b.items():
        if tuple(a[k].shape) != tuple(ref.shape):
            raise ValueError(f"a[{k!r}] has shape {tuple(a[k].shape)}, b[{k!r}] has {tuple(ref.shape)}")
        d = (a[k].detach().double().cpu() - ref.detach().double().cpu()).flatten(1).norm(dim=1)
        out[k] = d / ref.detach().double().cpu().flatten(1).norm(dim=1)
    return out


def mass_ratio(maps: dict[str, I.Attribution]) -> dict[str, torch.Tensor]:
    """Σ_i |attr_i| / |f(x) − f(x')| per image (B,) for each map: 1 when no attribution cancels."""
    out = {}
    for k, r in maps.items():
        delta = (r.f_input - r.f_baseline).double().abs().cpu()
        if (delta == 0).any():
            raise ValueError(f"maps[{k!r}]: f(x) − f(x') is 0 for some image, the ratio is undefined")
        out[k] = r.attr.detach().double().abs().flatten(1).sum(1).cpu() / delta
    return out


def concentration(attr: torch.Tensor, x: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """HW · Σ_p Ŝ_p² per image of the channel-reduced, Σ|·|-normalised map: 1 if all |Ŝ_p| are equal, HW for one pixel."""
    s = reduce_saliency(attr, x, reduce).flatten(1)
    norm = s.abs().sum(1, keepdim=True)
    if (norm == 0).any():
        raise ValueError("attr holds an all-zero map: it cannot be normalised by Σ|map|")
    return s.shape[1] * (s / norm).pow(2).sum(1)
