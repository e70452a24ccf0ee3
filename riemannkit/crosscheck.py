"""Cross-checks: riemannkit against the reference implementations a reader already trusts.

Each ``check_*`` function runs one reference (Captum's ``IntegratedGradients``, PAIR-code's ``saliency``
package, the IDGI formula as published) and the matching riemannkit call on the same model, images and
classes, and returns an :class:`Agreement` (relative L2 difference of the maps per image, the largest
absolute difference, the relative completeness error of each map).  Captum and ``saliency`` are optional
for the library: they are imported inside the functions that need them.

PAIR's ``saliency`` 0.2.1 predates numpy 2: Guided IG calls ``np.quantile(..., interpolation=...)`` and the
PIC metric ``np.trapz``, both removed.  :func:`numpy2_shims` restores them for the duration of a call,
without editing the package.
"""
from __future__ import annotations

import contextlib
import functools
import math
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from . import integrate as I
from . import metrics as M
from . import paths as P
from . import quadrature as Q
from . import validate as V
from .blur import gaussian_blur
from .idgi import idgi_attribute

# Captum's rule names and riemannkit's: the same nodes; riemannkit's trapezoid n is its number of nodes
# (n − 1 intervals), as Captum's n_steps.
CAPTUM_RULES = {
    "riemann_left": "left",
    "riemann_right": "right",
    "riemann_middle": "midpoint",
    "riemann_trapezoid": "trapezoid",
    "gausslegendre": "gausslegendre",
}

# Float32 has ε = 2⁻²³ ≈ 1.2e-7.  Two correct float32 implementations of the same sum differ by the order of
# their additions and by the model's kernels (batch composition changes the convolution algorithm): ~1e-6 of
# the map's norm, measured.  1e-4 (≈ 840 ε) leaves room for cancellation in the map and still sits two orders
# of magnitude below any difference of definition found here (≥ 1e-2).
FLOAT32_TOL = 1e-4


class Agreement(NamedTuple):
    """How far riemannkit's maps are from a reference's, per image."""

    reference: str  # which implementation, e.g. "Captum IG"
    setting: str  # the rule / parameters compared
    rel_l2: np.ndarray  # (B,) ||ours − theirs||₂ / ||theirs||₂
    max_abs: float  # max |ours − theirs| over all images and features
    scale: float  # max |theirs|, for reading max_abs
    completeness_ours: np.ndarray  # (B,) |Σ attr − Δf| / |Δf| of riemannkit's map
    completeness_ref: np.ndarray  # (B,) the same for the reference's map

    def verdict(self, tol: float = FLOAT32_TOL) -> str:
        """'agrees to float rounding' when every image's relative L2 difference is below ``tol``."""
        return "agrees to float rounding" if float(np.max(self.rel_l2)) < tol else "differs: see below"


def rel_completeness(attr: torch.Tensor, f_input: torch.Tensor, f_baseline: torch.Tensor) -> np.ndarray:
    """|Σ attr − (f(x) − f(x'))| / |f(x) − f(x')| per image (float64)."""
    df = (f_input - f_baseline).double().cpu()
    total = attr.double().flatten(1).sum(1).cpu()
    return ((total - df).abs() / df.abs().clamp_min(1e-300)).numpy()


def compare_maps(
    reference: str, setting: str, ours: torch.Tensor, theirs: torch.Tensor, f_input: torch.Tensor, f_baseline: torch.Tensor
) -> Agreement:
    """The :class:`Agreement` of two (B, C, H, W) maps of the same images (completeness against the same f)."""
    a, b = ours.detach().double().cpu(), theirs.detach().double().cpu()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    diff = (a - b).flatten(1)
    rel = (diff.norm(dim=1) / b.flatten(1).norm(dim=1).clamp_min(1e-300)).numpy()
    return Agreement(reference, setting, rel, float(diff.abs().max()), float(b.abs().max()),
                     rel_completeness(a, f_input, f_baseline), rel_completeness(b, f_input, f_baseline))


