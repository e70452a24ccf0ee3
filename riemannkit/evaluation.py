"""Evaluate saliency methods (IG, BlurIG, Guided IG, each ± IDGI) over metrics, models and step counts.

A method name is a registered path ('ig', 'blurig', 'guidedig', 'samp', …) optionally followed by '+idgi'.  A plain
method is the left Riemann sum  Σ_j g_j ⊙ (γ(α_{j+1}) − γ(α_j))  (closed-form paths: g_j = ∇f(γ(α_j)) ⊙ γ'(α_j)
times Δα_j), its IDGI twin  Σ_j g_j ⊙ g_j Δf_j / ||g_j||²  (riemannkit.idgi).  Both need f and ∇f at the
same n points, so :func:`method_maps` computes each path once and returns both maps from the same n
gradient evaluations per image.  :func:`metric_table` scores any set of maps on insertion (probability
and probability ratio), deletion, PIC (SIC / AIC with a WebP or MS-SSIM information axis) and
completeness; :func:`step_sweep` repeats both over step counts and schedules.
"""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

import torch
from torch import nn

from . import integrate as I
from . import metrics as M
from . import paths as P
from . import idgi as ID
from . import scoring as S
from . import validate as V

CONTROL_LABELS = {"gradxinput": "Gradient × input", "smoothgrad": "SmoothGrad"}
# The one label set of the book's tables and figures, read live from the path registry (a path registered later, e.g.
# 'manifold' when riemannkit.manifold is imported, shows too): a path's short name, '+IDGI' for its IDGI twin (the
# spelling the stored results use as keys, e.g. results/adaptive_full_cpu.json), and the two non-path controls.
LABELS = V.LiveMapping(lambda: {
    **{k: v for p, label in P.PATH_LABELS.items() for k, v in ((p, label), (p + "+idgi", label + "+IDGI"))},
    **CONTROL_LABELS,
})
# Every method: a registered path or its '+idgi' twin (the labelled names less the controls).
METHOD_NAMES = V.LiveNames(lambda: tuple(m for m in LABELS if m not in CONTROL_LABELS))
# The study's methods (the default of method_maps): the paths that need nothing but the model and the images, each
# with its IDGI twin.
METHODS = ("ig", "ig+idgi", "blurig", "blurig+idgi", "guidedig", "guidedig+idgi", "samp", "samp+idgi")
# The row order of the IDGI reproducibility study's Tables 1–3.
STUDY_ORDER = ("ig", "ig+idgi", "guidedig", "guidedig+idgi", "blurig", "blurig+idgi")
# The study's Guided IG: fraction 0.5, max_dist 1.0 in raw [0, 1] pixel space (PAIR: 0.25, 0.02).
STUDY_PATH_KWARGS = {"guidedig": {"fraction": 0.5, "max_dist": 1.0}}
# The metrics and their direction live in the one registry, riemannkit.scoring (read live: a metric registered there
# shows here too); the tables' labels are scoring.METRIC_LABELS.
METRICS = S.METRICS
LOWER_IS_BETTER = S.LOWER_IS_BETTER


def parse_method(method: str) -> tuple[str, bool]:
    """('ig', False) for 'ig', ('ig', True) for 'ig+idgi'; ValueError naming the accepted values."""
    name = str(method).lower().replace(" ", "")
    if name not in METHOD_NAMES:
        raise ValueError(f"unknown method={method!r}; accepted values: {', '.join(METHOD_NAMES)}")
    path, _, suffix = name.partition("+")
    return path, suffix == "idgi"


def _check_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str) or len(methods) == 0:
        raise ValueError(f"methods must be a non-empty list of method names from {', '.join(METHOD_NAMES)}, got {methods!r}")
    names = []
    for m in methods:
        parse_method(m)
        names.append(str(m).lower().replace(" ", ""))
    if len(set(names)) != len(names):
        raise ValueError(f"methods holds duplicates: {list(methods)}")
    return names


