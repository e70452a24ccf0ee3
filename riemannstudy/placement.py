"""Which rule and which node placement, at the same budget n: every placement's nodes and their completeness error.

A placement is 'uniform' (the rule's own nodes), a Powell fit of a left-rule bound ('paper' = RiemannOpt,
'faithful', 'sup'), or a continuum-optimal density: √|g'| for the left rule, |g''|^{1/3} for midpoint/trapezoid
(riemannkit.schedule builds each).  Here they are compared: :func:`which_nodes` turns a (rule, placement) into
``attribute`` keywords at exactly n gradient evaluations, and the study functions measure the relative
completeness error of each on held-out images.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from riemannkit import integrate as I
from riemannkit import metrics as M
from riemannkit import paths as P
from riemannkit import quadrature as Q
from riemannkit import schedule as S

def completeness_table(
    model: nn.Module, x: torch.Tensor, rows: list[tuple[str, str, str]], steps: list[int],
    schedules: dict, batch_size: int = 64, path_kwargs: dict | None = None,
) -> dict:
    """Relative completeness error for each row (label, path, rule | 'riemannopt' | 'riemannopt-sup').

    Returns {label: {n: {"mean": per-image mean, "pooled": ratio of sums, "per_image": [...]}}}.
    """
    path_kwargs = path_kwargs or {}
    table: dict = {}
    bar = tqdm(total=len(rows) * len(steps), desc="completeness")
    for label, path, rule in rows:
        table[label] = {}
        for n in steps:
            kw = dict(path_kwargs.get(path, {}))
            if rule in ("riemannopt", "riemannopt-sup"):
                kw["alphas"] = schedules[path]["alphas" if rule == "riemannopt" else "alphas_sup"][n]
            else:
                kw.update(rule=rule, n=n)
            r = I.attribute(model, x, path=path, batch_size=batch_size, **kw)
            err = M.completeness_error(r.attr, r.f_input, r.f_baseline)
            table[label][n] = {
                "mean": float(err.mean()),
                "pooled": M.completeness_error_pooled(r.attr, r.f_input, r.f_baseline),
                "per_image": err.tolist(),
            }
            bar.update()
    bar.close()
    return table


def completeness_of_schedules(
    model: nn.Module, x: torch.Tensor, path: str, schedules: list, batch_size: int = 64, **path_kwargs
) -> np.ndarray:
    """(len(schedules), B) relative completeness errors of each schedule applied to every image of ``x``."""
    out = []
    for a in schedules:
        r = I.attribute(model, x, path, alphas=a, batch_size=batch_size, **path_kwargs)
        out.append(M.completeness_error(r.attr, r.f_input, r.f_baseline).cpu().numpy())
    return np.stack(out)


# Every rule and schedule at the same budget n = gradient evaluations per image: label → (rule, placement).
WHICH_METHODS: dict[str, tuple[str, str]] = {
    "left": ("left", "uniform"),
    "right": ("right", "uniform"),
    "midpoint": ("midpoint", "uniform"),
    "trapezoid": ("trapezoid", "uniform"),
    "Gauss–Legendre": ("gausslegendre", "uniform"),
    "left + RiemannOpt": ("left", "paper"),
    "left + faithful Powell": ("left", "faithful"),
    "left + sup Powell": ("left", "sup"),
    "left + √g′ density": ("left", "sqrt-density"),
    "midpoint + ∛g″ density": ("midpoint", "cubic-density"),
    "trapezoid + ∛g″ density": ("trapezoid", "cubic-density"),
}

# Adaptive paths (Guided IG, SAMP) take only the left rule, with or without a schedule.
WHICH_ADAPTIVE_METHODS = ("left", "left + RiemannOpt", "left + faithful Powell", "left + √g′ density")

PLACEMENTS = ("uniform", "paper", "faithful", "sup", "sqrt-density", "cubic-density")


def which_nodes(rule: str, placement: str, n: int, curves: dict, maxiter: int | None = None) -> dict:
    """``attribute`` keywords for ``rule`` with ``placement`` at exactly ``n`` gradient evaluations per image.

    ``curves`` holds Algorithm 1's ``grid``, ``gprime`` (|g'|) and ``gsecond`` (|g''|) for the path
    (:func:`riemannkit.schedule.estimate_gderivatives`).  The trapezoid rule spends n evaluations on
    n − 1 intervals (its nodes include α = 1).  ``maxiter``: Powell iterations for the fitted placements
    (None: :func:`riemannkit.schedule.fit_schedule`'s default, until converged)."""
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement={placement!r}; accepted values: {', '.join(PLACEMENTS)}")
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    n = int(n)
    if placement == "uniform":
        return {"rule": rule, "n": n}
    grid, g1 = curves["grid"], curves["gprime"]
    if placement in ("paper", "faithful", "sup"):
        if rule != "left":
            raise ValueError(f"placement={placement!r} fits a left-rule bound; got rule={rule!r}")
        init = "density" if placement == "faithful" else "linear"
        return {"rule": "left", "alphas": S.fit_schedule(grid, g1, n, bound=placement, init=init, maxiter=maxiter)}
    if placement == "sqrt-density":
        if rule != "left":
            raise ValueError(f"placement='sqrt-density' is the left rule's optimum; got rule={rule!r}")
        return {"rule": "left", "alphas": S.density_schedule(n, grid, g1, power=0.5)}
    # |g''|^{1/3} is the optimum of the second-order rules that take a schedule (their error reads |g''|).
    second_order = [r for r in Q.SCHEDULE_RULES if Q.rule(r).order == 2]
    if str(rule).lower() not in second_order:
        raise ValueError(f"placement='cubic-density' is for rule={' or '.join(map(repr, second_order))}; got rule={rule!r}")
    intervals = n - (Q.evaluations_on_partition(rule, 1) - 1)  # trapezoid: n evaluations on n − 1 intervals
    return {"rule": rule, "alphas": S.cubic_density_schedule(intervals, grid, curves["gsecond"])}


def which_schedule_study(
    model: nn.Module, x_calib: torch.Tensor, x_eval: torch.Tensor, paths: dict[str, dict], budgets: list[int],
    k: int = 64, methods: dict[str, list[str]] | None = None, batch_size: int = 64, fit_maxiter: int | None = None,
) -> dict:
    """Relative completeness error of every rule/schedule in :data:`WHICH_METHODS` for each path and budget.

    ``paths``: {path: path kwargs}.  Algorithm 1 (|g'| and |g''| from one set of gradients,
    :func:`riemannkit.schedule.estimate_gderivatives`) runs on ``x_calib``; the errors are measured on
    ``x_eval``.  ``methods``: {path: [labels]} (default: all for closed-form paths,
    :data:`WHICH_ADAPTIVE_METHODS` for adaptive ones).  Returns {"curves": {path: {grid, gprime, gsecond}},
    "errors": {path: {label: {n: per-image errors (B,)}}}, "alphas": {path: {label: {n: schedule}}},
    "seconds": {"calibration", "fit", "evaluation"}}; each entry's evaluations per image are checked to be n.
    """
    methods = dict(methods or {})
    out = {"curves": {}, "errors": {}, "alphas": {}, "seconds": {"calibration": 0.0, "fit": 0.0, "evaluation": 0.0}}
    bar = tqdm(total=sum(len(methods.get(p) or (WHICH_ADAPTIVE_METHODS if p in P.ADAPTIVE_PATHS else WHICH_METHODS))
                         for p in paths) * len(budgets), desc="which schedule")
    for path, kw in paths.items():
        labels = list(methods.get(path) or (WHICH_ADAPTIVE_METHODS if path in P.ADAPTIVE_PATHS else WHICH_METHODS))
        bad = [m for m in labels if m not in WHICH_METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; accepted values: {', '.join(WHICH_METHODS)}")
        t0 = time.perf_counter()
        grid, g1, g2 = S.estimate_gderivatives(model, x_calib, path, k=k, batch_size=batch_size, **kw)
        out["seconds"]["calibration"] += time.perf_counter() - t0
        curves = {"grid": grid, "gprime": g1, "gsecond": g2}
        out["curves"][path] = curves
        out["errors"][path], out["alphas"][path] = {}, {}
        for label in labels:
            rule, placement = WHICH_METHODS[label]
            out["errors"][path][label], out["alphas"][path][label] = {}, {}
            for n in budgets:
                t0 = time.perf_counter()
                nodes = which_nodes(rule, placement, n, curves, fit_maxiter)
                t1 = time.perf_counter()
                r = I.attribute(model, x_eval, path, batch_size=batch_size, **nodes, **kw)
                out["seconds"]["fit"] += t1 - t0
                out["seconds"]["evaluation"] += time.perf_counter() - t1
                if r.n_gradients != n:
                    raise RuntimeError(f"{path} {label}: {r.n_gradients} gradient evaluations for budget n={n}")
                out["errors"][path][label][n] = M.completeness_error(r.attr, r.f_input, r.f_baseline).cpu().numpy()
                if "alphas" in nodes:
                    out["alphas"][path][label][n] = np.asarray(nodes["alphas"])
                bar.update()
    bar.close()
    return out


def which_summary(errors: dict, stat: str = "mean") -> dict:
    """{path: {label: {n: mean (or median) over images}}} of :func:`which_schedule_study`'s errors."""
    if stat not in ("mean", "median"):
        raise ValueError(f"unknown stat={stat!r}; accepted values: mean, median")
    f = np.mean if stat == "mean" else np.median
    return {p: {m: {n: float(f(v)) for n, v in row.items()} for m, row in d.items()} for p, d in errors.items()}


def which_recommendation(summary: dict, budgets: list[int], reference: str = "left") -> list[dict]:
    """Per path and budget: the best method, its error, the reference's (left rule) error and their ratio."""
    rows = []
    for path, d in summary.items():
        for n in budgets:
            best = min(d, key=lambda m: d[m][n])
            ref = d[reference][n]
            rows.append({"path": path, "n": n, "best": best, "error": d[best][n], "reference": ref,
                         "factor": ref / d[best][n] if d[best][n] > 0 else float("inf")})
    return rows
