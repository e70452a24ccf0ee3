"""The path integral ∫₀¹ ∇f(γ(α)) ⊙ γ'(α) dα, evaluated in batches at any set of alphas.

``attribute`` is the one entry point: a rule name (any rule of :mod:`riemannkit.quadrature`: 'left',
'right', 'midpoint', 'trapezoid', 'gausslegendre') with ``n`` nodes, or an explicit sorted schedule
``alphas``: a partition 0 = α_0 < … < α_n = 1 (α_n = 1 implied) on which 'left' (the default: weights
α_{i+1} − α_i), 'right', 'midpoint' or 'trapezoid' place their nodes (:func:`schedule_nodes`).

The engine: a call is one :class:`Plan` (the path looked up once, nodes and weights, target, output and
the :class:`Engine` knobs) and one loop, :func:`passes`, that flattens images × nodes into full
forward/backward passes.  f(x) and f(x') come from the same passes (a node at α = 0 or 1, or the end
points as extra rows of a pass), and every check of values (images, baseline, targets, finiteness)
stays on the device until one host sync at the end of the call (:class:`riemannkit.validate.DeviceChecks`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import warnings
import weakref
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch
from torch import nn

from . import paths as P
from . import quadrature as Q
from . import tolerance as T
from . import validate as V

# The quadrature registry's names and functions, under the names riemannkit has always exported.
RULES = Q.RULES
SCHEDULE_RULES = Q.SCHEDULE_RULES
rule_nodes = Q.rule_nodes
schedule_nodes = Q.schedule_nodes
schedule_weights = Q.schedule_weights
check_alphas = Q.check_alphas
OUTPUTS = ("prob", "logit")


class Attribution(NamedTuple):
    """An attribution map with what completeness needs."""

    attr: torch.Tensor  # (B, C, H, W)
    f_input: torch.Tensor  # (B,) f(x)
    f_baseline: torch.Tensor  # (B,) f(γ(0))
    target: torch.Tensor  # (B,) class index
    n_gradients: int  # gradient evaluations per image


class ToleranceAttribution(Attribution):
    """An :class:`Attribution` refined to a tolerance (``attribute(..., tol=...)``): the same five fields (a tuple of
    five, as ever; ``n_gradients`` is the most any image used) and, per image, as attributes:

    ``gradients`` (B,) gradient evaluations used; ``completeness`` (B,) the achieved |Σ attr − Δf| / |Δf|;
    ``map_error`` (B,) the estimated relative L2 map error ε̂ (:mod:`riemannkit.tolerance`); ``hit_n_max`` (B,)
    whether the image stopped at ``n_max`` before meeting ``tol`` (the call warns naming them); ``nodes`` the
    node positions α per image (sorted); ``tol`` and ``n_max``; and ``at_tol``, with a list of tolerances, the
    state at each larger one ({tol: ToleranceAttribution}, the same run passing through them).  Copies made by
    ``_replace`` keep the five fields only."""

    gradients: torch.Tensor | None = None
    completeness: torch.Tensor | None = None
    map_error: torch.Tensor | None = None
    hit_n_max: torch.Tensor | None = None
    nodes: list | None = None
    tol: float | None = None
    n_max: int | None = None
    at_tol: dict | None = None


def check_output(output: str) -> str:
    """``output`` ('prob' or 'logit'), or a ValueError naming the accepted values."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown output={output!r}; accepted values: {', '.join(OUTPUTS)}")
    return output


def target_output(model: nn.Module, x: torch.Tensor, target: torch.Tensor, output: str = "prob") -> torch.Tensor:
    """f(x) per image: softmax probability (or logit) of class ``target``."""
    return select_output(model(x), target, output)


def _pick(logits: torch.Tensor, target: torch.Tensor, output: str) -> torch.Tensor:
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # mixed precision: the softmax and the sum run in float32
    if output == "prob":
        logits = logits.softmax(-1)
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


def select_output(logits: torch.Tensor, target: torch.Tensor, output: str = "prob") -> torch.Tensor:
    """f per row of ``logits`` (N, classes): the probability (or logit) of class ``target`` (N,), in float32 or wider."""
    check_output(output)
    V.check_logits(logits, output=output)
    if target.device.type == "cpu":  # free here; the engine checks its targets on the device instead
        V.check_target(target, target.shape[0], logits.shape[1])
    return _pick(logits, target, output)


def _select_on_device(logits: torch.Tensor, target: torch.Tensor, output: str) -> torch.Tensor:
    """:func:`select_output` without a host sync: the target is clamped into range (an index out of range would be
    a device-side assert), and the engine's :class:`~riemannkit.validate.DeviceChecks` reports it at the end."""
    V.check_logits(logits, target.shape[0], output=output)
    return _pick(logits, target.clamp(0, logits.shape[1] - 1), output)