def _alphas_for(alphas, path: str):
    if alphas is None or not isinstance(alphas, Mapping):
        return alphas
    if path not in alphas:
        raise ValueError(f"alphas is a dict of schedules per path but has no entry for path={path!r} (keys: {sorted(alphas)})")
    return alphas[path]


def _check_path_kwargs(path_kwargs: Mapping[str, Mapping] | None) -> dict:
    path_kwargs = dict(path_kwargs or {})
    bad = set(path_kwargs) - set(P.PATH_NAMES)
    if bad:
        raise ValueError(f"path_kwargs has unknown path(s) {sorted(bad)}; accepted values: {', '.join(P.PATH_NAMES)}")
    return path_kwargs


@V.evaluates_model
def method_maps(
    model: nn.Module,
    x: torch.Tensor,
    methods: Sequence[str] = METHODS,
    n: int = 16,
    alphas=None,
    target=None,
    output: str = "prob",
    batch_size: int = 64,
    path_kwargs: Mapping[str, Mapping] | None = None,
) -> dict[str, I.Attribution]:
    """{method: Attribution} for methods such as 'ig', 'ig+idgi', 'blurig+idgi', 'guidedig'.

    ``n`` left-rule steps, or ``alphas``: one schedule for every path or a dict {path: schedule}.
    Each path is computed once: a method and its '+idgi' twin share their gradient evaluations.
    ``path_kwargs``: {path: kwargs}, e.g. :data:`STUDY_PATH_KWARGS`.
    """
    names = _check_methods(methods)
    path_kwargs = _check_path_kwargs(path_kwargs)
    x, target = I.prepare(model, x, target, batch_size)
    out: dict[str, I.Attribution] = {}
    for path in dict.fromkeys(parse_method(m)[0] for m in names):
        plain, idgi = ID.path_and_idgi(
            model, x, path, n, _alphas_for(alphas, path), target, output, batch_size, **path_kwargs.get(path, {})
        )
        out[path], out[path + "+idgi"] = plain, idgi
    return {m: out[m] for m in names}


@V.evaluates_model
def sweep_maps(
    model: nn.Module,
    x: torch.Tensor,
    methods: Sequence[str],
    n_steps: Sequence[int],
    schedules: Mapping[str, Mapping[int, Sequence[float]]] | None = None,
    target=None,
    output: str = "prob",
    batch_size: int = 64,
    path_kwargs: Mapping[str, Mapping] | None = None,
) -> dict[int, dict[str, I.Attribution]]:
    """{n: {method: Attribution}} for each step count n in ``n_steps``: linear left-rule points i/n, or ``schedules``
    {path: {n: alphas}} (e.g. RiemannOpt's); points shared between step counts are computed once."""
    names = _check_methods(methods)
    steps = _check_steps(n_steps)
    path_kwargs = _check_path_kwargs(path_kwargs)
    x, target = I.prepare(model, x, target, batch_size)
    out: dict[int, dict[str, I.Attribution]] = {n: {} for n in steps}
    for path in dict.fromkeys(parse_method(m)[0] for m in names):
        if schedules is None:
            scheds = [I.rule_nodes("left", n)[0] for n in steps]
        else:
            if path not in schedules or any(n not in schedules[path] for n in steps):
                have = sorted(schedules.get(path, {})) if isinstance(schedules, Mapping) else None
                raise ValueError(f"schedules must hold a schedule for path={path!r} and every n in {steps}; it has n={have}")
            scheds = [schedules[path][n] for n in steps]
        res = ID.path_and_idgi_schedules(model, x, path, scheds, target, output, batch_size, **path_kwargs.get(path, {}))
        for n, (plain, idgi) in zip(steps, res):
            out[n][path], out[n][path + "+idgi"] = plain, idgi
    return {n: {m: maps[m] for m in names} for n, maps in out.items()}


