"""Evaluate saliency methods (IG, BlurIG, Guided IG, each ± IDGI) over metrics, models and step counts.

A method name is a path ('ig', 'blurig', 'guidedig') optionally followed by '+idgi'.  A plain method is
the left Riemann sum  Σ_j g_j ⊙ (γ(α_{j+1}) − γ(α_j))  (closed-form paths: g_j = ∇f(γ(α_j)) ⊙ γ'(α_j)
times Δα_j), its IDGI twin  Σ_j g_j ⊙ g_j Δf_j / ||g_j||²  (riemannkit.idgi).  Both need f and ∇f at the
same n points, so :func:`method_maps` computes each path once and returns both maps from the same n
gradient evaluations per image.  :func:`metric_table` scores any set of maps on insertion (probability
and probability ratio), deletion, PIC (SIC / AIC with a WebP or MS-SSIM information axis) and
completeness; :func:`step_sweep` repeats both over step counts and schedules.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import integrate as I
from . import metrics as M
from . import paths as P
from .idgi import idgi_combine

METHODS = ("ig", "ig+idgi", "blurig", "blurig+idgi", "guidedig", "guidedig+idgi")
# The row order of the IDGI reproducibility study's Tables 1–3.
STUDY_ORDER = ("ig", "ig+idgi", "guidedig", "guidedig+idgi", "blurig", "blurig+idgi")
LABELS = {
    "ig": "IG", "ig+idgi": "IG + IDGI", "blurig": "BlurIG", "blurig+idgi": "BlurIG + IDGI",
    "guidedig": "GIG", "guidedig+idgi": "GIG + IDGI",
}
# The study's Guided IG: fraction 0.5, max_dist 1.0 in raw [0, 1] pixel space (PAIR: 0.25, 0.02).
STUDY_PATH_KWARGS = {"guidedig": {"fraction": 0.5, "max_dist": 1.0}}
METRICS = (
    "insertion_prob", "insertion_ratio", "deletion", "sic_webp", "aic_webp", "sic_msssim", "aic_msssim",
    "completeness",
)
# Higher is better for every metric except deletion and the completeness error.
LOWER_IS_BETTER = ("deletion", "completeness")
INSERTION_STARTS = ("black", "blur")


def parse_method(method: str) -> tuple[str, bool]:
    """('ig', False) for 'ig', ('ig', True) for 'ig+idgi'; ValueError naming the accepted values."""
    name = str(method).lower().replace(" ", "")
    if name not in METHODS:
        raise ValueError(f"unknown method={method!r}; accepted values: {', '.join(METHODS)}")
    path, _, suffix = name.partition("+")
    return path, suffix == "idgi"


def _check_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str) or len(methods) == 0:
        raise ValueError(f"methods must be a non-empty list of method names from {', '.join(METHODS)}, got {methods!r}")
    names = []
    for m in methods:
        parse_method(m)
        names.append(str(m).lower().replace(" ", ""))
    if len(set(names)) != len(names):
        raise ValueError(f"methods holds duplicates: {list(methods)}")
    return names


def _warn_lost(lost: torch.Tensor) -> None:
    if bool((lost != 0).any()):
        idx = torch.nonzero(lost != 0).flatten().tolist()
        warnings.warn(
            f"IDGI: zero-gradient steps with non-zero Δf in image(s) {idx}; they contribute 0, so Σ attr "
            f"misses Δf = {lost[idx].tolist()} of f(x) − f(x')",
            RuntimeWarning,
            stacklevel=3,
        )


def path_and_idgi(
    model: nn.Module,
    x: torch.Tensor,
    path: str = "ig",
    n: int = 16,
    alphas=None,
    target=None,
    output: str = "prob",
    batch_size: int = 64,
    **path_kwargs,
) -> tuple[I.Attribution, I.Attribution]:
    """(plain left-rule, IDGI) attributions of one path from the same n gradient evaluations per image.

    Equal to ``riemannkit.attribute(..., rule='left')`` and ``riemannkit.idgi.idgi_attribute`` with the
    same ``n`` or schedule ``alphas``, at half their joint cost.  Images are processed ``batch_size``
    path points (images × alphas) at a time.
    """
    path = P.check_path_name(path)
    if output not in I.OUTPUTS:
        raise ValueError(f"unknown output={output!r}; accepted values: {', '.join(I.OUTPUTS)}")
    x, target = I._prepare(model, x, target, batch_size)
    if x.shape[0] > batch_size:
        base = path_kwargs.get("baseline")
        per_image = base is not None and torch.as_tensor(base).shape == x.shape
        parts = []
        for i in range(0, x.shape[0], batch_size):
            kw = dict(path_kwargs)
            if per_image:
                kw["baseline"] = torch.as_tensor(base)[i : i + batch_size]
            sl = slice(i, i + batch_size)
            parts.append(path_and_idgi(model, x[sl], path, n, alphas, target[sl], output, batch_size, **kw))
        return tuple(
            I.Attribution(*(torch.cat([getattr(p[k], f) for p in parts]) for f in I.Attribution._fields[:4]), parts[0][k].n_gradients)
            for k in (0, 1)
        )
    nodes = I.check_alphas(alphas) if alphas is not None else I.rule_nodes("left", n)[0]
    b = x.shape[0]
    with torch.no_grad():
        f_input = I.target_output(model, x, target, output)
    if path == "guidedig":
        extra = set(path_kwargs) - {"baseline", "fraction", "max_dist"}
        if extra:
            raise ValueError(f"path='guidedig' does not take {sorted(extra)}; accepted: ['baseline', 'fraction', 'max_dist']")
        values: list[torch.Tensor] = []

        def grad_fn(pts: torch.Tensor) -> torch.Tensor:
            fg = [I.values_and_gradients(model, p, t, output) for p, t in zip(pts.split(batch_size), target.split(batch_size))]
            values.append(torch.cat([f for f, _ in fg]))
            return torch.cat([g for _, g in fg])

        grads, deltas = P.guided_ig(grad_fn, x, nodes, **path_kwargs)
        plain = (grads * deltas).sum(0)
        idgi, lost = idgi_combine(grads, torch.cat([torch.stack(values), f_input.unsqueeze(0)]))
        f_baseline = values[0]
    else:
        fn = P.path_function(path, **path_kwargs)
        weights = I.schedule_weights(nodes).to(device=x.device, dtype=x.dtype)
        a_dev = nodes.to(device=x.device, dtype=x.dtype)
        per = max(1, batch_size // b)
        plain = torch.zeros_like(x)
        idgi = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
        lost = torch.zeros(b, dtype=torch.float64, device=x.device)
        pending, f_baseline = None, None
        for s in range(0, len(nodes), per):
            pts, vel = fn(x, a_dev[s : s + per])
            a = pts.shape[0]
            f, g = I.values_and_gradients(model, pts.reshape(a * b, *x.shape[1:]), target.repeat(a), output)
            f, g = f.view(a, b), g.view(a, b, *x.shape[1:])
            plain += torch.tensordot(weights[s : s + a], g * vel, dims=1)
            if f_baseline is None:
                f_baseline = f[0]
            # A chunk's last IDGI step needs f at the next chunk's first point: combine one chunk behind.
            if pending is not None:
                d, l = idgi_combine(pending[1], torch.cat([pending[0], f[:1]]))
                idgi, lost = idgi + d, lost + l
            pending = (f, g)
        d, l = idgi_combine(pending[1], torch.cat([pending[0], f_input.unsqueeze(0)]))
        idgi, lost = idgi + d, lost + l
    _warn_lost(lost)
    k = len(nodes)
    return (
        I.Attribution(plain.to(x.dtype), f_input, f_baseline, target, k),
        I.Attribution(idgi.to(x.dtype), f_input, f_baseline, target, k),
    )


def _alphas_for(alphas, path: str):
    if alphas is None or not isinstance(alphas, Mapping):
        return alphas
    if path not in alphas:
        raise ValueError(f"alphas is a dict of schedules per path but has no entry for path={path!r} (keys: {sorted(alphas)})")
    return alphas[path]


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
    path_kwargs = dict(path_kwargs or {})
    bad = set(path_kwargs) - set(P.PATH_NAMES)
    if bad:
        raise ValueError(f"path_kwargs has unknown path(s) {sorted(bad)}; accepted values: {', '.join(P.PATH_NAMES)}")
    x, target = I._prepare(model, x, target, batch_size)
    out: dict[str, I.Attribution] = {}
    for path in dict.fromkeys(parse_method(m)[0] for m in names):
        plain, idgi = path_and_idgi(
            model, x, path, n, _alphas_for(alphas, path), target, output, batch_size, **path_kwargs.get(path, {})
        )
        out[path], out[path + "+idgi"] = plain, idgi
    return {m: out[m] for m in names}


def _map_of(m) -> torch.Tensor:
    return m.attr if isinstance(m, I.Attribution) else torch.as_tensor(m)


def _score(value: float, per_image, n_valid: int, curve=None) -> dict:
    rec = {"value": float(value), "per_image": [float(v) for v in per_image], "n_valid": int(n_valid)}
    if curve is not None:
        rec["curve"] = [float(v) for v in curve]
    return rec


def _score_group(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, names: list[str], sal: list[torch.Tensor],
    metrics: list[str], table: dict, steps: int, insertion_start: str, reduce: str, thresholds,
    min_pred_value: float, batch_size: int,
) -> None:
    """Score the maps ``sal`` of methods ``names`` in one batch of len(names)·B images per metric, into ``table``."""
    k, b = len(names), x.shape[0]
    sal_all = torch.cat(sal)
    x_all = x.repeat(k, 1, 1, 1)
    t_all = target.repeat(k)

    def split(v: torch.Tensor) -> list[torch.Tensor]:
        return list(v.reshape(k, b, *v.shape[1:]))

    if any(m.startswith("insertion") for m in metrics):
        start = torch.zeros_like(x_all) if insertion_start == "black" else None
        curve, auc = M.insertion_deletion(model, x_all, sal_all, start, t_all, "insertion", steps, "prob", batch_size, reduce)
        full = curve[:, -1]
        if "insertion_ratio" in metrics and (full == 0).any():
            raise ValueError("p(target | x) is 0 for some image: the probability ratio is undefined")
        # The ratio curve p / p(x) is linear in p: its trapezoid AUC is the probability AUC / p(x).
        variants = {"insertion_prob": (curve, auc)}
        if "insertion_ratio" in metrics:
            variants["insertion_ratio"] = (curve / full.unsqueeze(1), auc / full)
        for metric, (c, a_all) in variants.items():
            if metric in metrics:
                for name, a, cc in zip(names, split(a_all), split(c)):
                    table[name][metric] = _score(a.mean(), a, b, cc.mean(0))
    if "deletion" in metrics:
        curve, auc = M.insertion_deletion(model, x_all, sal_all, None, t_all, "deletion", steps, "prob", batch_size, reduce)
        for name, a, cc in zip(names, split(auc), split(curve)):
            table[name]["deletion"] = _score(a.mean(), a, b, cc.mean(0))
    for info in ("webp", "msssim"):
        wanted = [kind for kind in ("sic", "aic") if f"{kind}_{info}" in metrics]
        if not wanted:
            continue
        pic = M.pic_curves(
            model, x_all, sal_all, t_all, thresholds, "blur", info, reduce=reduce, min_pred_value=min_pred_value,
            batch_size=batch_size,
        )
        for kind in wanted:
            res = getattr(pic, kind)
            for i, name in enumerate(names):
                sl = slice(i * b, (i + 1) * b)
                part = res._replace(curve_y=res.curve_y[sl], auc=res.auc[sl], valid=res.valid[sl], reason=res.reason[sl])
                n_valid = int(part.valid.sum())
                curve, value = M.aggregate_pic(part) if n_valid else (None, math.nan)
                table[name][f"{kind}_{info}"] = _score(value, part.auc, n_valid, curve)


def metric_table(
    model: nn.Module,
    x: torch.Tensor,
    maps: Mapping[str, I.Attribution | torch.Tensor],
    metrics: Sequence[str] = METRICS,
    target=None,
    steps: int = 20,
    insertion_start: str = "black",
    reduce: str = "sum",
    thresholds=M.PIC_THRESHOLDS,
    min_pred_value: float = 0.8,
    batch_size: int = 64,
) -> dict[str, dict[str, dict]]:
    """{method: {metric: {'value', 'per_image', 'n_valid'[, 'curve']}}} for maps (B, C, H, W) of images x.

    Metrics (:data:`METRICS`): insertion AUC of p and of p / p(x) (``insertion_start`` 'black', as the
    study's and RiemannOpt's scripts, or 'blur' = blur_image(x, 20), as RISE), deletion AUC (towards
    black), SIC / AIC with a WebP or MS-SSIM axis (start: blur_image(x, 20); aggregate: SIC median,
    AIC mean over valid images, NaN if none) and the completeness error (needs Attributions).
    ``value`` is the mean over images (PIC: the AUC of the aggregate curve).  Pixels are ranked by
    ``reduce`` ('sum': signed channel sum, 'abs_sum': Σ_c |·|); the maps of several methods are scored
    together, up to 32 (method, image) pairs per call.
    """
    if not isinstance(maps, Mapping) or len(maps) == 0:
        raise ValueError("maps must be a non-empty dict {method: Attribution or (B, C, H, W) tensor}")
    metrics = list(metrics)
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise ValueError(f"unknown metrics {bad or metrics!r}; accepted values: {', '.join(METRICS)}")
    if insertion_start not in INSERTION_STARTS:
        raise ValueError(f"unknown insertion_start={insertion_start!r}; accepted values: {', '.join(INSERTION_STARTS)}")
    if reduce not in M.REDUCES:
        raise ValueError(f"unknown reduce={reduce!r}; accepted values: {', '.join(M.REDUCES)}")
    names = list(maps)
    if target is None:
        given = [m.target for m in maps.values() if isinstance(m, I.Attribution)]
        target = given[0] if given else None
    x, target = I._prepare(model, x, target, batch_size)
    b = x.shape[0]
    sal = []
    for name in names:
        s = _map_of(maps[name]).to(device=x.device)
        if s.shape[0] != b:
            raise ValueError(f"maps[{name!r}] has {s.shape[0]} maps for {b} images")
        sal.append(s)
        if "completeness" in metrics and not isinstance(maps[name], I.Attribution):
            raise ValueError(f"metric 'completeness' needs an Attribution (with f(x) and f(x')) for maps[{name!r}], got a tensor")
    table: dict[str, dict[str, dict]] = {name: {} for name in names}
    # (method, image) pairs are scored together, method-major, at most ``pairs`` per call.
    pairs = max(b, 32)
    group = max(1, pairs // b)
    for g0 in range(0, len(names), group):
        _score_group(model, x, target, names[g0 : g0 + group], sal[g0 : g0 + group], metrics, table, steps,
                     insertion_start, reduce, thresholds, min_pred_value, batch_size)
    if "completeness" in metrics:
        for name in names:
            m = maps[name]
            err = M.completeness_error(m.attr, m.f_input, m.f_baseline)
            table[name]["completeness"] = _score(err.mean(), err, b)
    return table


def step_sweep(
    model: nn.Module,
    x: torch.Tensor,
    methods: Sequence[str],
    steps: Sequence[int],
    schedules: Mapping[str, Mapping[int, np.ndarray]] | None = None,
    metrics: Sequence[str] = ("insertion_prob", "insertion_ratio", "deletion", "completeness"),
    target=None,
    batch_size: int = 64,
    path_kwargs: Mapping[str, Mapping] | None = None,
    **metric_kwargs,
) -> dict[int, dict[str, dict[str, dict]]]:
    """{n: metric_table} for each step count n: linear left-rule points, or ``schedules`` {path: {n: alphas}}."""
    steps = [int(n) for n in steps]
    if not steps or any(n < 1 for n in steps):
        raise ValueError(f"steps must be a non-empty list of positive integers, got {steps!r}")
    x, target = I._prepare(model, x, target, batch_size)
    out = {}
    for n in steps:
        alphas = None
        if schedules is not None:
            alphas = {}
            for m in _check_methods(methods):
                path = parse_method(m)[0]
                if path not in schedules or n not in schedules[path]:
                    raise ValueError(f"schedules has no schedule for path={path!r} and n={n}")
                alphas[path] = schedules[path][n]
        maps = method_maps(model, x, methods, n, alphas, target, batch_size=batch_size, path_kwargs=path_kwargs)
        metrics_n = [m for m in metrics if m != "completeness"]
        table = metric_table(model, x, maps, metrics_n, target, batch_size=batch_size, **metric_kwargs) if metrics_n else {m: {} for m in maps}
        if "completeness" in metrics:
            for name, attr in maps.items():
                if not parse_method(name)[1]:  # IDGI is complete by construction: not measured
                    err = M.completeness_error(attr.attr, attr.f_input, attr.f_baseline)
                    table[name]["completeness"] = _score(err.mean(), err, len(err))
        out[n] = table
    return out


def sweep_values(sweep: Mapping[int, Mapping[str, Mapping[str, dict]]], metric: str) -> dict[str, dict[int, float]]:
    """{method: {n: value}} of one metric from a :func:`step_sweep` result (methods lacking it skipped)."""
    out: dict[str, dict[int, float]] = {}
    for n, table in sweep.items():
        for name, row in table.items():
            if metric in row:
                out.setdefault(name, {})[n] = row[metric]["value"]
    if not out:
        raise ValueError(f"metric {metric!r} is not in the sweep; it holds {sorted({m for t in sweep.values() for r in t.values() for m in r})}")
    return out


def step_difference(values: Mapping[str, Mapping[int, float]], lo: int, hi: int) -> dict[str, float]:
    """{method: value(hi) − value(lo)}: the study's Table 4 (difference between 8 and 128 steps)."""
    out = {}
    for name, row in values.items():
        if lo not in row or hi not in row:
            raise ValueError(f"method {name!r} has no value at n={lo} and n={hi} (has {sorted(row)})")
        out[name] = row[hi] - row[lo]
    return out


