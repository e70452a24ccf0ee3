"""The one registry of the metrics that score attribution maps: each metric's name, label, which direction is better,
and how its record is read from its family's shared computation.

A *family* is one computation its metrics share: 'insertion' (one insertion curve per map gives the AUC of p and of
p / p(x)), 'deletion', 'pic' (one set of bokeh images per information axis gives SIC and AIC) and 'completeness'
(|Σ A − Δf| / |Δf|, which needs an Attribution with f(x) and f(x')).  A metric is one :func:`register_metric` call
naming its family and how its record is read from the family's result; :func:`riemannkit.evaluation.metric_table`
scores through :func:`score_batch`, the book's tables take their labels (:data:`METRIC_LABELS`) and the study's
claims their direction (:func:`better`) from here, so adding a metric touches this one place (and a metric that needs
a new computation, one :func:`register_family` call beside it).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import torch
from torch import nn

from . import integrate as I
from . import metrics as M
from . import validate as V

BETTER = ("higher", "lower")


class Options(NamedTuple):
    """The scoring knobs of :func:`riemannkit.evaluation.metric_table` that the families read."""

    steps: int = 20  # insertion / deletion points
    insertion_start: str = "blur"
    reduce: str = "sum"
    thresholds: tuple = M.PIC_THRESHOLDS
    pic_start: tuple[tuple[str, str], ...] = (("webp", "blur"), ("msssim", "blur"))  # (information axis, start) pairs
    min_pred_value: float = 0.8
    seed: int = 0
    batch_size: int = 64
    per_image_curves: bool = False


@dataclass(frozen=True)
class Batch:
    """One scoring call: k methods' maps of the same B images, scored together (method-major)."""

    model: nn.Module
    x: torch.Tensor  # (B, C, H, W)
    target: torch.Tensor  # (B,)
    names: list[str]  # the k methods
    maps: list  # their Attributions or (B, C, H, W) tensors
    sal: list[torch.Tensor]  # their maps, on x's device
    options: Options

    @functools.cached_property
    def stacked(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, maps, targets) of all k methods stacked method-major: k·B rows (built once, shared by the families)."""
        k = len(self.names)
        return self.x.repeat(k, 1, 1, 1), torch.cat(self.sal), self.target.repeat(k)

    def rows(self, i: int) -> slice:
        """The rows of method i in a stacked (k·B, …) result."""
        b = self.x.shape[0]
        return slice(i * b, (i + 1) * b)


class Family(NamedTuple):
    """A computation shared by metrics: ``compute(batch, wanted)`` with ``wanted`` its requested metrics."""

    name: str
    compute: Callable[[Batch, tuple[str, ...]], object]
    needs_attribution: bool = False  # its maps must be Attributions (with f(x), f(x')), not bare tensors


class Metric(NamedTuple):
    """A registered metric: ``read(result, i, batch)`` is method i's record from its family's result."""

    name: str
    family: str
    read: Callable[[object, int, Batch], dict]
    label: str  # how the book's tables and figures name it
    better: str  # 'higher' or 'lower'


_FAMILIES: dict[str, Family] = {}
_METRICS: dict[str, Metric] = {}

METRICS = V.LiveNames(lambda: tuple(_METRICS))  # every metric, in registration order (the order of a table's columns)
LOWER_IS_BETTER = V.LiveNames(lambda: tuple(k for k, m in _METRICS.items() if m.better == "lower"))


METRIC_LABELS = V.LiveMapping(lambda: {k: m.label for k, m in _METRICS.items()})  # how the book's tables and figures name the metrics


def register_family(name: str, compute: Callable[[Batch, tuple[str, ...]], object], needs_attribution: bool = False) -> Family:
    """Register the shared computation ``name`` of one or more metrics (see :class:`Family`)."""
    if name in _FAMILIES:
        raise ValueError(f"family={name!r} is registered already")
    if not callable(compute):
        raise ValueError(f"compute must be a callable (batch, wanted) -> result, got {compute!r}")
    _FAMILIES[name] = Family(name, compute, bool(needs_attribution))
    return _FAMILIES[name]


def register_metric(name: str, family: str, read: Callable[[object, int, Batch], dict], label: str, better: str) -> Metric:
    """Register metric ``name``, read by ``read`` from the result of the registered ``family`` (see :class:`Metric`)."""
    if name in _METRICS:
        raise ValueError(f"metric={name!r} is registered already")
    if family not in _FAMILIES:
        raise ValueError(f"unknown family={family!r}; accepted values: {', '.join(_FAMILIES)} (register_family first)")
    if better not in BETTER:
        raise ValueError(f"better must be one of {', '.join(BETTER)}, got {better!r}")
    if not callable(read):
        raise ValueError(f"read must be a callable (result, i, batch) -> record, got {read!r}")
    _METRICS[name] = Metric(name, family, read, str(label), better)
    return _METRICS[name]


def unregister_metric(name: str) -> None:
    """Remove a registered metric (tests that register a toy metric clean up with this)."""
    _METRICS.pop(name, None)


def unregister_family(name: str) -> None:
    """Remove a registered family and its metrics (tests clean up with this)."""
    for k in [k for k, m in _METRICS.items() if m.family == name]:
        del _METRICS[k]
    _FAMILIES.pop(name, None)


def metric(name: str) -> Metric:
    """The registry entry of ``name``, or a ValueError naming the accepted metrics."""
    if name not in _METRICS:
        raise ValueError(f"unknown metric={name!r}; accepted values: {', '.join(_METRICS)}")
    return _METRICS[name]


def better(name: str) -> str:
    """'higher' or 'lower': which direction of metric ``name`` is better."""
    return metric(name).better


def check_metrics(metrics: Sequence[str]) -> list[str]:
    """``metrics`` as a non-empty list of registered names, or a ValueError naming the accepted values."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    bad = [m for m in names if m not in _METRICS]
    if bad or not names:
        raise ValueError(f"unknown metrics {bad or names!r}; accepted values: {', '.join(_METRICS)}")
    return names