def _check_steps(n_steps: Sequence[int]) -> list[int]:
    try:
        ok = not isinstance(n_steps, str) and len(n_steps) > 0 and all(int(n) == n and n >= 1 for n in n_steps)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"n_steps must be a non-empty list of positive integers, got {n_steps!r}")
    out = [int(n) for n in n_steps]
    if len(set(out)) != len(out):
        raise ValueError(f"n_steps holds duplicates: {list(n_steps)}")
    return out


def _map_of(m) -> torch.Tensor:
    return m.attr if isinstance(m, I.Attribution) else torch.as_tensor(m)


@V.evaluates_model
def metric_table(
    model: nn.Module,
    x: torch.Tensor,
    maps: Mapping[str, I.Attribution | torch.Tensor],
    metrics: Sequence[str] = METRICS,
    target=None,
    steps: int = 20,
    insertion_start: str = "blur",
    reduce: str = "sum",
    thresholds=M.PIC_THRESHOLDS,
    pic_start: str | Mapping[str, str] = "blur",
    min_pred_value: float = 0.8,
    seed: int = 0,
    batch_size: int = 64,
    max_pairs: int = 32,
    per_image_curves: bool = False,
) -> dict[str, dict[str, dict]]:
    """{method: {metric: {'value', 'per_image', 'n_valid'[, 'curve']}}} for maps (B, C, H, W) of images x.

    Metrics (:data:`METRICS`, read from the registry :mod:`riemannkit.scoring`, so a metric registered there is
    accepted here too): insertion AUC of p and of p / p(x) (``insertion_start`` as
    :func:`riemannkit.metrics.insertion_deletion`: 'blur' = blur_image(x, 20), the default, or 'black', as the
    study's and RiemannOpt's scripts), deletion AUC (towards black), SIC / AIC with a WebP or MS-SSIM axis (``pic_start`` 'blur': pixels pasted onto
    blur_image(x, 20), as the IDGI study; 'random_mask': PAIR's re-interpolated bokeh images, seeded
    by ``seed``, the same for every method; or a dict {'webp': …, 'msssim': …}; aggregate: SIC median, AIC mean over the valid images, NaN
    if none) and the completeness error (needs Attributions).
    ``value`` is the mean over images (PIC: the AUC of the aggregate curve).  Pixels are ranked by
    ``reduce`` ('sum': signed channel sum, 'abs_sum': Σ_c |·|); the maps of several methods are scored
    together, up to ``max_pairs`` (method, image) pairs per call (at least one method's B images): their images go
    through the model ``batch_size`` at a time, so a large device takes large values of both.
    ``per_image_curves`` adds each image's curve to the insertion and deletion records ('per_image_curves', (B, steps + 1)).
    """
    if not isinstance(maps, Mapping) or len(maps) == 0:
        raise ValueError("maps must be a non-empty dict {method: Attribution or (B, C, H, W) tensor}")
    metrics = S.check_metrics(metrics)
    if insertion_start not in M.INSERTION_STARTS:
        raise ValueError(f"unknown insertion_start={insertion_start!r}; accepted values: {', '.join(M.INSERTION_STARTS)}")
    if reduce not in M.REDUCES:
        raise ValueError(f"unknown reduce={reduce!r}; accepted values: {', '.join(M.REDUCES)}")
    starts = dict(pic_start) if isinstance(pic_start, Mapping) else {"webp": pic_start, "msssim": pic_start}
    if set(starts) != set(M.PIC_INFORMATION) or any(v not in M.PIC_STARTS for v in starts.values()):
        raise ValueError(
            f"unknown pic_start={pic_start!r}; accepted values: {', '.join(M.PIC_STARTS)}, or a dict "
            f"{{'webp': …, 'msssim': …}} of them"
        )
    names = list(maps)
    if target is None:
        given = [m.target for m in maps.values() if isinstance(m, I.Attribution)]
        target = given[0] if given else None
    x, target = I.prepare(model, x, target, batch_size)
    b = x.shape[0]
    sal = []
    needs = S.needs_attribution(metrics)
    for name in names:
        s = _map_of(maps[name]).to(device=x.device)
        if s.shape[0] != b:
            raise ValueError(f"maps[{name!r}] has {s.shape[0]} maps for {b} images")
        sal.append(s)
        if needs and not isinstance(maps[name], I.Attribution):
            raise ValueError(f"metric {needs[0]!r} needs an Attribution (with f(x) and f(x')) for maps[{name!r}], got a tensor")
    max_pairs = V.check_count(max_pairs, "max_pairs")
    options = S.Options(steps, insertion_start, reduce, thresholds, tuple(starts.items()), min_pred_value, seed, batch_size,
                        per_image_curves)
    table: dict[str, dict[str, dict]] = {}
    # (method, image) pairs are scored together, method-major, at most ``max_pairs`` per call.
    group = max(1, max(b, max_pairs) // b)
    for g0 in range(0, len(names), group):
        part = slice(g0, g0 + group)
        batch = S.Batch(model, x, target, names[part], [maps[n] for n in names[part]], sal[part], options)
        table.update(S.score_batch(batch, metrics))
    return table


@V.evaluates_model
def step_sweep(
    model: nn.Module,
    x: torch.Tensor,
    methods: Sequence[str],
    n_steps: Sequence[int],
    schedules: Mapping[str, Mapping[int, Sequence[float]]] | None = None,
    metrics: Sequence[str] = ("insertion_prob", "insertion_ratio", "deletion", "completeness"),
    target=None,
    batch_size: int = 64,
    path_kwargs: Mapping[str, Mapping] | None = None,
    **metric_kwargs,
) -> dict[int, dict[str, dict[str, dict]]]:
    """{n: metric_table} for each step count n in ``n_steps`` (linear points or ``schedules`` {path: {n: alphas}}).

    'completeness' is reported for the plain methods only: IDGI's error is 0 by construction.
    ``metric_kwargs`` go to :func:`metric_table` (``steps`` = insertion/deletion points, insertion_start, reduce, …).
    """
    x, target = I.prepare(model, x, target, batch_size)
    maps = sweep_maps(model, x, methods, n_steps, schedules, target, batch_size=batch_size, path_kwargs=path_kwargs)
    out = {}
    for n, m in maps.items():
        scored = [k for k in metrics if k != "completeness"]
        table = metric_table(model, x, m, scored, target, batch_size=batch_size, **metric_kwargs) if scored else {k: {} for k in m}
        for name, row in table.items():
            if "completeness" in metrics and not parse_method(name)[1]:
                row["completeness"] = S.completeness_record(m[name])
        out[n] = table
    return out


# ------------------------------------------------------------------------------------- labelled maps
# The IDGI and stability chapters key every map by its label ('IG', 'IG+IDGI', …), in the study's order.
def method_labels(paths: Sequence[str]) -> list[str]:
    """Row labels 'IG', 'IG+IDGI', 'BlurIG', … (:data:`LABELS`) in the study's order for the given paths."""
    return [LABELS[m] for p in paths for m in (P.check_path_name(p), P.check_path_name(p) + "+idgi")]


def all_method_maps(
    model: nn.Module, x: torch.Tensor, paths: list[str] = ("ig", "blurig", "guidedig"), n: int = 16,
    target=None, output: str = "prob", batch_size: int = 64, path_kwargs: dict | None = None,
) -> dict[str, I.Attribution]:
    """{'IG': …, 'IG+IDGI': …, 'BlurIG': …, …}: each path's left-rule map and its IDGI map at n steps."""
    if isinstance(paths, str) or not len(paths):
        raise ValueError(f"paths must be a non-empty list of path names ({', '.join(P.PATH_NAMES)}), got {paths!r}")
    names = [P.check_path_name(p) for p in paths]
    maps = method_maps(model, x, [m for p in names for m in (p, p + "+idgi")], n, None, target, output,
                       batch_size, path_kwargs)
    return {LABELS[k]: v for k, v in maps.items()}


def jpeg_stability_table(
    model: nn.Module, x: torch.Tensor, paths: list[str] = ("ig", "blurig", "guidedig"), n: int = 16,
    quality: int = 75, target=None, output: str = "prob", batch_size: int = 64, reduce: str = "sum",
    path_kwargs: dict | None = None,
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, I.Attribution]]:
    """The study's Table 5: per method, MSE, −ln MSE and relative error (B,) between the maps of x and of its JPEG copy.

    Both copies are 8-bit and explained for the clean image's class (``target``, default its top-1);
    the maps of all methods come from one :func:`all_method_maps` call on [x; JPEG(x)], and the MSE from
    :func:`riemannkit.metrics.jpeg_stability` (sum-normalised maps).  Returns (table, maps of [x; JPEG(x)]).
    """
    x = M._check_images(x).detach().cpu().float()
    if int(quality) != quality or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in [1, 100], got {quality!r}")
    b = x.shape[0]
    xq = M._to_uint8(x).to(x.dtype) / 255
    xj = M.jpeg_round_trip(xq, int(quality))
    _, target = I.prepare(model, xq, target, batch_size)
    both = torch.cat([xq, xj])
    maps = all_method_maps(model, both, paths, n, target.repeat(2), output, batch_size, path_kwargs)
    table = {}
    for label, r in maps.items():
        def saliency_fn(img: torch.Tensor, attr: torch.Tensor = r.attr) -> torch.Tensor:
            if torch.equal(img, xq):
                return attr[:b]
            if torch.equal(img, xj):
                return attr[b:]
            raise RuntimeError("jpeg_stability passed images other than x and its JPEG copy")

        mse, nlog = M.jpeg_stability(saliency_fn, x, int(quality), reduce)
        table[label] = {"mse": mse, "neg_log_mse": nlog, "relative": M.relative_map_error(r.attr[:b], r.attr[b:], xq, reduce)}
    return table, maps