def markdown_table(
    values: Mapping[str, Mapping],
    rows: Sequence[str],
    columns: Sequence,
    labels: Mapping[str, str] | None = None,
    higher_is_better: bool = True,
    bold: str = "pair",
    fmt: str = "{:.3f}",
    column_names: Mapping | None = None,
) -> str:
    """Markdown table of values[row][column] (NaN or missing: 'n/a'); bold the better of each method
    and its '+idgi' twin (``bold='pair'``), the best of each column ('column') or nothing ('none')."""
    if bold not in ("pair", "column", "none"):
        raise ValueError(f"unknown bold={bold!r}; accepted values: pair, column, none")
    labels = labels or LABELS
    column_names = column_names or {}

    def get(r, c) -> float:
        v = values.get(r, {}).get(c, math.nan)
        return float(v) if v is not None else math.nan

    def better(a: float, b: float) -> bool:
        return a > b if higher_is_better else a < b

    head = "| method | " + " | ".join(str(column_names.get(c, c)) for c in columns) + " |\n|---|" + "---:|" * len(columns)
    lines = [head]
    for r in rows:
        cells = []
        for c in columns:
            v = get(r, c)
            if math.isnan(v):
                cells.append("n/a")
                continue
            s = fmt.format(v)
            if bold == "column":
                others = [get(o, c) for o in rows if not math.isnan(get(o, c))]
                win = all(not better(o, v) for o in others)
            elif bold == "pair":
                twin = r[: -len("+idgi")] if r.endswith("+idgi") else r + "+idgi"
                w = get(twin, c) if twin in rows else math.nan
                win = not math.isnan(w) and better(v, w)
            else:
                win = False
            cells.append(f"**{s}**" if win else s)
        lines.append(f"| {labels.get(r, r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
