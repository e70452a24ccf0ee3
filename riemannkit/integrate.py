"""The path integral ∫₀¹ ∇f(γ(α)) ⊙ γ'(α) dα, evaluated in batches at any set of alphas.

``attribute`` is the one entry point: a rule name ('left', 'right', 'midpoint', 'trapezoid',
'gausslegendre') with ``n`` nodes, or an explicit sorted schedule ``alphas``: a partition
0 = α_0 < … < α_n = 1 (α_n = 1 implied) on which 'left' (the default: weights α_{i+1} − α_i), 'right',
'midpoint' or 'trapezoid' place their nodes (:func:`schedule_nodes`).  Images × alphas are flattened
into one forward/backward per chunk.
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Iterator, NamedTuple

import numpy as np
import torch
from torch import nn

from . import paths as P
from . import validate as V

RULES = ("left", "right", "midpoint", "trapezoid", "gausslegendre")
OUTPUTS = ("prob", "logit")


class Attribution(NamedTuple):
    """An attribution map with what completeness needs."""

    attr: torch.Tensor  # (B, C, H, W)
    f_input: torch.Tensor  # (B,) f(x)
    f_baseline: torch.Tensor  # (B,) f(γ(0))
    target: torch.Tensor  # (B,) class index
    n_gradients: int  # gradient evaluations per image


# The largest n a rule accepts: past these a request is a typo, not an experiment (Gauss–Legendre's nodes come
# from an n × n eigenproblem, and its nodes stop improving in float64 long before).
MAX_NODES = (100_000, 4096)


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def rule_nodes(rule: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (float64) of a quadrature rule with ``n`` gradient evaluations on [0, 1]."""
    name = str(rule).lower()
    if name not in RULES:
        raise ValueError(f"unknown rule={rule!r}; accepted values: {', '.join(RULES)}")
    n = V.check_count(n, "n", minimum=2 if name == "trapezoid" else 1)
    cap = MAX_NODES[name == "gausslegendre"]
    if n > cap:
        cost = (f"Gauss–Legendre nodes alone need n² × 8 bytes = {_gib(8 * float(n) ** 2)} to compute" if name == "gausslegendre"
                else f"that is n gradient evaluations per image, and n × 8 bytes = {_gib(8 * float(n))} per node array")
        raise ValueError(f"n={n} exceeds the largest accepted value {cap} for rule={name!r}; {cost}")
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
    return select_output(model(x), target, output)