def _softmax_model(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    # riemannkit's output='prob' is the softmax probability; Captum explains whatever forward_func returns.
    return lambda z: model(z).softmax(-1)


# --------------------------------------------------------------------------------------------- Captum
@V.evaluates_model
def check_captum_ig(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str, n_steps: int, batch_size: int = 64
) -> Agreement:
    """Captum ``IntegratedGradients.attribute(method=..., n_steps=...)`` vs ``riemannkit.attribute`` with the
    matching rule and n, softmax probability, black baseline."""
    from captum.attr import IntegratedGradients

    if method not in CAPTUM_RULES:
        raise ValueError(f"unknown Captum method={method!r}; accepted values: {', '.join(CAPTUM_RULES)}")
    ours = I.attribute(model, x, "ig", rule=CAPTUM_RULES[method], n=n_steps, target=target, batch_size=batch_size)
    theirs = IntegratedGradients(_softmax_model(model)).attribute(
        x, target=ours.target, n_steps=n_steps, method=method, internal_batch_size=batch_size
    )
    return compare_maps("Captum IG", f"{method}, n={n_steps}", ours.attr, theirs, ours.f_input, ours.f_baseline)


@V.evaluates_model
def check_captum_trapezoid_scaled(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, n_steps: int, batch_size: int = 64
) -> Agreement:
    """Captum's 'riemann_trapezoid' vs riemannkit's trapezoid times (n − 1)/n: Captum's step sizes are 1/n
    (halved at the ends) where the trapezoid rule's are 1/(n − 1), so they sum to 1 − 1/n."""
    from captum.attr import IntegratedGradients

    ours = I.attribute(model, x, "ig", rule="trapezoid", n=n_steps, target=target, batch_size=batch_size)
    theirs = IntegratedGradients(_softmax_model(model)).attribute(
        x, target=ours.target, n_steps=n_steps, method="riemann_trapezoid", internal_batch_size=batch_size
    )
    return compare_maps("Captum IG", f"riemann_trapezoid vs riemannkit trapezoid × (n−1)/n, n={n_steps}",
                        ours.attr * (n_steps - 1) / n_steps, theirs, ours.f_input, ours.f_baseline)


@V.evaluates_model
def check_captum_trapezoid_same_nodes(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, n_steps: int, batch_size: int = 64
) -> Agreement:
    """Captum's 'riemann_trapezoid' vs riemannkit's integrand at Captum's own nodes and step sizes: its nodes
    i/(n − 1) come from a float32 ``torch.linspace``, riemannkit's rules build them in float64, so most path points
    differ in the last bit; given the same nodes the two must agree to float rounding."""
    from captum.attr import IntegratedGradients

    alphas, step_sizes = captum_weights("riemann_trapezoid", n_steps)
    ours = weighted_integral(model, x, target, torch.from_numpy(alphas), torch.from_numpy(step_sizes), batch_size=batch_size)
    theirs = IntegratedGradients(_softmax_model(model)).attribute(
        x, target=target, n_steps=n_steps, method="riemann_trapezoid", internal_batch_size=batch_size
    )
    return compare_maps("Captum IG", f"riemann_trapezoid vs riemannkit at Captum's float32 nodes and step sizes, n={n_steps}",
                        ours, theirs, _f(model, x, target), _f(model, torch.zeros_like(x), target))


def node_rounding(n_steps: int) -> tuple[int, float]:
    """How many of the n nodes i/(n − 1) differ between float32 linspace (Captum) and float64, and the largest gap."""
    a32 = torch.linspace(0, 1, n_steps).double().numpy()
    a64 = np.arange(n_steps) / (n_steps - 1)
    return int(np.sum(a32 != a64)), float(np.max(np.abs(a32 - a64)))


def captum_weights(method: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Captum's (alphas, step sizes) of ``method`` with ``n_steps`` (its own builders, as it uses them)."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters(method)
    return np.asarray(alphas(n_steps), dtype=np.float64), np.asarray(step_sizes(n_steps), dtype=np.float64)


# ----------------------------------------------------------------------------------------- PAIR seam
@contextlib.contextmanager
def numpy2_shims() -> Iterator[None]:
    """Give PAIR ``saliency`` 0.2.1 the numpy 1 calls it makes, for the duration of the block only.

    ``np.quantile(a, q, interpolation=m)`` becomes ``np.quantile(a, q, method=m)`` (numpy 2 removed the old
    keyword; Guided IG uses it) and ``np.trapz`` is ``np.trapezoid`` (removed in numpy 2.4; PIC uses it).
    Both are restored on exit, even on an error."""
    original_quantile = np.quantile
    had_trapz = hasattr(np, "trapz")
    original_trapz = getattr(np, "trapz", None)

    @functools.wraps(original_quantile)
    def quantile(*args, **kwargs):
        if "interpolation" in kwargs:
            kwargs["method"] = kwargs.pop("interpolation")
        return original_quantile(*args, **kwargs)

    np.quantile = quantile
    if not had_trapz:
        np.trapz = np.trapezoid
    try:
        yield
    finally:
        np.quantile = original_quantile
        if had_trapz:
            np.trapz = original_trapz
        elif hasattr(np, "trapz"):
            del np.trapz


def pair_call_model_function(model: nn.Module, target: int, output: str = "prob") -> Callable:
    """PAIR's ``call_model_function(x_value_batch, call_model_args, expected_keys)`` for a torch model.

    PAIR passes NHWC numpy batches (float32, or float64 for Guided IG) and expects
    ``{INPUT_OUTPUT_GRADIENTS: ∇f}`` in the same layout; f is the softmax probability (or logit) of
    ``target``.  The model runs in its own dtype (float32) and on its own device."""
    from saliency.core.base import INPUT_OUTPUT_GRADIENTS

    ref = next(iter(model.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None else torch.float32

    def call(x_value_batch, call_model_args=None, expected_keys=None):
        xb = torch.from_numpy(np.ascontiguousarray(x_value_batch)).permute(0, 3, 1, 2).to(device=device, dtype=dtype)
        tgt = torch.full((xb.shape[0],), int(target), dtype=torch.long, device=device)
        g = I.gradients(model, xb, tgt, output)
        return {INPUT_OUTPUT_GRADIENTS: g.permute(0, 2, 3, 1).detach().cpu().numpy()}

    return call


def _hwc(img: torch.Tensor) -> np.ndarray:
    return img.detach().cpu().permute(1, 2, 0).numpy()


def _chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(arr, dtype=np.float64)).permute(2, 0, 1)


def _f(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return I.target_output(model, x, target, "prob")


# ---------------------------------------------------------------------------------------------- PAIR IG
def pair_ig_nodes(x_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PAIR IG's nodes and weights: linspace(0, 1, x_steps) with both ends, each weighted 1/x_steps."""
    n = V.check_count(x_steps, "x_steps", minimum=2)
    return torch.linspace(0, 1, n, dtype=torch.float64), torch.full((n,), 1 / n, dtype=torch.float64)


def weighted_integral(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, nodes: torch.Tensor, weights: torch.Tensor,
    path: str = "ig", batch_size: int = 64, **path_kwargs,
) -> torch.Tensor:
    """Σ_i w_i ∇f(γ(α_i)) ⊙ γ'(α_i) at any nodes and weights, from riemannkit's engine (softmax probability)."""
    attr = torch.zeros_like(x, dtype=torch.float64)
    w = weights.double()
    plan = I.make_plan(model, path, engine=I.Engine(batch_size=batch_size), nodes=nodes, **path_kwargs).replace(
        target=torch.as_tensor(target, device=x.device))
    for rows, g in I.integrand_chunks(plan, x):
        attr += torch.tensordot(w[rows].to(g.device), g.double(), dims=1)
    return attr


@V.evaluates_model
def check_pair_ig(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, x_steps: int = 25, batch_size: int = 64
) -> tuple[Agreement, Agreement]:
    """PAIR ``IntegratedGradients.GetMask`` vs (its node/weight set through riemannkit's integrand, riemannkit's
    trapezoid with the same x_steps nodes)."""
    from saliency.core import IntegratedGradients

    x = x.float()
    theirs = torch.stack([
        _chw(IntegratedGradients().GetMask(_hwc(x[i]), pair_call_model_function(model, int(target[i])),
                                           x_steps=x_steps, batch_size=batch_size))
        for i in range(x.shape[0])
    ])
    nodes, weights = pair_ig_nodes(x_steps)
    same = weighted_integral(model, x, target, nodes, weights, batch_size=batch_size)
    trap = I.attribute(model, x, "ig", rule="trapezoid", n=x_steps, target=target, batch_size=batch_size)
    a = compare_maps("PAIR IG", f"its rule (linspace, 1/n each) in riemannkit, n={x_steps}", same, theirs, trap.f_input, trap.f_baseline)
    b = compare_maps("PAIR IG", f"riemannkit trapezoid, n={x_steps}", trap.attr, theirs, trap.f_input, trap.f_baseline)
    return a, b


def pair_ig_points(model: nn.Module, x: torch.Tensor, target: torch.Tensor, x_steps: int = 25, batch_size: int = 64,
                   channels_last: bool = True) -> torch.Tensor:
    """PAIR IG's arithmetic with riemannkit's gradients: path points α·x formed in float64 (a float64 ``np.linspace``
    times the image) and rounded once to float32, gradients summed in float32, times x / x_steps.  PAIR's batches are
    NHWC arrays that reach torch as channels-last tensors (``pair_call_model_function`` permutes without copying), and
    a CPU convolution's rounding depends on the memory layout: ``channels_last`` reproduces that."""
    n = V.check_count(x_steps, "x_steps", minimum=2)
    alphas = torch.from_numpy(np.linspace(0, 1, n))  # float64, as PAIR's loop
    out = []
    for i in range(x.shape[0]):
        xi = x[i].detach().double()
        total = torch.zeros_like(x[i], dtype=torch.float32)
        for chunk in alphas.split(batch_size):
            pts = (chunk.view(-1, 1, 1, 1) * xi).to(x.dtype)
            if channels_last:
                pts = pts.contiguous(memory_format=torch.channels_last)
            tgt = target[i].view(1).expand(pts.shape[0])
            total += I.gradients(model, pts, tgt, "prob").float().sum(0)
        out.append(total * x[i].float() / n)
    return torch.stack(out)


@V.evaluates_model
def check_pair_ig_same_points(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, x_steps: int = 25, batch_size: int = 64
) -> tuple[Agreement, Agreement]:
    """PAIR ``IntegratedGradients.GetMask`` vs :func:`pair_ig_points` (its float64 path points) in PAIR's channels-last
    layout, which must agree to float rounding, and in riemannkit's contiguous layout (the layout's share of the gap)."""
    from saliency.core import IntegratedGradients

    x = x.float()
    theirs = torch.stack([
        _chw(IntegratedGradients().GetMask(_hwc(x[i]), pair_call_model_function(model, int(target[i])),
                                           x_steps=x_steps, batch_size=batch_size))
        for i in range(x.shape[0])
    ])
    f1, f0 = _f(model, x, target), _f(model, torch.zeros_like(x), target)
    return tuple(compare_maps("PAIR IG", f"its float64 path points, float32 sums, {name} layout, in riemannkit, n={x_steps}",
                              pair_ig_points(model, x, target, x_steps, batch_size, cl), theirs, f1, f0)
                 for cl, name in ((True, "channels-last"), (False, "contiguous")))


def rule_errors(g: Callable[[np.ndarray], np.ndarray], exact: float, n: int) -> dict[str, float]:
    """Signed error Σ w_i g(α_i) − ∫₀¹ g of each rule with n gradient evaluations: riemannkit's rules,
    Captum's trapezoid and PAIR IG's weighting (float64)."""
    out = {}
    for rule in Q.rules_taking(n):  # Simpson's rule only at odd n
        a, w = I.rule_nodes(rule, n)
        out[rule] = float((w.numpy() * g(a.numpy())).sum() - exact)
    a, w = pair_ig_nodes(n)
    out["PAIR IG"] = float((w.numpy() * g(a.numpy())).sum() - exact)
    # Captum's trapezoid: linspace(0, 1, n) with step sizes 1/n, the two ends halved (they sum to 1 − 1/n).
    w = np.full(n, 1 / n)
    w[0] = w[-1] = 0.5 / n
    out["Captum trapezoid"] = float((w * g(np.linspace(0, 1, n))).sum() - exact)
    return out


# ------------------------------------------------------------------------------------------- PAIR BlurIG
def _blurig_fd(model, x, target, max_sigma, steps, grad_step, batch_size) -> tuple[torch.Tensor, torch.Tensor]:
    """(exact-velocity, forward-difference-velocity) right-rule BlurIG maps from the same gradients at
    riemannkit's blur points α_i = i/steps: the two differ only in γ'(α)."""
    nodes = torch.arange(1, steps + 1, dtype=torch.float64) / steps
    exact = torch.zeros_like(x, dtype=torch.float64)
    fd = torch.zeros_like(x, dtype=torch.float64)
    per = max(1, batch_size // x.shape[0])
    for s in range(0, steps, per):
        a = nodes[s : s + per]
        pts, vel = P.blur(x, a, max_sigma)
        sig = (1 - a.to(x)) * max_sigma
        ahead, _ = gaussian_blur(x, sig + grad_step, support_sigma=max_sigma)
        # PAIR's γ' in α: −max_sigma · (blur(σ + h) − blur(σ)) / h; at σ = 0 PAIR's blur is the identity
        # and scipy's σ = h kernel has radius 0, so its velocity there is exactly 0, as the exact one.
        vel_fd = -max_sigma * (ahead - pts) / grad_step
        vel_fd[sig == 0] = 0
        k = len(a)
        g = I.gradients(model, pts.reshape(-1, *x.shape[1:]), target.repeat(k), "prob").view(k, *x.shape)
        exact += (g.double() * vel.double()).sum(0) / steps
        fd += (g.double() * vel_fd.double()).sum(0) / steps
    return exact, fd


def _pair_blurig_scipy(model, x, target, max_sigma, steps, grad_step, batch_size) -> torch.Tensor:
    """PAIR's BlurIG sum with PAIR's own points and velocity (scipy ``gaussian_filter(mode='constant')`` at
    σ_i = i·max_sigma/steps, forward difference) but riemannkit's gradients (batched as riemannkit does):
    what is left between this and PAIR is the gradients' float rounding."""
    from scipy import ndimage

    def blur(img, s):
        return img if s == 0 else ndimage.gaussian_filter(img, sigma=[s, s, 0], mode="constant")

    out = torch.zeros_like(x, dtype=torch.float64)
    per = max(1, batch_size // x.shape[0])
    sig = [i * max_sigma / steps for i in range(steps + 1)]
    for s0 in range(0, steps, per):
        idx = list(range(s0, min(steps, s0 + per)))
        pts, vel = [], []
        for i in idx:
            for b in range(x.shape[0]):
                img = _hwc(x[b]).astype(np.float32)
                p = blur(img, sig[i])
                pts.append(torch.from_numpy(np.ascontiguousarray(p)).permute(2, 0, 1))
                vel.append(_chw((blur(img, sig[i] + grad_step) - p) / grad_step) * (sig[i + 1] - sig[i]))
        pts_t = torch.stack(pts).to(x)
        g = I.gradients(model, pts_t, target.repeat(len(idx)), "prob").double().cpu()
        out -= (g * torch.stack(vel)).view(len(idx), *x.shape).sum(0)
    return out


@V.evaluates_model
def check_pair_blurig(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, max_sigma: float = 50.0, steps: int = 100,
    grad_step: float = 0.01, batch_size: int = 64,
) -> tuple[Agreement, Agreement, Agreement]:
    """PAIR ``BlurIG.GetMask`` vs riemannkit's blurig (right rule, n = steps: PAIR's σ_i = i·max_sigma/steps,
    i < steps, are the α = 1 − i/steps) with (exact velocity, PAIR's forward-difference velocity), and vs
    PAIR's own scipy points and velocity with riemannkit's gradients (isolates the blur's implementation)."""
    from saliency.core import BlurIG

    x = x.float()
    theirs = torch.stack([
        _chw(BlurIG().GetMask(_hwc(x[i]), pair_call_model_function(model, int(target[i])), max_sigma=max_sigma,
                              steps=steps, grad_step=grad_step, batch_size=batch_size))
        for i in range(x.shape[0])
    ])
    exact, fd = _blurig_fd(model, x, target, max_sigma, steps, grad_step, batch_size)
    scipy_pts = _pair_blurig_scipy(model, x, target, max_sigma, steps, grad_step, batch_size)
    f_in = _f(model, x, target)
    f_base = _f(model, P.blur(x, torch.zeros(1, dtype=torch.float64), max_sigma)[0][0], target)
    a = compare_maps("PAIR BlurIG", f"riemannkit blurig (exact γ'), right rule, n={steps}, σ_max={max_sigma:g}", exact, theirs, f_in, f_base)
    b = compare_maps("PAIR BlurIG", f"riemannkit points, PAIR's forward-difference γ' (h={grad_step:g})", fd, theirs, f_in, f_base)
    c = compare_maps("PAIR BlurIG", "PAIR's scipy points and γ', riemannkit's gradients", scipy_pts, theirs, f_in, f_base)
    return a, b, c


def blur_difference(x: torch.Tensor, sigmas: Sequence[float], max_sigma: float = 50.0) -> np.ndarray:
    """Relative L2 difference of riemannkit's blur (kernel support 4·max_sigma) and scipy's
    ``gaussian_filter(mode='constant')`` (support 4σ) per σ, on the first image."""
    from scipy import ndimage

    img = x[0].double().cpu()
    ours, _ = gaussian_blur(img[None], torch.tensor(list(sigmas), dtype=torch.float64), support_sigma=max_sigma)
    out = []
    for k, s in enumerate(sigmas):
        ref = ndimage.gaussian_filter(img.numpy(), sigma=[0, s, s], mode="constant") if s > 0 else img.numpy()
        out.append(float(np.linalg.norm(ours[k, 0].numpy() - ref) / np.linalg.norm(ref)))
    return np.asarray(out)


# ------------------------------------------------------------------------------------------ PAIR Guided IG
@V.evaluates_model
def check_pair_guidedig(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int = 200,
    fraction: float = P.GUIDED_FRACTION, max_dist: float = P.GUIDED_MAX_DIST, batch_size: int = 64,
) -> tuple[Agreement, Agreement]:
    """PAIR ``GuidedIG.GetMask`` (numpy, float64 path, under :func:`numpy2_shims`) vs riemannkit's guidedig
    with the same steps, fraction and max_dist (black baseline), riemannkit run (a) one image at a time, as
    PAIR (so the network sees the same one-image batches and returns bit-identical gradients at identical
    points) and (b) batched over the images (the gradients then differ from PAIR's by float rounding only:
    the convolution kernels sum in another order).  (b) − (a) measures how far rounding-level gradient
    differences move this adaptive path's map."""
    from saliency.core import GuidedIG

    x = x.float()
    with numpy2_shims():
        theirs = torch.stack([
            _chw(GuidedIG().GetMask(_hwc(x[i]).astype(np.float64), pair_call_model_function(model, int(target[i])),
                                    x_steps=steps, fraction=fraction, max_dist=max_dist))
            for i in range(x.shape[0])
        ])
    kw = dict(n=steps, batch_size=batch_size, fraction=fraction, max_dist=max_dist)
    one = [I.attribute(model, x[i : i + 1], "guidedig", target=target[i : i + 1], **kw) for i in range(x.shape[0])]
    attr_one = torch.cat([o.attr for o in one])
    f_in, f_base = torch.cat([o.f_input for o in one]), torch.cat([o.f_baseline for o in one])
    batched = I.attribute(model, x, "guidedig", target=target, **kw)
    setting = f"steps={steps}, fraction={fraction:g}, max_dist={max_dist:g}"
    a = compare_maps("PAIR Guided IG", f"{setting}, one photo per call (as PAIR)", attr_one, theirs, f_in, f_base)
    b = compare_maps("PAIR Guided IG", f"{setting}, photos batched (gradients differ by rounding)",
                     batched.attr, theirs, f_in, f_base)
    return a, b


def gradient_rounding(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Relative L2 difference, per image, of ∇f at x computed in one batch of all images vs one image at a
    time: the float rounding that batch composition alone puts into the gradients."""
    together = I.gradients(model, x, target, "prob").double()
    alone = torch.cat([I.gradients(model, x[i : i + 1], target[i : i + 1], "prob") for i in range(x.shape[0])]).double()
    return ((together - alone).flatten(1).norm(dim=1) / alone.flatten(1).norm(dim=1).clamp_min(1e-300)).cpu().numpy()


# ----------------------------------------------------------------------------------------------- PAIR PIC
class PICAgreement(NamedTuple):
    """SIC/AIC of PAIR's ``compute_pic_metric`` and riemannkit's ``pic_curves`` on the same maps and masks."""

    kind: str  # 'sic' or 'aic'
    auc_ours: np.ndarray  # (B,) NaN where excluded
    auc_ref: np.ndarray  # (B,) NaN where PAIR raised ComputePicMetricError
    max_curve_diff: float  # max |curve_ours − curve_ref| over the images both keep
    same_exclusions: bool  # both exclude the same images


@V.evaluates_model
def check_pair_pic(
    model: nn.Module, x: torch.Tensor, saliency: torch.Tensor, target: torch.Tensor,
    thresholds: Sequence[float] = M.PIC_THRESHOLDS, mask_fraction: float = 0.01, seed: int = 0,
    min_pred_value: float = 0.0, batch_size: int = 64,
) -> tuple[PICAgreement, PICAgreement]:
    """SIC and AIC curves of PAIR ``compute_pic_metric`` vs ``riemannkit.metrics.pic_curves`` (its PAIR
    procedure: random-mask start, re-interpolated bokeh images, WebP information) for the same (B, H, W)
    ranking maps (signed channel sums of ``saliency``) and the same random masks."""
    from saliency.metrics import pic as pair_pic

    x = x.float()
    ref = next(iter(model.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    ours = M.pic_curves(model, x, saliency, target, thresholds, start="random_mask", information="webp",
                        mask_fraction=mask_fraction, seed=seed, min_pred_value=min_pred_value, batch_size=batch_size)
    xq = (x.double() * 255).round() / 255
    _, masks = M.random_mask_start(xq, mask_fraction, seed)  # the masks pic_curves drew from the same seed
    ranking = M.reduce_saliency(saliency, x).cpu().numpy()
    u8 = (x.detach().double().cpu() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for kind, res in (("sic", ours.sic), ("aic", ours.aic)):
        aucs, diffs = [], []
        for i in range(x.shape[0]):
            t = int(target[i])

            def pred(batch, t=t, kind=kind):
                xb = torch.from_numpy(batch).permute(0, 3, 1, 2).to(device=device, dtype=torch.float32) / 255
                with torch.no_grad():
                    logits = model(xb)
                # SIC: softmax probability of the class; AIC: 1 when the top-1 class is still it (PAIR's notebook).
                p = logits.softmax(-1)[:, t] if kind == "sic" else (logits.argmax(-1) == t).float()
                return p.double().cpu().tolist()

            try:
                # PAIR interpolates with griddata per channel: one BLAS thread, as in ours (M.one_blas_thread)
                with numpy2_shims(), M.one_blas_thread():
                    r = pair_pic.compute_pic_metric(u8[i], ranking[i], masks[i].cpu().numpy(), pred, list(thresholds),
                                                    min_pred_value=min_pred_value, num_data_points=1000)
            except pair_pic.ComputePicMetricError:
                aucs.append(math.nan)
                continue
            aucs.append(float(r.auc))
            if bool(res.valid[i]):
                diffs.append(float(np.abs(res.curve_y[i].numpy() - np.asarray(r.curve_y)).max()))
        a_ref = np.asarray(aucs)
        a_ours = res.auc.numpy()
        out.append(PICAgreement(kind, a_ours, a_ref, max(diffs) if diffs else math.nan,
                                bool((np.isnan(a_ref) == np.isnan(a_ours)).all())))
    return out[0], out[1]


# -------------------------------------------------------------------------------------------------- IDGI
def idgi_published(grads: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """IDGI as published (yangruo1226/IDGI ``idgi.py``) for one image: ``grads`` (n, …) and ``preds`` (n,) at
    the path's n points, both ends included; the last gradient is unused and a zero gradient is not guarded."""
    result = np.zeros_like(grads[0])
    for i in range(len(grads) - 1):
        d = preds[i + 1] - preds[i]
        element_product = grads[i] ** 2
        result += element_product * d / np.sum(element_product)
    return result


@V.evaluates_model
def check_idgi(model: nn.Module, x: torch.Tensor, target: torch.Tensor, n: int = 16, batch_size: int = 64) -> Agreement:
    """The published IDGI loop on riemannkit's f and ∇f at α = i/n (i = 0 … n) vs
    ``riemannkit.idgi.idgi_attribute(path='ig', n=n)``."""
    nodes = torch.arange(n + 1, dtype=torch.float64) / n
    b = x.shape[0]
    f = torch.empty(n + 1, b)
    g = torch.empty(n + 1, *x.shape)
    plan = I.make_plan(model, "ig", engine=I.Engine(batch_size=batch_size), nodes=nodes).replace(target=torch.as_tensor(target, device=x.device))
    checks = V.DeviceChecks()
    for p in I.passes(plan, x, whole_rows=True, checks=checks):
        checks.add(torch.isfinite(p.g).all(), I._not_finite)
        f[p.rows] = p.f.detach().cpu().float().view(-1, b)
        g[p.rows] = p.g.detach().cpu().float().view(-1, *x.shape)
    checks.settle()
    theirs = torch.stack([torch.from_numpy(idgi_published(g[:, i].numpy(), f[:, i].numpy())) for i in range(b)])
    ours = idgi_attribute(model, x, "ig", n=n, target=target, batch_size=batch_size)
    return compare_maps("IDGI formula (published loop)", f"IG path, n={n}", ours.attr, theirs, ours.f_input, ours.f_baseline)


def agreement_rows(results: Sequence[Agreement], tol: float = FLOAT32_TOL) -> list[dict]:
    """One table row per :class:`Agreement`: reference, setting, images, rel. L2 median/max, verdict."""
    return [{"reference": r.reference, "setting": r.setting, "images": len(r.rel_l2),
             "rel_l2_median": float(np.median(r.rel_l2)), "rel_l2_max": float(np.max(r.rel_l2)),
             "max_abs": r.max_abs, "scale": r.scale, "verdict": r.verdict(tol)} for r in results]


def agreement_markdown(results: Sequence[Agreement], tol: float = FLOAT32_TOL) -> str:
    """The agreement table as Markdown."""
    lines = ["| reference | setting | images | rel. L2 median | rel. L2 max | max abs / max ref | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in agreement_rows(results, tol):
        lines.append(f"| {r['reference']} | {r['setting']} | {r['images']} | {r['rel_l2_median']:.2e} | "
                     f"{r['rel_l2_max']:.2e} | {r['max_abs'] / max(r['scale'], 1e-300):.2e} | {r['verdict']} |")
    return "\n".join(lines)