def needs_attribution(metrics: Sequence[str]) -> list[str]:
    """The metrics among ``metrics`` whose family needs Attributions (f(x), f(x')), not bare maps."""
    return [m for m in metrics if _FAMILIES[metric(m).family].needs_attribution]


def score_record(value: float, per_image, n_valid: int, curve=None, per_image_curves=None) -> dict:
    """A metric's record: {'value', 'per_image', 'n_valid'[, 'curve'][, 'per_image_curves']}, plain floats."""
    rec = {"value": float(value), "per_image": [float(v) for v in per_image], "n_valid": int(n_valid)}
    if curve is not None:
        rec["curve"] = [float(v) for v in curve]
    if per_image_curves is not None:
        rec["per_image_curves"] = per_image_curves.tolist()
    return rec


def score_batch(batch: Batch, metrics: Sequence[str]) -> dict[str, dict[str, dict]]:
    """{method: {metric: record}} for the batch's methods: each family computed once for its requested metrics, the
    records in registry order."""
    names = check_metrics(metrics)
    wanted: dict[str, list[str]] = {}
    for m in _METRICS:
        if m in names:
            wanted.setdefault(_METRICS[m].family, []).append(m)
    results = {f: _FAMILIES[f].compute(batch, tuple(wanted[f])) for f in _FAMILIES if f in wanted}
    table: dict[str, dict[str, dict]] = {n: {} for n in batch.names}
    for f, ms in wanted.items():
        for m in ms:
            for i, n in enumerate(batch.names):
                table[n][m] = _METRICS[m].read(results[f], i, batch)
    return {n: {m: row[m] for m in _METRICS if m in row} for n, row in table.items()}