def select_output(logits: torch.Tensor, target: torch.Tensor, output: str = "prob") -> torch.Tensor:
    """f per row of ``logits`` (N, classes): the probability (or logit) of class ``target`` (N,), in float32 or wider."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown output={output!r}; accepted values: {', '.join(OUTPUTS)}")
    V.check_logits(logits, output=output)
    if target.device.type == "cpu":  # free here; on an accelerator prepare() checked it once
        V.check_target(target, target.shape[0], logits.shape[1])
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # mixed precision: the softmax and the sum run in float32
    if output == "prob":
        logits = logits.softmax(-1)
    elif output != "logit":
        raise ValueError(f"unknown output={output!r}; accepted values: {', '.join(OUTPUTS)}")
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


# ---------------------------------------------------------------------------------------------------
# Engine knobs: mixed precision, channels_last, torch.compile, chunk size.  fp32 eager is the default.
AMP_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def amp_dtype_of(amp_dtype) -> torch.dtype | None:
    """The autocast dtype of ``amp_dtype`` (None/'fp32' = full precision, 'bf16', 'fp16' or a torch dtype)."""
    if amp_dtype is None or amp_dtype in ("fp32", "float32", torch.float32):
        return None
    if isinstance(amp_dtype, torch.dtype) and amp_dtype in (torch.bfloat16, torch.float16):
        return amp_dtype
    if isinstance(amp_dtype, str) and amp_dtype.lower() in AMP_DTYPES:
        return AMP_DTYPES[amp_dtype.lower()]
    raise ValueError(
        f"unknown amp_dtype={amp_dtype!r}; accepted values: None or 'fp32' (default), 'bf16', 'fp16', torch.bfloat16, torch.float16"
    )


_COMPILED: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


class Engine(NamedTuple):
    """The speed knobs as one value, accepted as ``engine=`` by attribute, IDGI and Algorithm 1's callers.

    fp32 eager with 64 points per pass by default; results do not depend on the knobs beyond float rounding."""

    batch_size: int | str = 64  # points (images × nodes) per forward/backward, or 'auto' (free GPU memory)
    amp_dtype: str | torch.dtype | None = None  # 'bf16' or 'fp16': autocast around the model
    channels_last: bool = False  # the model's parameters converted in place
    compile: bool | str = False  # True (inductor) or a torch.compile backend, cached per model


def engine_options(engine: Engine | None = None, batch_size=64, amp_dtype=None, channels_last=False, compile=False) -> Engine:
    """One checked :class:`Engine` for a call: ``engine`` when given (the four keywords left at their
    defaults), else the keywords; every knob is checked here, before any work."""
    given = Engine(batch_size, amp_dtype, channels_last, compile)
    if engine is not None:
        if not isinstance(engine, Engine):
            raise ValueError(f"engine must be a riemannkit.Engine(batch_size, amp_dtype, channels_last, compile), got {type(engine).__name__}")
        if given != Engine():
            raise ValueError("pass the speed knobs either as engine=Engine(...) or as the keywords batch_size, amp_dtype, "
                             f"channels_last, compile, not both (got engine={engine} and keywords {given})")
        given = engine
    check_batch_size(given.batch_size)
    amp_dtype_of(given.amp_dtype)
    if not isinstance(given.channels_last, bool):
        raise ValueError(f"channels_last must be True or False, got {given.channels_last!r}")
    return given


def engine_model(model: nn.Module, channels_last: bool = False, compile: bool | str = False) -> nn.Module:
    """The model the engine calls: ``channels_last`` converts its parameters' memory format in place (values
    unchanged); ``compile`` (True = inductor, or a torch.compile backend name) returns a compiled wrapper,
    cached per model and backend so repeated calls do not recompile."""
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be True or False, got {channels_last!r}")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile is False or compile is None:
        return model
    if compile is True:
        backend = "inductor"
    elif isinstance(compile, str) and compile in torch._dynamo.list_backends(exclude_tags=()):
        backend = compile
    else:
        raise ValueError(
            f"compile must be False, True (inductor) or a torch.compile backend name "
            f"({', '.join(torch._dynamo.list_backends(exclude_tags=()))}), got {compile!r}"
        )
    cache = _COMPILED.setdefault(model, {})
    if backend not in cache:
        # dynamic=False: the engine feeds fixed full chunks (the last one padded), so one graph serves all.
        cache[backend] = torch.compile(model, backend=backend, dynamic=False)
    return cache[backend]


def _oom_advice(err: BaseException, n_points: int, device: torch.device) -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError(
        f"out of memory in one forward/backward pass of {n_points} points on {device}: pass a smaller "
        f"batch_size (points, i.e. images x alphas, per pass), e.g. batch_size={max(1, n_points // 2)}, or "
        f"batch_size='auto' to size it from the free memory; amp_dtype='bf16' also halves activations. ({err})"
    )


def values_and_gradients(
    model: nn.Module,
    points: torch.Tensor,
    target: torch.Tensor,
    output: str = "prob",
    amp_dtype=None,
    channels_last: bool = False,
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """f (N,) and ∇f (N, C, H, W) at each point for its class ``target`` (N,) from one forward pass.

    ``amp_dtype`` runs the model under torch.autocast (the input and ∇f stay in the points' dtype);
    ``channels_last`` feeds the points in that memory format.  ``check=False`` skips the finiteness
    check (a host sync) so a caller can check once after its loop (:func:`check_finite`)."""
    amp = amp_dtype_of(amp_dtype)
    with torch.enable_grad():
        pts = points.detach()
        if channels_last:
            pts = pts.contiguous(memory_format=torch.channels_last)
        pts.requires_grad_(True)
        try:
            with torch.autocast(pts.device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
                logits = model(pts)
            f = select_output(logits, target, output)
            (g,) = torch.autograd.grad(f.sum(), pts)
        except torch.OutOfMemoryError as err:
            raise _oom_advice(err, pts.shape[0], pts.device) from err
    if check:
        check_finite(torch.isfinite(g).all())
    return f.detach(), g


def check_finite(ok: torch.Tensor) -> None:
    """Raise on a non-finite gradient; ``ok`` is a boolean tensor accumulated on the device (one sync here)."""
    if not bool(ok):
        raise FloatingPointError("gradient of the model output is not finite (NaN or Inf) at some path point, or the attribution sum overflowed")


def gradients(model: nn.Module, points: torch.Tensor, target: torch.Tensor, output: str = "prob", **engine) -> torch.Tensor:
    """∇f at each point (N, C, H, W) for its class ``target`` (N,); raises on non-finite values."""
    return values_and_gradients(model, points, target, output, **engine)[1]


AUTO_CPU_BATCH = 64  # a CPU has no memory probe; 64 points keep a pass's activations to a few GB at 224²
AUTO_MAX_BATCH = 1024  # GPU cap, so one pass never claims all the free memory of a large card


def fit_batch_size(free_bytes: float, bytes_per_point: float, cap: int, fraction: float = 0.6) -> int:
    """Points per pass that fit in ``fraction`` of ``free_bytes`` at ``bytes_per_point``, in [1, cap]."""
    if bytes_per_point <= 0:
        return int(cap)
    return int(max(1, min(cap, fraction * free_bytes // bytes_per_point)))


def auto_batch_size(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, output: str = "prob", amp_dtype=None, channels_last: bool = False, total: int | None = None
) -> int:
    """A chunk size (points per forward/backward) for ``model`` on images like ``x``: on CUDA, measured
    memory per point (two probe passes of 2 and 6 points, their peak difference) against the free memory;
    on a CPU, AUTO_CPU_BATCH.  Never more than ``total`` points when given."""
    cap = AUTO_MAX_BATCH if total is None else max(1, min(AUTO_MAX_BATCH, int(total)))
    if x.device.type != "cuda":
        return min(AUTO_CPU_BATCH, cap)
    peaks = []
    for p in (2, 6):
        pts = x[:1].expand(p, *x.shape[1:]).contiguous()
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        values_and_gradients(model, pts, target[:1].expand(p), output, amp_dtype, channels_last)
        torch.cuda.synchronize(x.device)
        peaks.append(torch.cuda.max_memory_allocated(x.device) - base)
    per_point = (peaks[1] - peaks[0]) / 4
    free, _ = torch.cuda.mem_get_info(x.device)
    free += torch.cuda.memory_reserved(x.device) - torch.cuda.memory_allocated(x.device)  # cached by the allocator
    return fit_batch_size(free, per_point, cap)


def batched_gradients(model: nn.Module, points: torch.Tensor, target: torch.Tensor, output: str = "prob", batch_size: int = 64) -> torch.Tensor:
    """:func:`gradients` of N points, ``batch_size`` points per forward/backward pass."""
    return torch.cat([gradients(model, p, t, output) for p, t in zip(points.split(batch_size), target.split(batch_size))])


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Predicted class per image (the model in eval mode for the call)."""
    batch_size = check_batch_size(batch_size)
    with torch.no_grad(), V.eval_mode(model):
        return torch.cat([V.check_logits(model(c), c.shape[0], output="logit").argmax(-1) for c in x.split(batch_size)])


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


def check_batch_size(batch_size) -> int | str:
    """``batch_size`` as a Python int >= 1 (numpy integers accepted) or 'auto'; anything else is refused."""
    if isinstance(batch_size, str) and batch_size == "auto":
        return batch_size
    try:
        return V.check_count(batch_size, "batch_size")
    except ValueError:
        raise ValueError(f"batch_size must be a positive integer (points per forward/backward) or 'auto', got {batch_size!r}") from None


def prepare(model: nn.Module, x: torch.Tensor, target, batch_size) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked images on the model's device and dtype, and the checked class index per image (predicted when None).

    Images must be float (B, C, H, W) in [0, 1] and finite; the model must return (N, classes) logits with
    at least 2 classes; ``target`` must be integer class indices in range (:mod:`riemannkit.validate`)."""
    if not callable(model):
        raise ValueError(f"model must be a callable torch module, got {type(model).__name__}")
    x = V.check_images(x)
    batch_size = check_batch_size(batch_size)
    # Inputs follow the model's device and floating dtype (float32 for the shipped models).
    ref = next(iter([*model.parameters(), *model.buffers()]), None) if isinstance(model, nn.Module) else None
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    x = x.to(device=device, dtype=dtype)
    if target is None:
        target = predict(model, x, AUTO_CPU_BATCH if batch_size == "auto" else batch_size)
    elif device.type == "cpu":
        # On a CPU every pass checks the target against the logits (select_output) at no cost.
        target = V.check_target(target, x.shape[0], None, device)
    else:
        # On an accelerator an index out of range would be a device-side assert inside a pass: one image's
        # forward pass gives the number of classes so that the error names ``target`` here.
        with torch.no_grad(), V.eval_mode(model):
            n_classes = V.check_logits(model(x[:1]), 1, output="logit").shape[1]
        target = V.check_target(target, x.shape[0], n_classes, device)
    return x, target


_prepare = prepare  # the name used before it became public


def resolve_batch_size(batch_size, model: nn.Module, x: torch.Tensor, target: torch.Tensor, output: str, total: int, **engine) -> int:
    """``batch_size`` itself, or the :func:`auto_batch_size` for 'auto'."""
    check_batch_size(batch_size)
    if batch_size == "auto":
        return auto_batch_size(model, x, target, output, total=total, **engine)
    return int(batch_size)


class Pass(NamedTuple):
    """One forward/backward pass of :func:`passes` over points start … stop − 1 of the images × nodes
    points, flattened node-major (point p = node p // B, image p % B)."""

    start: int
    stop: int
    rows: slice  # the nodes whose points this pass holds (all of them, or part of the first and last)
    f: torch.Tensor  # (stop − start,) f at the points
    g: torch.Tensor | None  # (stop − start, C, H, W) ∇f at the points (None with grad=False)
    integrand: torch.Tensor | None  # (stop − start, C, H, W) ∇f ⊙ γ'(α) (None with grad=False)


def passes(
    model: nn.Module,
    x: torch.Tensor,
    nodes: torch.Tensor,
    target: torch.Tensor,
    path: str = "ig",
    output: str = "prob",
    batch_size: int = 64,
    amp_dtype=None,
    channels_last: bool = False,
    whole_rows: bool = False,
    pad: bool = False,
    check: bool = False,
    path_kwargs: dict | None = None,
    grad: bool = True,
) -> Iterator[Pass]:
    """The engine: the one loop over the images × nodes points of a closed-form path, ``batch_size`` points
    per forward/backward pass (every pass full but the last), used by every method.

    ``whole_rows`` makes each pass hold whole rows of nodes (max(1, batch_size // B) of them) for consumers
    that difference or combine neighbouring nodes (Algorithm 1, IDGI); ``pad`` fills a short last pass with
    copies of its first point (torch.compile would otherwise compile a second graph); ``check`` checks each
    pass's gradients for NaN/Inf (a host sync: a consumer that sums can check once at the end instead);
    ``grad=False`` takes f only, one forward pass without autograd (``g`` and ``integrand`` are None)."""
    fn = P.path_function(path, **(path_kwargs or {}))
    b, shape = x.shape[0], x.shape[1:]
    a_dev = nodes.to(device=x.device, dtype=x.dtype)
    per = max(1, int(batch_size) // b) * b if whole_rows else int(batch_size)
    for s, e in flat_chunks(len(nodes), b, per):
        a0, a1 = s // b, (e - 1) // b + 1
        pts, vel = fn(x, a_dev[a0:a1])
        lo, hi = s - a0 * b, e - a0 * b
        full = lo == 0 and hi == (a1 - a0) * b
        pts = pts.reshape(-1, *shape)[lo:hi]
        tgt = target.repeat(a1 - a0)[lo:hi]
        m = e - s
        if pad and m < per:
            pts = torch.cat([pts, pts[:1].expand(per - m, *shape)])
            tgt = torch.cat([tgt, tgt[:1].expand(per - m)])
        if not grad:
            with torch.no_grad():
                f = target_output(model, pts, tgt, output)[:m]
            yield Pass(s, e, slice(a0, a1), f, None, None)
            continue
        f, g = values_and_gradients(model, pts, tgt, output, amp_dtype, channels_last, check=check)
        f, g = f[:m], g[:m]
        if full:  # γ'(α) broadcasts over the rows as it is (no copy)
            integrand = (g.view(a1 - a0, b, *shape) * vel).view(m, *shape)
        else:
            integrand = g * torch.broadcast_to(vel, (a1 - a0, b, *shape)).reshape(-1, *shape)[lo:hi]
        yield Pass(s, e, slice(a0, a1), f, g, integrand)


def integrand_chunks(
    model: nn.Module,
    x: torch.Tensor,
    alphas: torch.Tensor,
    target: torch.Tensor,
    path: str = "ig",
    output: str = "prob",
    batch_size: int = 64,
    amp_dtype=None,
    channels_last: bool = False,
    **path_kwargs,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(slice of alphas, g)`` with g = ∇f(γ(α)) ⊙ γ'(α) of shape (a, B, C, H, W), whole rows of
    alphas per pass (for consumers that difference neighbouring alphas, as Algorithm 1)."""
    for p in passes(model, x, alphas, target, path, output, batch_size, amp_dtype, channels_last,
                    whole_rows=True, check=True, path_kwargs=path_kwargs):
        yield p.rows, p.integrand.view(p.rows.stop - p.rows.start, *x.shape)


def flat_chunks(n_alphas: int, n_images: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each pass over the n_alphas × n_images points flattened alpha-major
    (point p = alpha p // n_images, image p % n_images): every pass is full but the last."""
    total = n_alphas * n_images
    for s in range(0, total, batch_size):
        yield s, min(s + batch_size, total)


def add_flat(acc: torch.Tensor, w: torch.Tensor, start: int, vals: torch.Tensor) -> None:
    """acc[image] += w[alpha] · vals for the flattened points start … start + len(vals) (alpha-major).

    A pass may begin and end inside a row of alphas: the partial rows are added by slices, the whole
    rows by one tensordot, so the sum order is fixed (deterministic on a GPU, unlike index_add_)."""
    b, i, n = acc.shape[0], 0, vals.shape[0]
    head = start % b
    if head:
        k = min(b - head, n)
        acc[head : head + k] += w[start // b] * vals[:k]
        i = k
    rows = (n - i) // b
    if rows:
        a0 = (start + i) // b
        acc += torch.tensordot(w[a0 : a0 + rows], vals[i : i + rows * b].reshape(rows, b, *acc.shape[1:]), dims=1)
        i += rows * b
    if i < n:
        acc[: n - i] += w[(start + i) // b] * vals[i:]


def _flat_integral(
    model: nn.Module,
    x: torch.Tensor,
    nodes: torch.Tensor,
    weights: torch.Tensor,
    target: torch.Tensor,
    path: str,
    output: str,
    batch_size: int,
    amp_dtype,
    channels_last: bool,
    pad: bool,
    path_kwargs: dict,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_i w_i ∇f(γ(α_i)) ⊙ γ'(α_i) with the images × alphas points in full passes of ``batch_size``,
    and f at every point (n, B)."""
    b = x.shape[0]
    w = weights.to(device=x.device, dtype=x.dtype)
    attr = torch.zeros_like(x)
    f_all = torch.empty(len(nodes) * b, dtype=x.dtype, device=x.device)
    for p in passes(model, x, nodes, target, path, output, batch_size, amp_dtype, channels_last, pad=pad, path_kwargs=path_kwargs):
        f_all[p.start : p.stop] = p.f
        add_flat(attr, w, p.start, p.integrand)
    # A NaN or Inf in any gradient reaches the weighted sum (Inf·0 and Inf − Inf are NaN), so one check of
    # the (B, C, H, W) result replaces a check of every pass: no host sync and no extra pass over the gradients.
    check_finite(torch.isfinite(attr).all())
    return attr, f_all.view(len(nodes), b)


@V.evaluates_model
def attribute(
    model: nn.Module,
    x: torch.Tensor,
    path: str = "ig",
    rule: str = "left",
    n: int = 16,
    alphas=None,
    target=None,
    output: str = "prob",
    batch_size: int | str = 64,
    amp_dtype=None,
    channels_last: bool = False,
    compile: bool | str = False,
    engine: Engine | None = None,
    **path_kwargs,
) -> Attribution:
    """Path attribution of ``x`` (B, C, H, W in [0, 1]) with a rule of ``n`` nodes or a schedule ``alphas``.

    With ``alphas`` the rule ('left' by default, 'right', 'midpoint', 'trapezoid') is applied on the
    partition the schedule defines (:func:`schedule_nodes`; 'trapezoid' costs n + 1 evaluations) and
    ``n`` is ignored.  Adaptive paths (Guided IG, SAMP) take only the left rule.

    Engine: the images × nodes points go through the model ``batch_size`` at a time (every pass full but
    the last; 'auto' sizes it from the free GPU memory), with no host sync inside the loop.  Speed knobs,
    all off by default: ``amp_dtype`` ('bf16' or 'fp16': autocast around the model; the path, the sum and
    f(x), f(x') stay in float32), ``channels_last`` (converts the model's parameters in place) and
    ``compile`` (True or a backend name: torch.compile, cached per model), or all four as one
    ``engine=Engine(...)`` value.  Results do not depend on
    ``batch_size`` beyond float rounding.  The model runs in eval mode for the call and its training flags
    are restored afterwards (:func:`riemannkit.validate.eval_mode`)."""
    path = P.check_path_name(path)
    if output not in OUTPUTS:
        raise ValueError(f"unknown output={output!r}; accepted values: {', '.join(OUTPUTS)}")
    batch_size, amp_dtype, channels_last, compile = engine_options(engine, batch_size, amp_dtype, channels_last, compile)
    x, target = prepare(model, x, target, batch_size)
    net = engine_model(model, channels_last, compile)
    engine = dict(amp_dtype=amp_dtype, channels_last=channels_last)
    if path in P.ADAPTIVE_PATHS and str(rule).lower() != "left":
        raise ValueError(
            f"path={path!r} is adaptive and takes only rule='left' (with n or a schedule alphas), got rule={rule!r}"
        )
    nodes, weights = quadrature(rule, n, alphas)
    batch_size = resolve_batch_size(batch_size, net, x, target, output, len(nodes) * x.shape[0], **engine)
    if x.shape[0] > batch_size:
        # More images than one pass holds: attribute them a batch at a time.
        return cat_attributions([
            attribute(model, x[sl], path, rule, n, alphas, target[sl], output, batch_size, amp_dtype, channels_last, compile, **kw)
            for sl, kw in image_batches(x, batch_size, path_kwargs)
        ])
    n_grad = len(nodes)
    if path in P.ADAPTIVE_PATHS:
        entry = P.adaptive_path(path, path_kwargs)
        grads, deltas = entry.fn(lambda pts: gradients(net, pts, target, output, **engine), x, nodes, **path_kwargs)
        attr = (grads * deltas).sum(0)
        n_grad = grads.shape[0]
        start = P.check_baseline(x, path_kwargs.get("baseline"))
    else:
        pad = compile is not False and compile is not None and len(nodes) * x.shape[0] > batch_size
        attr, f_nodes = _flat_integral(net, x, nodes, weights, target, path, output, batch_size, amp_dtype, channels_last, pad, path_kwargs)
        start = P.path_function(path, **path_kwargs)(x, torch.zeros(1, dtype=torch.float64))[0][0]
    # f(x) and f(x') in full precision: completeness is judged against the true f.  A full-precision pass
    # that evaluated α = 0 (α = 1) already has f(x') (f(x)) and saves that forward pass.
    full_precision = amp_dtype_of(amp_dtype) is None and path not in P.ADAPTIVE_PATHS
    with torch.no_grad():
        f_in = f_nodes[-1] if full_precision and nodes[-1] == 1 else target_output(model, x, target, output)
        f_base = f_nodes[0] if full_precision and nodes[0] == 0 else target_output(model, start, target, output)
    return Attribution(attr, f_in, f_base, target, n_grad)


def response_along_path(
    model: nn.Module, x: torch.Tensor, path: str, alphas, target=None, output: str = "prob", batch_size: int = 64, **path_kwargs
) -> torch.Tensor:
    """f(γ(α)) of shape (A, B) at each α of a closed-form path ('ig', 'blurig'), for each image's target."""
    x, target = prepare(model, x, target, batch_size)
    a = torch.as_tensor(alphas, dtype=torch.float64)
    batch_size = resolve_batch_size(batch_size, model, x, target, output, len(a) * x.shape[0])
    f = torch.cat([p.f for p in passes(model, x, a, target, path, output, batch_size, whole_rows=True,
                                       path_kwargs=path_kwargs, grad=False)])
    return f.view(len(a), x.shape[0])