def cross_device_difference(
    model: nn.Module, x: torch.Tensor, devices: tuple[str, str] = ("cpu", "cuda"),
    paths: list[str] = ("ig", "blurig", "guidedig"), n: int = 16, target=None, output: str = "prob",
    batch_size: int = 64, path_kwargs: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Per method, ||map on devices[1] − map on devices[0]|| / ||map on devices[0]|| per image (B,)."""
    if len(devices) != 2:
        raise ValueError(f"devices must name two devices, got {devices!r}")
    x = x.detach().cpu()
    if target is None:
        _, target = I.prepare(model, x, None, batch_size)
    target = torch.as_tensor(target).cpu()
    maps = []
    for d in devices:
        m = copy.deepcopy(model).to(torch.device(d)).eval()
        r = all_method_maps(m, x, paths, n, target, output, batch_size, path_kwargs)
        maps.append({k: v.attr.cpu() for k, v in r.items()})
        del m
    return M.relative_l2(maps[1], maps[0])


# ------------------------------------------------------------------ attribution to a tolerance against fixed n
def map_errors(attr: torch.Tensor, ref: torch.Tensor, delta: float) -> dict[str, float]:
    """Relative L2 map error ‖A − A_ref‖₂ / ‖A_ref‖₂ and relative completeness error |Σ A − Δf| / |Δf| of one map (1, C, H, W)."""
    a, r = attr.detach().double().cpu().flatten(), ref.detach().double().cpu().flatten()
    return {"map_error": float((a - r).norm() / r.norm()), "completeness": abs(float(a.sum()) - delta) / abs(delta)}


def nested_left_sums(model: nn.Module, x: torch.Tensor, path: str, target: torch.Tensor, n_top: int, batch_size=64,
                     output: str = "prob", **path_kwargs) -> tuple[dict[int, torch.Tensor], "np.ndarray", "np.ndarray"]:
    """Left sums of one image at n = 4, 8, …, n_top from one nested set of n_top nodes i/n_top (each gradient once):
    ({n: map (1, C, H, W)}, ‖g(α_i)‖₂ and Σ_pixels g(α_i) at the nodes)."""
    import numpy as np

    nodes = torch.arange(n_top, dtype=torch.float64) / n_top
    plan = I.make_plan(model, path, output=output, engine=I.Engine(batch_size=batch_size), nodes=nodes, **path_kwargs)
    checks = V.DeviceChecks()
    x, plan = plan.prepare(x, target, checks, total_per_image=n_top)
    levels = [n for n in (2**k for k in range(2, 20)) if n <= n_top]
    acc = {n: torch.zeros_like(x, dtype=torch.float64) for n in levels}
    norms, sums = np.zeros(n_top), np.zeros(n_top)
    for rows, g in I.integrand_chunks(plan, x, checks=checks):
        g = g[:, 0].double()
        idx = np.arange(rows.start, rows.stop)
        norms[idx] = g.flatten(1).norm(dim=1).cpu().numpy()
        sums[idx] = g.flatten(1).sum(1).cpu().numpy()
        for n in levels:
            take = np.flatnonzero(idx % (n_top // n) == 0)
            if len(take):
                acc[n] += g[torch.from_numpy(take).to(g.device)].sum(0, keepdim=True) / n
    checks.settle()
    return acc, norms, sums


# The tolerance study's reference rules: BlurIG's integrand lives near α = 1 (small σ), where plain Gauss–Legendre puts
# few nodes; at equal n the graded rule's convergence check on chelsea (Lite0) is 0.0038 against 0.0100.
REF_RULES = {"ig": "gausslegendre", "blurig": "gausslegendre_graded"}


def reference_rule(settings: dict, path: str) -> str:
    """The tolerance study's reference rule for ``path``: ``settings['ref_rule']``, one rule name for every path (units
    stored before BlurIG's graded reference: 'gausslegendre') or {path: rule}; absent: 'gausslegendre'."""
    rules = settings.get("ref_rule", "gausslegendre")
    return rules if isinstance(rules, str) else rules[path]


def tolerance_cell(model: nn.Module, x: torch.Tensor, settings: dict, profiles: dict, batch_size=64,
                   check_reference: bool = False) -> dict:
    """One photo (1, C, H, W) of the tolerance study, per path of ``settings['paths']``: the reference (its rule
    :func:`reference_rule` with ``ref_n`` nodes; with ``check_reference`` also ``ref_n // 2``, its distance stored), one refinement to the
    tolerances ``tols`` (the state at each: gradients, map error against the reference, estimate, completeness,
    n_max hit, nodes), the nested left rule up to ``left_max`` (with ‖g‖₂ and Σ g at its nodes) and the released
    RiemannOpt schedule at ``ro_steps`` fitted on ``profiles[path]`` = (grid, profile); f = ``settings['output']``."""
    import time
    import warnings

    from . import schedule as S

    t0 = time.time()
    x, target = I.prepare(model, x, None, 64 if batch_size == "auto" else batch_size)
    cell = {"target": int(target[0]), "paths": {}}
    common = {"target": target, "batch_size": batch_size, "output": settings.get("output", "prob")}
    for path in settings["paths"]:
        kw = settings["path_kwargs"].get(path, {})
        out, tp = {}, time.time()
        rule = reference_rule(settings, path)
        ref = I.attribute(model, x, path=path, rule=rule, n=settings["ref_n"], **common, **kw)
        f_in, f_base = float(ref.f_input[0]), float(ref.f_baseline[0])
        delta = f_in - f_base
        out.update(f_input=f_in, f_baseline=f_base,
                   reference={"rule": rule, "n": settings["ref_n"], **map_errors(ref.attr, ref.attr, delta), "wall_s": round(time.time() - tp, 1)})
        if check_reference:
            half = I.attribute(model, x, path=path, rule=rule, n=settings["ref_n"] // 2, **common, **kw)
            out["reference_check"] = {"n": settings["ref_n"] // 2, **map_errors(half.attr, ref.attr, delta)}
        ta = time.time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ad = I.attribute(model, x, path=path, tol=settings["tols"], n=settings["n0"], n_max=settings["n_max"], **common, **kw)
        out["adaptive"] = {}
        for t in settings["tols"]:
            s = ad if t == min(settings["tols"]) else ad.at_tol[t]
            out["adaptive"][str(t)] = {"gradients": int(s.gradients[0]), **map_errors(s.attr, ref.attr, delta),
                                       "estimate": float(s.map_error[0]), "completeness_estimate": float(s.completeness[0]),
                                       "hit_n_max": bool(s.hit_n_max[0]), "nodes": [round(float(a), 10) for a in s.nodes[0]]}
        out["adaptive_wall_s"] = round(time.time() - ta, 1)
        out["adaptive_warnings"] = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        left, norms, sums = nested_left_sums(model, x, path, target, settings["left_max"], batch_size, common["output"], **kw)
        out["left"] = {str(n): map_errors(a, ref.attr, delta) for n, a in left.items()}
        out["g_curve"] = {"alpha": f"i/{settings['left_max']}", "norm": [float(f"{v:.6g}") for v in norms],
                          "sum": [float(f"{v:.6g}") for v in sums]}
        grid, profile = profiles[path]
        out["riemannopt"] = {}
        for n in settings["ro_steps"]:
            args = S.released_attribute_args(S.fit_released_schedule(grid, profile, n), path)
            r = I.attribute(model, x, path=path, **common, **args, **kw)
            out["riemannopt"][str(n)] = {"gradients": int(r.n_gradients), **map_errors(r.attr, ref.attr, delta)}
        out["wall_s"] = round(time.time() - tp, 1)
        cell["paths"][path] = out
    cell["p"] = cell["paths"][settings["paths"][0]]["f_input"]
    cell["wall_s"] = round(time.time() - t0, 1)
    return cell


def integrand_roughness(model: nn.Module, x: torch.Tensor, path: str, target, n: int = 128, batch_size=64,
                        output: str = "prob", **path_kwargs) -> dict[str, float]:
    """How rough g(α) = ∇f(γ(α)) ⊙ γ'(α) of one image is at spacing 1/n: the median over α of ‖Δ²g‖ / ‖Δg‖ (≈ 0 for a
    smooth g, √2 for one with independent increments) and of ‖Δg‖ / ‖g‖, from g at the n + 1 nodes i/n."""
    import numpy as np

    nodes = torch.arange(n + 1, dtype=torch.float64) / n
    plan = I.make_plan(model, path, output=output, engine=I.Engine(batch_size=batch_size), nodes=nodes, **path_kwargs)
    checks = V.DeviceChecks()
    x, plan = plan.prepare(x[:1], target, checks, total_per_image=n + 1)
    g = torch.cat([c[:, 0].double().flatten(1).cpu() for _, c in I.integrand_chunks(plan, x, checks=checks)])
    checks.settle()
    d1, d2 = g[1:] - g[:-1], g[2:] - 2 * g[1:-1] + g[:-2]
    n1, n2, n0 = d1.norm(dim=1), d2.norm(dim=1), g.norm(dim=1)
    keep = (n1[:-1] > 0).numpy()
    return {"second_over_first": float(np.median((n2 / n1[:-1].clamp_min(1e-300)).numpy()[keep])),
            "step_over_size": float(np.median((n1 / n0[:-1].clamp_min(1e-300)).numpy()[(n0[:-1] > 0).numpy()])), "n": n}