# ------------------------------------------------------------------------------------------ the families
def _curve_family(kind: str) -> Callable[[Batch, tuple[str, ...]], tuple[torch.Tensor, torch.Tensor]]:
    def compute(batch: Batch, wanted: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        o = batch.options
        x_all, sal_all, t_all = batch.stacked
        start = o.insertion_start if kind == "insertion" else None
        return M.insertion_deletion(batch.model, x_all, sal_all, start, t_all, kind, o.steps, "prob", o.batch_size, o.reduce)
    return compute


def _curve_record(curve: torch.Tensor, auc: torch.Tensor, batch: Batch) -> dict:
    return score_record(auc.mean(), auc, len(auc), curve.mean(0), curve if batch.options.per_image_curves else None)


def _auc_of(result, i: int, batch: Batch) -> dict:
    curve, auc = result
    return _curve_record(curve[batch.rows(i)], auc[batch.rows(i)], batch)


def _auc_over_full(result, i: int, batch: Batch) -> dict:
    # The ratio curve p / p(x) is linear in p: its trapezoid AUC is the probability AUC / p(x).
    curve, auc = result[0][batch.rows(i)], result[1][batch.rows(i)]
    full = curve[:, -1]
    if (full == 0).any():
        raise ValueError("p(target | x) is 0 for some image: the probability ratio is undefined")
    return _curve_record(curve / full.unsqueeze(1), auc / full, batch)


def _pic(batch: Batch, wanted: tuple[str, ...]) -> list[dict[str, M.PICCurves]]:
    """[{information axis: PICCurves}] per method; the axes that share a start score the same bokeh images."""
    o = batch.options
    starts = dict(o.pic_start)
    by_start: dict[str, list[str]] = {}
    for info in M.PIC_INFORMATION:
        if any(m.endswith("_" + info) for m in wanted):
            by_start.setdefault(starts[info], []).append(info)
    k, b = len(batch.names), batch.x.shape[0]
    parts: list[dict[str, M.PICCurves]] = [{} for _ in range(k)]
    for start, infos in by_start.items():
        if start == "random_mask":
            # One call per method, so that every method's image i gets the same random mask.
            for i, s in enumerate(batch.sal):
                parts[i].update(M.pic_curves_axes(batch.model, batch.x, s, batch.target, infos, thresholds=o.thresholds, start=start,
                                                  reduce=o.reduce, seed=o.seed, min_pred_value=o.min_pred_value,
                                                  batch_size=o.batch_size))
            continue
        # The blurred start computed once per image, so that every method's copy of it is the same tensor.
        x_all, sal_all, t_all = batch.stacked
        s_img = M.pic_blur_start(batch.x).repeat(k, 1, 1, 1)
        axes = M.pic_curves_axes(batch.model, x_all, sal_all, t_all, infos, thresholds=o.thresholds, start=s_img, reduce=o.reduce,
                                 min_pred_value=o.min_pred_value, batch_size=o.batch_size)
        for i in range(k):
            rows = batch.rows(i)
            for info, pic in axes.items():
                parts[i][info] = M.PICCurves(*(r._replace(curve_y=r.curve_y[rows], auc=r.auc[rows], valid=r.valid[rows],
                                                         reason=r.reason[rows], info=r.info[rows], score=r.score[rows])
                                              for r in pic))
    return parts


def _pic_reader(kind: str, info: str) -> Callable[[list, int, Batch], dict]:
    def read(parts: list[dict[str, M.PICCurves]], i: int, batch: Batch) -> dict:
        res = getattr(parts[i][info], kind)
        n_valid = int(res.valid.sum())
        curve, value = M.aggregate_pic(res) if n_valid else (None, math.nan)
        rec = score_record(value, res.auc, n_valid, curve)
        # The raw points rebuild the curves (metrics.pic_from_points): runs stored image by image aggregate over images
        # (SIC's median curve) exactly as one batch would.
        rec["points"] = {"info": res.info.tolist(), "score": res.score.tolist(), "valid": res.valid.tolist(),
                         "reason": list(res.reason)}
        return rec
    return read


def completeness_record(m: I.Attribution) -> dict:
    """The 'completeness' record of one Attribution: |Σ A − Δf| / |Δf| per image and its mean."""
    err = M.completeness_error(m.attr, m.f_input, m.f_baseline)
    return score_record(err.mean(), err, len(err))


register_family("insertion", _curve_family("insertion"))
register_family("deletion", _curve_family("deletion"))
register_family("pic", _pic)
register_family("completeness", lambda batch, wanted: batch.maps, needs_attribution=True)

register_metric("insertion_prob", "insertion", _auc_of, "insertion (p)", "higher")
register_metric("insertion_ratio", "insertion", _auc_over_full, "insertion (p/p(x))", "higher")
register_metric("deletion", "deletion", _auc_of, "deletion", "lower")
for _info, _axis in (("webp", "WebP"), ("msssim", "MS-SSIM")):
    for _kind in ("sic", "aic"):
        register_metric(f"{_kind}_{_info}", "pic", _pic_reader(_kind, _info), f"{_kind.upper()}, {_axis}", "higher")
register_metric("completeness", "completeness", lambda maps, i, batch: completeness_record(maps[i]), "completeness error", "lower")