# ---------------------------------------------------------------------------------------------------
# Engine knobs: mixed precision, channels_last, torch.compile / CUDA graphs, pass size.  fp32 eager is the default.
AMP_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
# torch.compile modes of inductor accepted as compile=...: 'reduce-overhead' captures each pass shape in a CUDA graph.
COMPILE_MODES = ("reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Compile settings whose outputs live in CUDA-graph memory that the next replay overwrites.
CAPTURE = ("reduce-overhead", "max-autotune", "cudagraphs")


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
    compile: bool | str = False  # True (inductor), a torch.compile backend, or an inductor mode ('reduce-overhead': CUDA graphs)


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
    _compile_setting(given.compile)
    return given


def _compile_setting(compile) -> tuple[str, str | None] | None:
    """(backend, mode) of a ``compile`` knob, None for eager; a ValueError names the accepted values."""
    return _compile_setting_of(compile if isinstance(compile, (bool, str)) or compile is None else repr(compile))


@functools.lru_cache(maxsize=64)  # the engine asks per pass; torch._dynamo.list_backends is not free
def _compile_setting_of(compile) -> tuple[str, str | None] | None:
    if compile is False or compile is None:
        return None
    if compile is True:
        return "inductor", None
    if isinstance(compile, str) and compile in COMPILE_MODES:
        return "inductor", compile
    if isinstance(compile, str) and compile in torch._dynamo.list_backends(exclude_tags=()):
        return compile, None
    raise ValueError(
        f"compile must be False, True (inductor), an inductor mode ({', '.join(COMPILE_MODES)}; 'reduce-overhead' "
        f"captures CUDA graphs) or a torch.compile backend name ({', '.join(torch._dynamo.list_backends(exclude_tags=()))}), "
        f"got {compile!r}"
    )


def engine_model(model: nn.Module, channels_last: bool = False, compile: bool | str = False) -> nn.Module:
    """The model the engine calls: ``channels_last`` converts its parameters' memory format in place (values
    unchanged); ``compile`` (True = inductor, an inductor mode such as 'reduce-overhead' = CUDA graphs, or a
    torch.compile backend name) returns a compiled wrapper, cached per model and setting so repeated calls
    do not recompile."""
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be True or False, got {channels_last!r}")
    setting = _compile_setting(compile)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if setting is None:
        return model
    cache = _COMPILED.setdefault(model, {})
    if setting not in cache:
        backend, mode = setting
        # dynamic=False: the engine feeds fixed full passes (the last one padded), so one graph serves all.
        cache[setting] = torch.compile(model, backend=backend, mode=mode, dynamic=False)
    return cache[setting]


def _oom_advice(err: BaseException, n_points: int, device: torch.device) -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError(
        f"out of memory in one forward/backward pass of {n_points} points on {device}: pass a smaller "
        f"batch_size (points, i.e. images x alphas, per pass), e.g. batch_size={max(1, n_points // 2)}, or "
        f"batch_size='auto' to size it from the free memory; amp_dtype='bf16' also halves activations. ({err})"
    )


def _forward(net, pts: torch.Tensor, target: torch.Tensor, output: str, amp, channels_last: bool, grad: bool,
             select: Callable = _select_on_device, capture: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """f (N,) and, with ``grad``, ∇f (N, C, H, W) at each point from one forward (and backward) pass, and the
    model's number of classes."""
    pts = pts.detach()
    if channels_last:
        pts = pts.contiguous(memory_format=torch.channels_last)
    if capture:
        torch.compiler.cudagraph_mark_step_begin()  # a new pass: the graph may reuse the last one's memory
    autocast = torch.autocast(pts.device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    try:
        if not grad:
            with torch.no_grad(), autocast:
                logits = net(pts)
            f = select(logits, target, output)
            return (f.clone() if capture else f), None, logits.shape[1]
        with torch.enable_grad():
            pts.requires_grad_(True)
            with autocast:
                logits = net(pts)
            f = select(logits, target, output)
            (g,) = torch.autograd.grad(f.sum(), pts)
    except torch.OutOfMemoryError as err:
        raise _oom_advice(err, pts.shape[0], pts.device) from err
    f = f.detach()
    return (f.clone(), g.clone(), logits.shape[1]) if capture else (f, g, logits.shape[1])


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
    f, g, _ = _forward(model, points, target, output, amp_dtype_of(amp_dtype), channels_last, True, select=select_output)
    if check:
        check_finite(torch.isfinite(g).all())
    return f, g


def _not_finite() -> None:
    raise FloatingPointError("gradient of the model output is not finite (NaN or Inf) at some path point, or the attribution sum overflowed")


def check_finite(ok: torch.Tensor) -> None:
    """Raise on a non-finite gradient; ``ok`` is a boolean tensor accumulated on the device (one sync here)."""
    if not bool(ok):
        _not_finite()


def gradients(model: nn.Module, points: torch.Tensor, target: torch.Tensor, output: str = "prob", **engine) -> torch.Tensor:
    """∇f at each point (N, C, H, W) for its class ``target`` (N,); raises on non-finite values."""
    return values_and_gradients(model, points, target, output, **engine)[1]


# ----------------------------------------------------------------------------------------- pass sizes
AUTO_CPU_BATCH = 64  # a CPU has no memory probe; 64 points keep a pass's activations to a few GB at 224²
AUTO_MAX_BATCH = 8192  # GPU cap: thousands of points fill an H100/H200; more only adds latency per pass
AUTO_PROBE_POINTS = (4, 12)  # two probe passes: their peak-memory difference is the memory of 8 points
# A pass may hold up to this factor of batch_size points, so that f(x) and f(x') ride in the gradient passes
# (extra rows) instead of costing a pass of their own.
END_SLACK = 1.25


def fit_batch_size(free_bytes: float, bytes_per_point: float, cap: int, fraction: float = 0.6) -> int:
    """Points per pass that fit in ``fraction`` of ``free_bytes`` at ``bytes_per_point``, in [1, cap]."""
    if bytes_per_point <= 0:
        return int(cap)
    return int(max(1, min(cap, fraction * free_bytes // bytes_per_point)))


class DeviceMemory:
    """The memory queries of ``batch_size='auto'``: CUDA's allocator.  A test replaces :data:`MEMORY` with a fake
    to exercise the GPU code path on a CPU."""

    def measures(self, device: torch.device) -> bool:
        """Whether memory can be measured on ``device`` (else 'auto' takes AUTO_CPU_BATCH)."""
        return device.type == "cuda"

    def free_bytes(self, device: torch.device) -> float:
        """Free device memory plus what the caching allocator holds unused."""
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)

    def peak_bytes(self, fn: Callable[[], object], device: torch.device) -> float:
        """Peak memory allocated while ``fn()`` runs, above what was allocated before."""
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base


MEMORY = DeviceMemory()
# Measured bytes per point, per model and (shape, dtype, amp, layout, output, device): probed once per model.
_PER_POINT: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def bytes_per_point(model, x: torch.Tensor, target: torch.Tensor, output: str = "prob", amp_dtype=None, channels_last: bool = False) -> float:
    """Device memory one more point of a forward/backward pass takes (two probe passes, their peak difference),
    measured once per model and setting, then cached."""
    amp = amp_dtype_of(amp_dtype)
    key = (tuple(x.shape[1:]), x.dtype, amp, channels_last, output, str(x.device))
    cache = _PER_POINT.setdefault(model, {})
    if key not in cache:
        peaks = []
        for p in AUTO_PROBE_POINTS:
            pts = x[:1].expand(p, *x.shape[1:]).contiguous()
            tgt = target[:1].expand(p)
            peaks.append(MEMORY.peak_bytes(lambda: _forward(model, pts, tgt, output, amp, channels_last, True), x.device))
        cache[key] = (peaks[1] - peaks[0]) / (AUTO_PROBE_POINTS[1] - AUTO_PROBE_POINTS[0])
    return cache[key]


def auto_batch_size(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, output: str = "prob", amp_dtype=None, channels_last: bool = False, total: int | None = None
) -> int:
    """A pass size (points per forward/backward) for ``model`` on images like ``x``: where :data:`MEMORY` measures
    (CUDA), the points that fit in the free memory at the measured bytes per point (:func:`bytes_per_point`),
    all ``total`` points in one pass when they fit, else a size whose passes may still grow by END_SLACK;
    on a CPU, AUTO_CPU_BATCH.  Never more than ``total`` points when given, nor AUTO_MAX_BATCH."""
    cap = AUTO_MAX_BATCH if total is None else max(1, min(AUTO_MAX_BATCH, int(total)))
    if not MEMORY.measures(x.device):
        return min(AUTO_CPU_BATCH, cap)
    per_point = bytes_per_point(model, x, target, output, amp_dtype, channels_last)
    fit = fit_batch_size(MEMORY.free_bytes(x.device), per_point, AUTO_MAX_BATCH)
    if total is not None and total <= fit:
        return max(1, int(total))
    return max(1, min(cap, int(fit / END_SLACK)))


def check_batch_size(batch_size) -> int | str:
    """``batch_size`` as a Python int >= 1 (numpy integers accepted) or 'auto'; anything else is refused."""
    if isinstance(batch_size, str) and batch_size == "auto":
        return batch_size
    try:
        return V.check_count(batch_size, "batch_size")
    except ValueError:
        raise ValueError(f"batch_size must be a positive integer (points per forward/backward) or 'auto', got {batch_size!r}") from None


def pass_bounds(n_points: int, n_extra: int, batch_size: int, unit: int = 1) -> list[tuple[int, int]]:
    """``(start, stop)`` of each pass over ``n_points`` gradient points followed by ``n_extra`` end points
    (flattened; ``unit`` points per row when passes hold whole rows).

    As many passes as the gradient points alone take at ``batch_size`` points; every pass full but the last;
    the end points fill the last pass's free room, and where they do not fit, the passes grow by at most
    END_SLACK (a pass is added only beyond that), so f(x) and f(x') rarely cost a pass of their own."""
    total = n_points + n_extra
    if total == 0:
        return []
    per = max(1, int(batch_size) // unit)
    cap = max(per, int(END_SLACK * int(batch_size)) // unit)
    rows, extra = n_points // unit, n_extra // unit
    m = max(1, -(-rows // per), -(-(rows + extra) // cap))
    q = max(per, -(-(rows + extra) // m))
    return [(s * unit, min(s + q, rows + extra) * unit) for s in range(0, rows + extra, q)]


# ------------------------------------------------------------------------------------------- the plan
@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """One engine call resolved once: the model to call, the path (looked up once, keyword arguments checked),
    the nodes and weights, the targets, the output and the engine knobs.  Every engine function takes it
    instead of a dozen parameters; :meth:`images` gives the plan of a slice of the images."""

    model: nn.Module  # the caller's model (full-precision f(x), f(x') under mixed precision)
    net: Callable  # what the passes call: the model, or its compiled wrapper
    path: P.ResolvedPath
    nodes: torch.Tensor  # (n,) float64 on the CPU
    weights: torch.Tensor | None  # (n,) float64 on the CPU (None where a consumer weighs the nodes itself)
    rule: str = "left"
    output: str = "prob"
    engine: Engine = Engine()  # checked knobs; batch_size an int once :meth:`prepare` resolved it
    target: torch.Tensor | None = None  # (B,) class per image, set by :meth:`prepare`

    @property
    def amp(self) -> torch.dtype | None:
        """The autocast dtype (None: full precision)."""
        return amp_dtype_of(self.engine.amp_dtype)

    @property
    def batch_size(self) -> int:
        """Points per pass (resolved from 'auto' by :meth:`prepare`)."""
        return int(self.engine.batch_size)

    @property
    def pad(self) -> bool:
        """Pad every short pass to the full size: a compiled graph serves one shape."""
        return _compile_setting(self.engine.compile) is not None

    @property
    def capture(self) -> bool:
        """Whether the compiled model replays CUDA graphs, whose outputs the next pass overwrites."""
        setting = _compile_setting(self.engine.compile)
        return setting is not None and (setting[1] in CAPTURE or setting[0] in CAPTURE)

    def replace(self, **changes) -> "Plan":
        """This plan with ``changes`` (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    def images(self, sl: slice, kwargs: dict) -> "Plan":
        """The plan for images ``sl`` with their slice ``kwargs`` of the path's keyword arguments."""
        return self.replace(target=self.target[sl], path=self.path._replace(kwargs=kwargs))

    def batches(self, x: torch.Tensor) -> list[tuple[slice, "Plan"]]:
        """(slice, plan) per batch of at most batch_size images (one when all fit in a pass)."""
        if x.shape[0] <= self.batch_size:
            return [(slice(0, x.shape[0]), self)]
        return [(sl, self.images(sl, kw)) for sl, kw in image_batches(x, self.batch_size, self.path.kwargs)]

    def evaluate(self, pts: torch.Tensor, target: torch.Tensor, grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """f (and ∇f) at ``pts`` through the engine's model and knobs, and the number of classes."""
        return _forward(self.net, pts, target, self.output, self.amp, self.engine.channels_last, grad, capture=self.capture)

    def full_precision_f(self, pts: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """f at ``pts`` in full precision through the caller's model (no autocast, no graph): f(x), f(x') under amp."""
        return _forward(self.model, pts, target, self.output, None, False, False)[0]

    def prepare(self, x: torch.Tensor, target, checks: V.DeviceChecks, total_per_image: int) -> tuple[torch.Tensor, "Plan"]:
        """Images on the model's device and dtype, and the plan with the targets set and ``batch_size='auto'``
        resolved for ``total_per_image`` points per image; value checks go to ``checks``."""
        x, target = prepare(self.model, x, target, self.engine.batch_size, checks)
        plan = self.replace(target=target)
        if self.engine.batch_size == "auto":
            # probed on the eager model: a compiled one would compile the probes' shapes too
            bs = auto_batch_size(self.model, x, target, self.output, self.engine.amp_dtype, self.engine.channels_last,
                                 total=total_per_image * x.shape[0])
            plan = plan.replace(engine=self.engine._replace(batch_size=bs))
        return x, plan


def make_plan(
    model: nn.Module, path: str = "ig", rule: str = "left", n: int = 16, alphas=None, output: str = "prob",
    engine: Engine | None = None, nodes=None, weights=None, **path_kwargs,
) -> Plan:
    """A checked :class:`Plan` for ``model``: the path looked up once (or given resolved, a :class:`~riemannkit.paths.ResolvedPath`
    with its keyword arguments), the nodes and weights of ``rule`` with ``n`` nodes or on the schedule ``alphas`` (or given
    ``nodes``/``weights``), the output and the engine knobs."""
    if not callable(model):
        raise ValueError(f"model must be a callable torch module, got {type(model).__name__}")
    resolved = path if isinstance(path, P.ResolvedPath) else P.resolve_path(path, path_kwargs)
    check_output(output)
    engine = engine_options(engine)
    if resolved.adaptive and str(rule).lower() != "left":
        raise ValueError(
            f"path={resolved.name!r} is adaptive and takes only rule='left' (with n or a schedule alphas), got rule={rule!r}"
        )
    if nodes is None:
        nodes, weights = Q.nodes_and_weights(rule, n, alphas)
    else:
        nodes = torch.as_tensor(nodes, dtype=torch.float64)
    net = engine_model(model, engine.channels_last, engine.compile) if isinstance(model, nn.Module) else model
    return Plan(model, net, resolved, nodes, weights, str(rule).lower(), output, engine)


# ------------------------------------------------------------------------------------------ the engine
class Pass(NamedTuple):
    """One forward/backward pass of :func:`passes` over points start … stop − 1 of the images × nodes
    points (then the end points), flattened node-major (point p = row p // B, image p % B)."""

    start: int
    stop: int
    rows: slice  # the rows whose points this pass holds (rows ≥ len(nodes) are the end points)
    f: torch.Tensor  # (stop − start,) f at the points
    g: torch.Tensor | None  # (stop − start, C, H, W) ∇f at the points (None with grad=False)
    integrand: torch.Tensor | None  # ∇f ⊙ γ'(α) at the pass's node points (the end points have none; None with grad=False)


def passes(
    plan: Plan,
    x: torch.Tensor,
    nodes: torch.Tensor | None = None,
    ends: torch.Tensor | None = None,
    whole_rows: bool = False,
    grad: bool = True,
    checks: V.DeviceChecks | None = None,
    images=None,
    alongs: list | None = None,
) -> Iterator[Pass]:
    """The engine: the one loop over the images × nodes points of a closed-form path (``plan.nodes`` unless
    ``nodes`` is given), then the rows of ``ends`` (E, B, C, H, W: points such as x and x' whose f the
    caller needs), in passes of ``plan.batch_size`` points (:func:`pass_bounds`), used by every method.

    ``whole_rows`` makes each pass hold whole rows of nodes for consumers that difference or combine
    neighbouring nodes (Algorithm 1, IDGI); with a compiled model a short pass is padded with copies of its
    first point; ``grad=False`` takes f only (``g`` and ``integrand`` are None).  ``checks`` receives the
    targets' range check (on the device, with the first pass's number of classes); no pass syncs the host.

    With ``images`` (P,) the points are P pairs instead of a grid: point p is image ``images[p]`` at α =
    ``nodes[p]`` (each image its own nodes: a refinement to a tolerance), flattened in that order (``rows``
    are then point indices; no ``ends``); ``alongs`` are the per-image paths (:func:`along_per_image`)."""
    nodes = plan.nodes if nodes is None else nodes
    if images is None:
        points = _grid_points(plan, x, nodes, ends, whole_rows, checks)
    else:
        if ends is not None or whole_rows:
            raise ValueError("passes over (image, α) pairs take neither ends nor whole_rows")
        points = _pair_points(plan, x, nodes, images, alongs if alongs is not None else along_per_image(plan, x, checks))
    shape = x.shape[1:]
    q = next(points)  # the largest pass: a short one is padded to it for a compiled model
    for s, stop, rows, pts, tgt, integrand_of in points:
        m = stop - s
        if plan.pad and m < q:
            pts = torch.cat([pts, pts[:1].expand(q - m, *shape)])
            tgt = torch.cat([tgt, tgt[:1].expand(q - m)])
        f, g, n_classes = plan.evaluate(pts, tgt, grad)
        if checks is not None and s == 0:
            checks.target(plan.target, n_classes)
        f = f[:m]
        if not grad:
            yield Pass(s, stop, rows, f, None, None)
            continue
        g = g[:m]
        yield Pass(s, stop, rows, f, g, integrand_of(g))


def _grid_points(plan: Plan, x: torch.Tensor, nodes, ends, whole_rows: bool, checks) -> Iterator:
    """The largest pass size, then (start, stop, rows, points, targets, g -> integrand) per pass of the images × nodes grid."""
    b, shape = x.shape[0], x.shape[1:]
    n, e = len(nodes), 0 if ends is None else ends.shape[0]
    along = plan.path.along(x, checks=checks)
    # non_blocking: a host-to-device copy of pageable memory is staged at once and does not wait on the queue
    a_dev = torch.as_tensor(nodes, dtype=torch.float64).to(dtype=x.dtype).to(device=x.device, non_blocking=True)
    bounds = pass_bounds(n * b, e * b, plan.batch_size, b if whole_rows else 1)
    yield max((hi - lo for lo, hi in bounds), default=0)
    for s, stop in bounds:
        r0, r1 = s // b, (stop - 1) // b + 1
        lo, hi = s - r0 * b, stop - r0 * b
        vel = None
        parts = []
        if r0 < n:
            pts, vel = along(a_dev[r0 : min(r1, n)])
            parts.append(pts.reshape(-1, *shape))
        if r1 > n:
            parts.append(ends[max(r0, n) - n : r1 - n].reshape(-1, *shape))
        pts = (parts[0] if len(parts) == 1 else torch.cat(parts))[lo:hi]
        tgt = plan.target.repeat(r1 - r0)[lo:hi]
        k = max(0, min(stop, n * b) - s)  # node points in this pass
        rows = min(r1, n) - r0

        def integrand_of(g, k=k, rows=rows, lo=lo, vel=vel):
            if k == 0:
                return g[:0]
            if lo == 0 and k == rows * b:  # whole rows: γ'(α) broadcasts over them as it is (no copy)
                return (g[:k].view(rows, b, *shape) * vel).view(k, *shape)
            return g[:k] * torch.broadcast_to(vel, (rows, b, *shape)).reshape(-1, *shape)[lo : lo + k]

        yield s, stop, slice(r0, r1), pts, tgt, integrand_of


def along_per_image(plan: Plan, x: torch.Tensor, checks: V.DeviceChecks | None = None) -> list[P.Along]:
    """The closed-form path of each image alone (its slice of the per-image keyword arguments), bound once."""
    return [plan.path.along(x[sl], kw, checks) for sl, kw in image_batches(x, 1, plan.path.kwargs)]


def _pair_points(plan: Plan, x: torch.Tensor, nodes, images, alongs: list) -> Iterator:
    """The largest pass size, then (start, stop, rows, points, targets, g -> integrand) per pass of (image, α) pairs."""
    shape = x.shape[1:]
    img = np.asarray(images, dtype=np.int64)
    a = torch.as_tensor(nodes, dtype=torch.float64)
    a_dev = a.to(dtype=x.dtype).to(device=x.device, non_blocking=True)
    i_dev = torch.from_numpy(img).to(device=x.device, non_blocking=True)
    bounds = pass_bounds(len(img), 0, plan.batch_size)
    yield max((hi - lo for lo, hi in bounds), default=0)
    for s, stop in bounds:
        # consecutive points of one image: one call of its path for all of them
        cuts = [s, *(s + 1 + np.flatnonzero(img[s + 1 : stop] != img[s : stop - 1])), stop]
        pts, vel = zip(*(alongs[img[lo]](a_dev[lo:hi]) for lo, hi in zip(cuts, cuts[1:])))
        pts, vel = torch.cat(pts).reshape(-1, *shape), torch.cat(vel).reshape(-1, *shape)
        yield s, stop, slice(s, stop), pts, plan.target[i_dev[s:stop]], (lambda g, vel=vel: g * vel)


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


def _flat_integral(plan: Plan, x: torch.Tensor, ends: torch.Tensor | None, checks: V.DeviceChecks) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_i w_i ∇f(γ(α_i)) ⊙ γ'(α_i) over ``plan``'s nodes with the images × nodes points in full passes, and f
    at every point, then at the rows of ``ends`` ((n + E, B))."""
    b, n = x.shape[0], len(plan.nodes)
    e = 0 if ends is None else ends.shape[0]
    w = plan.weights.to(dtype=x.dtype).to(device=x.device, non_blocking=True)
    attr = torch.zeros_like(x)
    f_all = torch.empty((n + e) * b, dtype=x.dtype, device=x.device)
    for p in passes(plan, x, ends=ends, checks=checks):
        f_all[p.start : p.stop] = p.f
        if p.integrand.shape[0]:
            add_flat(attr, w, p.start, p.integrand)
    # A NaN or Inf in any gradient reaches the weighted sum (Inf·0 and Inf − Inf are NaN), so one check of
    # the (B, C, H, W) result replaces a check of every pass, and it waits on the device for the call's end.
    checks.add(torch.isfinite(attr).all(), _not_finite)
    return attr, f_all.view(n + e, b)


def path_start(plan: Plan, x: torch.Tensor, checks: V.DeviceChecks | None = None) -> torch.Tensor:
    """The path's first point γ(0) (B, C, H, W): the baseline x' of a closed-form path, or of an adaptive one."""
    if plan.path.adaptive:
        return P.check_baseline(x, plan.path.kwargs.get("baseline"), checks)
    return plan.path.along(x, checks=checks)(torch.zeros(1, dtype=torch.float64, device=x.device))[0][0]


class AdaptiveRun(NamedTuple):
    """An adaptive path's steps with f at each gradient call's point and at the ends."""

    grads: torch.Tensor  # (steps, B, C, H, W) the gradient at each step's start
    deltas: torch.Tensor  # (steps, B, C, H, W) each step's exact displacement
    values: torch.Tensor  # (calls, B) f at each gradient call's points, in call order
    f_input: torch.Tensor | None  # (B,) f(x) (None with ends=False)
    f_baseline: torch.Tensor | None  # (B,) f(x')


def adaptive_run(plan: Plan, x: torch.Tensor, schedule: torch.Tensor, checks: V.DeviceChecks, ends: bool = True) -> AdaptiveRun:
    """Run ``plan``'s adaptive path (Guided IG, SAMP) at the left-rule ``schedule``: one forward/backward per
    step, f at every step's point from the same pass.  f(x) and f(x') come from the steps that evaluate them
    exactly (the path's ``ends``); an end no step reaches rides as extra rows in the first step's pass (in
    full precision; under mixed precision both ends take one float32 forward of the caller's model)."""
    entry, kw, b = plan.path.entry, plan.path.kwargs, x.shape[0]
    at_x, at_base = entry.ends(len(schedule), **kw) if (ends and entry.ends is not None) else (None, None)
    full = plan.amp is None
    need: list[tuple[str, torch.Tensor]] = []
    if ends:
        if not full or at_x is None:
            need.append(("input", x))
        if not full or at_base is None:
            need.append(("baseline", P.check_baseline(x, kw.get("baseline"), checks)))
    ride = full and bool(need) and b * (1 + len(need)) <= END_SLACK * plan.batch_size
    values: list[torch.Tensor] = []
    extra: dict[str, torch.Tensor] = {}

    def grad_fn(pts: torch.Tensor) -> torch.Tensor:
        first = not values
        if first and ride:
            f, g, n_classes = plan.evaluate(torch.cat([pts, *(p for _, p in need)]), plan.target.repeat(1 + len(need)))
            extra.update((name, f[(j + 1) * b : (j + 2) * b]) for j, (name, _) in enumerate(need))
            f, g = f[:b], g[:b]
        else:
            f, g, n_classes = plan.evaluate(pts, plan.target)
        if first:
            checks.target(plan.target, n_classes)
        # An adaptive path steers by the gradient (and syncs in its own loop): a NaN would derail it, so check now.
        if not bool(torch.isfinite(g).all()):
            checks.settle()  # a bad input (NaN images, an out-of-range target) is named first
            _not_finite()
        values.append(f)
        return g

    grads, deltas = entry.fn(grad_fn, x, schedule, **kw)
    vals = torch.stack(values)
    if not ends:
        return AdaptiveRun(grads, deltas, vals, None, None)
    if need and not ride:
        f = plan.full_precision_f(torch.cat([p for _, p in need]), plan.target.repeat(len(need)))
        extra.update((name, f[j * b : (j + 1) * b]) for j, (name, _) in enumerate(need))
    f_in = extra["input"] if "input" in extra else vals[at_x]
    f_base = extra["baseline"] if "baseline" in extra else vals[at_base]
    return AdaptiveRun(grads, deltas, vals, f_in, f_base)


def _attribute(plan: Plan, x: torch.Tensor, checks: V.DeviceChecks) -> Attribution:
    """:func:`attribute` on images that fit in a pass, with a prepared plan."""
    if plan.path.adaptive:
        run = adaptive_run(plan, x, plan.nodes, checks)
        attr = (run.grads * run.deltas).sum(0)
        checks.add(torch.isfinite(attr).all(), _not_finite)
        return Attribution(attr, run.f_input, run.f_baseline, plan.target, run.grads.shape[0])
    b, n = x.shape[0], len(plan.nodes)
    # f(x) and f(x') in full precision: completeness is judged against the true f.  A rule's node at α = 0
    # (α = 1) gives f(x') (f(x)) from its pass; an end no node reaches rides as extra rows of the passes.
    ends = plan.nodes.numpy()[[0, -1]]  # numpy: no tensor-to-bool conversion (a host sync on an accelerator)
    has_base, has_input = bool(ends[0] == 0), bool(ends[1] == 1)
    full = plan.amp is None
    start = path_start(plan, x, checks) if (not full or not has_base) else None
    rows = [r for r, need in ((x, not has_input), (start, not has_base)) if full and need]
    attr, f_all = _flat_integral(plan, x, torch.stack(rows) if rows else None, checks)
    if full:
        f_in = f_all[n - 1] if has_input else f_all[n]
        f_base = f_all[0] if has_base else f_all[n + len(rows) - 1]
    else:
        f = plan.full_precision_f(torch.cat([x, start]), plan.target.repeat(2))
        f_in, f_base = f[:b], f[b:]
    return Attribution(attr, f_in, f_base, plan.target, n)


def _tol_result(snaps: list[T.Snapshot], f_in: torch.Tensor, f_base: torch.Tensor, target: torch.Tensor,
                tol: float, n_max: int) -> ToleranceAttribution:
    """One :class:`ToleranceAttribution` from the images' snapshots at ``tol``."""
    grads = torch.tensor([s.gradients for s in snaps], dtype=torch.long)
    r = ToleranceAttribution(torch.stack([s.attr for s in snaps]).to(f_in.device), f_in, f_base, target, int(grads.max()))
    r.gradients, r.tol, r.n_max, r.nodes = grads, tol, n_max, [s.nodes for s in snaps]
    r.completeness = torch.tensor([s.completeness for s in snaps], dtype=torch.float64)
    r.map_error = torch.tensor([s.map_error for s in snaps], dtype=torch.float64)
    r.hit_n_max = torch.tensor([s.hit_n_max for s in snaps], dtype=torch.bool)
    return r


def refine(plan: Plan, x: torch.Tensor, checks: V.DeviceChecks, state: T.Refinement) -> T.Refinement:
    """Run a refinement to a tolerance (:class:`riemannkit.tolerance.Refinement`) of the images ``x`` through the engine:
    each round, the new nodes of every unfinished image go through :func:`passes` together (full passes), then
    :meth:`~riemannkit.tolerance.Refinement.update` takes one host sync to decide the next round."""
    alongs = along_per_image(plan, x, checks)
    while state.active:
        imgs, alphas = state.wanted()
        for p in passes(plan, x, torch.from_numpy(alphas), checks=checks, images=imgs, alongs=alongs):
            im, al = imgs[p.start : p.stop], alphas[p.start : p.stop]
            state.add(im, al, p.integrand, p.f, p.g, _left_limits(alongs, im, al, p.g, state.breaks))
        state.update(checks)
    return state


def _left_limits(alongs: list, images: np.ndarray, alphas: np.ndarray, g: torch.Tensor, breaks: frozenset) -> dict[int, torch.Tensor]:
    """{row: ∇f ⊙ γ'(α⁻)} at the rows whose α is a break of the path (its velocity jumps there): the velocity of the
    segment that ends at α (the path at the next float below α), times the gradient already computed."""
    out = {}
    for r in np.flatnonzero(np.isin(alphas, list(breaks))) if breaks else ():
        a = torch.tensor(float(alphas[r]), dtype=g.dtype)
        below = torch.nextafter(a, torch.zeros((), dtype=g.dtype)).reshape(1).to(g.device)
        _, vel = alongs[int(images[r])](below)
        out[int(r)] = g[r] * vel.reshape(g.shape[1:])
    return out


def tolerance_plan(model, x, path, rule, n, alphas, target, output, knobs: Engine, tol, n_max, path_kwargs: dict,
                   checks: V.DeviceChecks) -> tuple[torch.Tensor, Plan, tuple[float, ...], int, "np.ndarray"]:
    """The checked set-up of a call with ``tol``: (images, plan, tolerances (decreasing), n_max, starting panel ends)."""
    tols = T.check_tol(tol)
    resolved = P.resolve_path(path, path_kwargs)
    if resolved.adaptive:
        raise ValueError(f"path={resolved.name!r} is adaptive (its path depends on the gradients along it), so tol= cannot "
                         f"refine it; tol= is accepted on the closed-form paths: {', '.join(P.CLOSED_FORM_PATHS)}; "
                         f"for {resolved.name!r} pass n or alphas")
    rule = T.check_tol_rule("simpson" if rule is None else rule)
    plan = make_plan(model, resolved, rule, T.DEFAULT_N if n is None else n, alphas, output, knobs)
    ends = T.starting_ends(n, alphas, plan.path.breaks())
    start = len(T.panel_weights(ends)[0])
    n_max = T.check_n_max(n_max, start)
    # batch_size='auto' sizes passes for the most points an image may take (a round's passes then stay full)
    x, plan = plan.prepare(x, target, checks, total_per_image=n_max)
    return x, plan, tols, n_max, ends


def warn_n_max(result: ToleranceAttribution, what: str = "") -> None:
    """Warn, naming them, about the images that stopped at n_max before meeting tol (never a silent stop)."""
    hit = torch.nonzero(result.hit_n_max).flatten().tolist()
    if hit:
        warnings.warn(
            f"{what}image(s) {hit} reached n_max={result.n_max} gradient evaluations before meeting tol={result.tol}: "
            f"estimated map error {[round(float(v), 4) for v in result.map_error[hit]]}, completeness error "
            f"{[round(float(v), 4) for v in result.completeness[hit]]}; their maps are returned as they stand "
            f"(raise n_max, or tol)", RuntimeWarning, stacklevel=3)


def _attribute_to_tol(model, x, path, rule, n, alphas, target, output, knobs: Engine, tol, n_max, path_kwargs: dict,
                      keep_grad: bool = False, finish=None) -> ToleranceAttribution:
    """:func:`attribute` with ``tol``: a refinement per batch of images, the results and snapshots joined."""
    checks = V.DeviceChecks()
    x, plan, tols, n_max, ends = tolerance_plan(model, x, path, rule, n, alphas, target, output, knobs, tol, n_max,
                                                path_kwargs, checks)
    snaps, f_in, f_base = [], [], []
    for sl, p in plan.batches(x):
        xb = x[sl]
        state = T.Refinement(xb.shape[0], ends, tols, n_max, keep_grad, finish, p.path.breaks())
        if p.amp is not None:  # f(x), f(x') in full precision: completeness is judged against the true f
            f = p.full_precision_f(torch.cat([xb, path_start(p, xb, checks)]), p.target.repeat(2))
            fi, fb = f[: xb.shape[0]], f[xb.shape[0] :]
            state.delta_f = (fi - fb).double().cpu().numpy()
        refine(p, xb, checks, state)
        if p.amp is None:
            fi = torch.tensor([state.f[i][1.0] for i in range(xb.shape[0])], dtype=x.dtype).to(x.device)
            fb = torch.tensor([state.f[i][0.0] for i in range(xb.shape[0])], dtype=x.dtype).to(x.device)
        snaps += state.snapshots
        f_in.append(fi)
        f_base.append(fb)
    checks.settle()
    f_in, f_base = torch.cat(f_in), torch.cat(f_base)
    at = {t: _tol_result([s[t] for s in snaps], f_in, f_base, plan.target, t, n_max) for t in tols}
    result = at.pop(tols[-1])
    result.at_tol = at
    warn_n_max(result)
    return result


@V.evaluates_model
def attribute(
    model: nn.Module,
    x: torch.Tensor,
    path: str = "ig",
    rule: str | None = None,
    n: int | None = None,
    alphas=None,
    target=None,
    output: str = "prob",
    batch_size: int | str = 64,
    amp_dtype=None,
    channels_last: bool = False,
    compile: bool | str = False,
    engine: Engine | None = None,
    tol: float | list[float] | None = None,
    n_max: int | None = None,
    **path_kwargs,
) -> Attribution:
    """Path attribution of ``x`` (B, C, H, W in [0, 1]) with a rule of ``n`` nodes (default 'left', 16) or a schedule
    ``alphas``, or refined per image to a tolerance ``tol``.

    With ``alphas`` the rule ('left' by default, 'right', 'midpoint', 'trapezoid', 'simpson') is applied on the
    partition the schedule defines (:func:`schedule_nodes`; 'trapezoid' costs n + 1 evaluations, 'simpson'
    2n + 1) and ``n`` is ignored.  Adaptive paths (Guided IG, SAMP) take only the left rule.

    **To a tolerance** (``tol`` in (0, 1), e.g. 0.05): per image, adaptive Simpson on [0, 1]
    (:mod:`riemannkit.tolerance`) bisects the panels where the error is largest, reusing every gradient computed,
    until both the estimated relative L2 map error and the completeness error |Σ attr − Δf| / |Δf| are below
    ``tol``, or the image has used ``n_max`` gradient evaluations (default 1024; the call then warns, naming
    it).  The starting level is rule 'simpson' (the default with tol; no other rule is refined) with ``n`` nodes
    (odd, default 17) or a schedule ``alphas`` whose intervals are the first panels (the manifold path's knots
    are added as panel ends).  Returns a :class:`ToleranceAttribution`: the map with the gradients used, the
    achieved completeness and estimated map error per image, and which images hit ``n_max``; ``tol`` may be a
    list (the run stops at the smallest and keeps the state at each: ``at_tol``).  Closed-form paths only.

    Engine: the images × nodes points go through the model ``batch_size`` at a time (every pass full but
    the last; 'auto' sizes it from the free GPU memory), f(x) and f(x') from the same passes (a pass may
    hold up to a quarter more points for them), and one host sync per call for every check.  Speed knobs,
    all off by default: ``amp_dtype`` ('bf16' or 'fp16': autocast around the model; the path, the sum and
    f(x), f(x') stay in float32), ``channels_last`` (converts the model's parameters in place) and
    ``compile`` (True, an inductor mode such as 'reduce-overhead' (CUDA graphs), or a backend name:
    torch.compile, cached per model), or all four as one ``engine=Engine(...)`` value.  Results do not
    depend on ``batch_size`` beyond float rounding.  The model runs in eval mode for the call and its
    training flags are restored afterwards (:func:`riemannkit.validate.eval_mode`)."""
    knobs = engine_options(engine, batch_size, amp_dtype, channels_last, compile)
    if tol is not None:
        return _attribute_to_tol(model, x, path, rule, n, alphas, target, output, knobs, tol, n_max, path_kwargs)
    if n_max is not None:
        raise ValueError(f"n_max={n_max!r} limits a refinement to a tolerance: pass it with tol= (e.g. tol=0.05), or leave it None")
    plan = make_plan(model, path, "left" if rule is None else rule, 16 if n is None else n, alphas, output, knobs, **path_kwargs)
    checks = V.DeviceChecks()
    x, plan = plan.prepare(x, target, checks, total_per_image=len(plan.nodes) + 2)
    result = cat_attributions([_attribute(p, x[sl], checks) for sl, p in plan.batches(x)])
    checks.settle()
    return result


def integrand_chunks(plan: Plan, x: torch.Tensor, nodes: torch.Tensor | None = None,
                     checks: V.DeviceChecks | None = None) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(slice of nodes, g)`` with g = ∇f(γ(α)) ⊙ γ'(α) of shape (a, B, C, H, W), whole rows of nodes per
    pass (for consumers that difference neighbouring alphas, as Algorithm 1).  Each pass's finiteness goes to
    ``checks``; without it, to checks of its own settled after the last pass."""
    own = checks is None
    checks = V.DeviceChecks() if own else checks
    for p in passes(plan, x, nodes, whole_rows=True, checks=checks):
        checks.add(torch.isfinite(p.integrand).all(), _not_finite)
        yield p.rows, p.integrand.view(p.rows.stop - p.rows.start, *x.shape)
    if own:
        checks.settle()


def response_along_path(
    model: nn.Module, x: torch.Tensor, path: str, alphas, target=None, output: str = "prob", batch_size: int = 64, **path_kwargs
) -> torch.Tensor:
    """f(γ(α)) of shape (A, B) at each α of a closed-form path ('ig', 'blurig'), for each image's target."""
    a = torch.as_tensor(alphas, dtype=torch.float64)
    plan = make_plan(model, path, output=output, engine=Engine(batch_size=batch_size), nodes=a, **path_kwargs)
    checks = V.DeviceChecks()
    x, plan = plan.prepare(x, target, checks, total_per_image=len(a))
    f = torch.cat([p.f for p in passes(plan, x, whole_rows=True, grad=False, checks=checks)])
    checks.settle()
    return f.view(len(a), x.shape[0])


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
    if len(parts) == 1:
        return parts[0]
    return Attribution(*(torch.cat([getattr(p, f) for p in parts]) for f in Attribution._fields[:4]), parts[0].n_gradients)


def prepare(model: nn.Module, x: torch.Tensor, target, batch_size, checks: V.DeviceChecks | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked images on the model's device and dtype, and the checked class index per image (predicted when None).

    Images must be float (B, C, H, W) in [0, 1] and finite; the model must return (N, classes) logits with
    at least 2 classes; ``target`` must be integer class indices in range (:mod:`riemannkit.validate`).
    With ``checks`` (the engine's calls) the value checks of the images and the targets' range wait on the
    device for :meth:`~riemannkit.validate.DeviceChecks.settle` (no host sync, no forward pass here);
    without it everything is checked now."""
    if not callable(model):
        raise ValueError(f"model must be a callable torch module, got {type(model).__name__}")
    x = V.check_images(x) if checks is None else V.check_image_form(x)
    batch_size = check_batch_size(batch_size)
    # Inputs follow the model's device and floating dtype (float32 for the shipped models).
    ref = next(iter([*model.parameters(), *model.buffers()]), None) if isinstance(model, nn.Module) else None
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    x = x.to(device=device, non_blocking=True)  # pageable host memory is staged at once: no wait on the queue
    if checks is not None:
        checks.images(x)  # before the cast: the values the caller passed
    x = x.to(dtype=dtype)
    if target is None:
        target = predict(model, x, AUTO_CPU_BATCH if batch_size == "auto" else batch_size)
    elif checks is not None:
        target = V.check_target(target, x.shape[0], None, device)  # the range: on the device, in the first pass
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
