"""The paper beside ours: tables with 95 % bootstrap CIs over images and verdicts computed from stored runs.

Reads the stored reference runs (``results/reference/*.json``, written by benchmarks/reference_*.py) and the
papers' numbers (``results/paper/*.json``, transcribed from ../shared/papers); nothing here is typed by hand.

The loaders refuse instead of guessing: a folder that does not exist, a file that does not parse, a unit whose file
name is not its record's (riemannstudy.units.unit_file_name), two units of one (kind, model, path or steps, variant)
and a key that is missing, not a number or not finite are errors naming the file and the key.  Units of different
numerics variants ('cpu', 'cpu_fp64', 'cuda', 'cuda_tf32': riemannstudy.units.unit_variant) are never judged together:
the loaders return one variant ('cpu' by default), :func:`units_by_variant` groups any mix, and the functions that
combine several units of a model refuse a mix.
"""
from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np

from riemannkit.evaluation import reference_rule
from riemannkit.models import MODEL_LABELS
from riemannkit.paths import PATH_LABELS  # the one label set (order: IG, BlurIG, GIG, …)
from riemannkit import scoring as S

from . import stats as ST
from . import units as U
from .tables import cell, table

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_DIR = ROOT / "results" / "reference"
PAPER_DIR = ROOT / "results" / "paper"
# Table 1's baseline rows as the authors' code computes them (results/paper/riemannopt_table1.json row_keys).
TABLE1_BASELINE = {"ig": "linear_right", "blurig": "linear_right", "guidedig": "linear_left"}


def read_json(file: str | Path):
    """A JSON file's content; a file that does not parse is a ValueError naming it (not a bare JSONDecodeError)."""
    file = Path(file)
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file}: does not parse as JSON ({type(err).__name__}: {err}); it may be truncated") from None


def load_paper(name: str) -> dict:
    """A paper's transcribed numbers, ``results/paper/<name>.json``."""
    f = PAPER_DIR / f"{name}.json"
    if not f.is_file():
        raise FileNotFoundError(f"no transcription {str(f)!r}; accepted names: {sorted(p.stem for p in PAPER_DIR.glob('*.json'))}")
    return read_json(f)


def unit_variant(unit: dict) -> str:
    """A unit's numerics variant: the 'variant' :func:`load_units` recorded, else units.unit_variant of its
    provenance; a hand-built unit without provenance counts as 'cpu'."""
    if "variant" in unit:
        return unit["variant"]
    return U.unit_variant(unit) if "provenance" in unit else "cpu"


def units_by_variant(units: list[dict]) -> dict[str, list[dict]]:
    """{variant: its units, in the given order}, variants in units.VARIANTS order."""
    out: dict[str, list[dict]] = {}
    for u in units:
        out.setdefault(unit_variant(u), []).append(u)
    return {v: out[v] for v in sorted(out, key=lambda v: U.VARIANTS.index(v) if v in U.VARIANTS else len(U.VARIANTS))}


def one_variant(units: list[dict], what: str = "these units") -> list[dict]:
    """``units`` when they share one numerics variant; a mix is a ValueError (judge each variant apart)."""
    variants = sorted({unit_variant(u) for u in units})
    if len(variants) > 1:
        files = {v: [u.get("file", "?") for u in units if unit_variant(u) == v] for v in variants}
        raise ValueError(f"{what} mix numerics variants {files}: judge each variant apart (evidence.units_by_variant)")
    return units


def load_units(pattern: str = "riemannopt_table1_*.json", folder: str | Path | None = None,
               variant: str | None = "cpu") -> list[dict]:
    """The stored reference-run units matching ``pattern`` in ``folder`` (default results/reference), each with its file
    name under 'file' and its numerics variant under 'variant', by model and path (IG, BlurIG, Guided IG); only
    ``variant``'s units ('cpu' by default; None: every variant, to group with :func:`units_by_variant`).  Every file
    is checked (units.check_unit): a folder that does not exist, a file that does not parse, a name that is not its
    record's, two units of one (kind, model, path or steps, variant) or a bad number are errors naming the file and
    key.  A dry run's unit (tiny sizes, a test of a script) is never evidence and is skipped."""
    if variant is not None and variant not in U.VARIANTS:
        raise ValueError(f"variant={variant!r}; accepted values: {', '.join(U.VARIANTS)} or None (all)")
    folder = Path(folder) if folder is not None else REFERENCE_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"reference folder {str(folder)!r} does not exist or is not a folder; pass a folder of "
                                f"stored units (default: {REFERENCE_DIR})")
    units, seen = [], {}
    for f in sorted(folder.glob(pattern)):
        rec = read_json(f)
        if isinstance(rec, dict) and isinstance(rec.get("settings"), dict) and rec["settings"].get("dry_run") is True:
            continue
        u = U.check_unit(rec, f)
        key = U.unit_identity(u)
        if key in seen:
            raise U.UnitError(f"{f}: a second unit of {key} (the first: {seen[key]}); keep one")
        seen[key] = f.name
        units.append(u | {"variant": key[3]})
    units = [u for u in units if variant is None or u["variant"] == variant]
    order = list(PATH_LABELS)
    return sorted(units, key=lambda u: (u.get("model", ""), order.index(u["path"]) if u.get("path") in order else len(order),
                                        u.get("settings", {}).get("steps", 0) if isinstance(u.get("settings", {}).get("steps"), int) else 0,
                                        U.VARIANTS.index(u["variant"])))


def paper_rise(paper: dict) -> dict[str, float]:
    """The α where the paper's Figure 2 says the image becomes perceptible, per path (its Section 5 text facts)."""
    rise = {}
    for fact in paper.get("text_facts", []):
        v = fact.get("values", {})
        if "rise_alpha" in v:
            for path in v.get("paths", [v.get("path")]):
                rise[path] = float(v["rise_alpha"])
    return rise


def figure2_units(folder: str | Path | None = None, variant: str = "cpu") -> list[dict]:
    """One stored unit per (model, path) of ``variant`` holding calibration curves and fitted points: the Table 1 unit
    where one is stored, else the points-only unit (``reference_riemannopt.py --points-only``)."""
    by = {(u["model"], u["path"]): u for u in load_units("riemannopt_table1_*.json", folder, variant)}
    for u in load_units("riemannopt_points_*.json", folder, variant):
        by.setdefault((u["model"], u["path"]), u)
    order = list(PATH_LABELS)
    return sorted(by.values(), key=lambda u: (u["model"], order.index(u["path"]) if u["path"] in order else len(order)))


def _longest_interval(left_points) -> tuple[float, float] | None:
    """The longest [α_i, α_{i+1}] of left points α_0 … α_{n−1} (the last interval ends at 1)."""
    a = np.append(np.asarray(left_points, dtype=float), 1.0)
    if a.size < 2:
        return None
    i = int(np.argmax(np.diff(a)))
    return float(a[i]), float(a[i + 1])


def figure2_rows(units: list[dict], rise: dict[str, float], n: int = 16) -> list[dict]:
    """Per unit: the paper's rise α, the peak α of our released |g'| profile, and where the n points of both RiemannOpt
    recipes sit (the median point; the left bound's longest interval [α_i, α_{i+1}], which its degeneracy stretches)."""
    rows = []
    for u in units:
        cal, pts = u["calibration"], u.get("points", {})
        released = np.asarray(pts.get("riemannopt", {}).get(str(n), []), dtype=float)
        left = np.asarray(pts.get("riemannopt_paper_left", {}).get(str(n), []), dtype=float)
        rows.append({
            "model": u["model"], "path": u["path"], "file": u.get("file"), "n": n, "paper_rise": rise.get(u["path"]),
            "profile_peak": float(np.asarray(cal["released_grid"])[int(np.argmax(cal["released_profile"]))]),
            "mean_gprime_peak": float(np.asarray(cal["grid"])[int(np.argmax(cal["mean_gprime"]))]),
            "released_median": float(np.median(released[1:])) if released.size > 1 else None,
            "left_longest": _longest_interval(left),
            "calibration": list(u.get("images", {}).get("calibration", [])),
        })
    return rows


def figure2_markdown(rows: list[dict]) -> str:
    """Markdown table of figure2_rows."""
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    iv = lambda v: "—" if v is None else f"[{v[0]:.3f}, {v[1]:.3f}]"  # noqa: E731
    header = ["model", "path", "paper's rise α", "peak of mean \\|g′\\|", "peak of released profile",
              "median of RiemannOpt's points (right ends)", "left-bound fit: longest interval", "calibration photos"]
    return table(header, [[r["model"], PATH_LABELS.get(r["path"], r["path"]), f(r["paper_rise"]), f(r["mean_gprime_peak"]),
                           f(r["profile_peak"]), f(r["released_median"]), iv(r["left_longest"]), len(r["calibration"])]
                          for r in rows], align="llrrrrrr")


# The IDGI study's Tables 1–3 (and 6–17): our metric key → (table, the study's metric name); method key → column.
STUDY_METRICS = {
    "insertion_prob": (1, "Insertion Score with Probability"), "insertion_ratio": (1, "Insertion Score with Probability Ratio"),
    "aic_webp": (2, "AUC AIC (Normalized Entropy)"), "sic_webp": (2, "AUC SIC (Normalized Entropy)"),
    "aic_msssim": (3, "AUC AIC (MS-SSIM)"), "sic_msssim": (3, "AUC SIC (MS-SSIM)"),
}
STUDY_COLUMNS = {k: v for p in ("ig", "guidedig", "blurig")
                 for k, v in ((p, PATH_LABELS[p]), (p + "+idgi", f"+IDGI ({PATH_LABELS[p]})"))}
_STUDY_KEYS = {column: key for key, column in STUDY_COLUMNS.items()}
IDGI_BASES = tuple(k for k in STUDY_COLUMNS if "+" not in k)  # IG, Guided IG, BlurIG: the study's order


def study_values(paper: dict, metric: str, steps: int = 128) -> dict[str, dict[str, float]]:
    """{the study's model: {method key: value}} of one of our metric keys in the IDGI study's table at ``steps``
    (Tables 1–3 at 128 steps; 6–17 at 64…8, IG and BlurIG only)."""
    if metric not in STUDY_METRICS:
        raise ValueError(f"metric={metric!r} is not in the study's tables; accepted values: {', '.join(STUDY_METRICS)}")
    first, name = STUDY_METRICS[metric]
    for t in paper["tables"]:
        if t.get("steps") != steps or "metrics" not in t:
            continue
        for m in t["metrics"]:
            if m["metric"] == name and (steps != 128 or t["table"] == first):
                keys = [_STUDY_KEYS[col] for col in t["columns"]]
                return {model: dict(zip(keys, row)) for model, row in m["rows"].items()}
    raise ValueError(f"no table of the study holds {name!r} at steps={steps}")


def study_beside_markdown(ours: dict[str, dict[str, float]], paper_rows: dict[str, dict[str, float]],
                          labels: dict[str, str], highlight: str = "Inception V3", fmt: str = "{:.3f}") -> str:
    """Our values {method: {model: value}} beside the study's (its ``highlight`` model and its range over every model
    it ran, and on how many of them the method beat or lost to its IDGI twin), one row per method."""
    models = list(next(iter(ours.values()))) if ours else []
    spread = len(paper_rows) > 1  # a range over one model says nothing
    header = ["method", *(f"ours: {m}" for m in models), f"study: {highlight}"]
    header += [f"study: range over {len(paper_rows)} models"] if spread else []
    rows = []
    for method, per_model in ours.items():
        study = [r[method] for r in paper_rows.values() if method in r]
        hl = paper_rows.get(highlight, {}).get(method)
        row = [labels.get(method, method), *(fmt.format(v) for v in per_model.values()), "—" if hl is None else fmt.format(hl)]
        row += [(f"{fmt.format(min(study))}–{fmt.format(max(study))}" if study else "—")] if spread else []
        rows.append(row)
    return table(header, rows)


def claim_cells(claims: list[dict], row) -> list[dict]:
    """Claims (each with 'model') as cells of plot.claim_intervals: ``row(claim)`` names its row, the series is its
    model with the photos its claims kept (PIC metrics drop photos below min_pred_value), the paper's difference the ×."""
    kept: dict[str, list[int]] = {}
    for c in claims:
        kept.setdefault(c["model"], []).append(c["n_images"])
    series = {m: f"{MODEL_LABELS.get(m, m)} ({min(k)}{'' if min(k) == max(k) else f'–{max(k)}'} photos)" for m, k in kept.items()}
    return [{"row": row(c), "series": series[c["model"]], "mean": c["ours_diff"], "low": c["low"], "high": c["high"],
             "paper": c["paper_diff"]} for c in claims]


def study_idgi_wins(paper_rows: dict[str, dict[str, float]], higher_is_better: bool = True) -> dict[str, str]:
    """{base method: 'k/N'}: on how many of the study's models its IDGI version scored better."""
    out = {}
    for base in IDGI_BASES:
        pairs = [(r[base], r[base + "+idgi"]) for r in paper_rows.values() if base in r and base + "+idgi" in r]
        if pairs:
            wins = sum((b > a) if higher_is_better else (b < a) for a, b in pairs)
            out[base] = f"{wins}/{len(pairs)}"
    return out


_STUDY_ROWS = {"IG": "ig", "IG + IDGI": "ig+idgi", "GIG": "guidedig", "GIG + IDGI": "guidedig+idgi", "BlurIG": "blurig",
               "BlurIG+IDGI": "blurig+idgi", "BlurIG + IDGI": "blurig+idgi"}
_TABLE4_COLUMNS = ("insertion_prob", "insertion_ratio", "aic_webp", "sic_webp", "aic_msssim", "sic_msssim")


def study_table(paper: dict, number: int) -> dict[str, dict[str, float]]:
    """The study's Table 4 ({method key: {metric key: value(128) − value(8)}}, InceptionV3) or Table 5
    ({method key: {'neg_log_mse': value}}, InceptionV3, JPEG quality 75)."""
    if number not in (4, 5):
        raise ValueError(f"number={number!r}; accepted values: 4, 5")
    t = next(t for t in paper["tables"] if t.get("table") == number)
    cols = _TABLE4_COLUMNS if number == 4 else ("neg_log_mse",)
    return {_STUDY_ROWS[r]: dict(zip(cols, v)) for r, v in t["rows"].items()}


def beside_markdown(ours: dict[str, dict[str, float]], paper: dict[str, dict[str, float]], labels: dict[str, str],
                    columns: list[str], fmt: str = "{:+.3f}", column_names: dict[str, str] | None = None) -> str:
    """One row per method: 'ours · **paper**' in each column (the paper's cell left out where it has none)."""
    names = column_names or {}
    rows = []
    for method, row in ours.items():
        cells = []
        for c in columns:
            v, pv = row.get(c), paper.get(method, {}).get(c)
            cells.append(("—" if v is None else fmt.format(v)) + ("" if pv is None else f" · **{fmt.format(pv)}**"))
        rows.append([labels.get(method, method), *cells])
    return table(["method", *(f"{names.get(c, c)}: ours · **study**" for c in columns)], rows)


# ------------------------------------------------------------------ the IDGI study's reference units (Tables 1–3, 5)
# Which direction is better: the registry's (riemannkit.scoring) for a score, these for Table 5's stability quantities.
JPEG_BETTER = {"mse": "lower", "neg_log_mse": "higher", "relative": "lower"}


def idgi_better(metric: str) -> str:
    """'higher' or 'lower': the better direction of a score or of a Table 5 quantity of a reference_idgi unit."""
    return JPEG_BETTER[metric] if metric in JPEG_BETTER else S.better(metric)


def idgi_per_image(unit: dict, method: str, metric: str) -> np.ndarray:
    """One value per photo of a reference_idgi unit (its stored order): a score, or 'mse' / 'neg_log_mse' / 'relative'
    of Table 5; NaN where a PIC metric excluded the photo."""
    cells = unit["cells"]
    if metric in ("mse", "neg_log_mse", "relative"):
        return np.array([cells[n]["jpeg"][method][metric] for n in unit["images"]["evaluated"]], dtype=float)
    return np.array([cells[n]["scores"][method][metric] for n in unit["images"]["evaluated"]], dtype=float)


def idgi_value(unit: dict, method: str, metric: str, per_image: np.ndarray | None = None) -> tuple[float, int]:
    """The table value of one method and metric over a unit's photos, as the study aggregates, and the photos it used:
    the mean (insertion, deletion, completeness, Table 5), the AUC of the mean curve (AIC) or of the median curve
    (SIC) over the photos the PIC metric keeps, rebuilt from the stored raw points (metrics.pic_from_points).
    ``per_image``: :func:`idgi_per_image`'s values when the caller already read them (used by the mean)."""
    from riemannkit import metrics as M

    if metric.startswith(("sic_", "aic_")):
        pts = [unit["cells"][n]["pic"][method][metric] for n in unit["images"]["evaluated"]]
        res = M.pic_from_points(metric[:3], [p["info"] for p in pts], [p["score"] for p in pts], [p["valid"] for p in pts],
                                [p["reason"] for p in pts])
        n_valid = int(res.valid.sum())
        return (M.aggregate_pic(res)[1] if n_valid else float("nan")), n_valid
    v = idgi_per_image(unit, method, metric) if per_image is None else per_image
    return float(np.mean(v)), int(v.size)


def idgi_table(unit: dict, metric: str, methods: list[str] | None = None, seed: int = 0, fmt: str = "{:.3f}") -> dict[str, str]:
    """{method: 'value [95 % CI]'}: the study-style value and a percentile-bootstrap CI of the mean over photos
    (for SIC the CI is of the median of the per-photo AUCs, the statistic nearest its median curve)."""
    out = {}
    for m in methods or unit["methods"]:
        v = idgi_per_image(unit, m, metric)
        value, n_used = idgi_value(unit, m, metric, v)
        v = v[np.isfinite(v)]
        if v.size >= 2:
            ci = ST.bootstrap_ci(v, stat="median" if metric.startswith("sic_") else "mean", seed=seed)
            out[m] = f"{fmt.format(value)} [{fmt.format(ci.low)}, {fmt.format(ci.high)}] ({n_used})"
        else:
            out[m] = f"{fmt.format(value)} ({n_used})"
    return out


def _study_row(study: dict | None, metric: str, highlight: str = "Inception V3") -> dict[str, float]:
    """{method: the study's value} of one metric on its ``highlight`` model: Tables 1–3 at 128 steps, or Table 5's
    −ln MSE; empty without the study or for a metric it did not report."""
    if study is None:
        return {}
    if metric in STUDY_METRICS:
        return study_values(study, metric, 128).get(highlight, {})
    if metric == "neg_log_mse":
        return {m: v["neg_log_mse"] for m, v in study_table(study, 5).items()}
    return {}


def idgi_beside_markdown(unit: dict, metrics: list[str], labels: dict[str, str], study: dict | None = None,
                         highlight: str = "Inception V3", seed: int = 0) -> str:
    """One row per method of a reference_idgi unit (and its random control where the metric has one), one column per
    metric: 'ours [95 % CI] (photos) · **the study**' (its ``highlight`` model's value in its Tables 1–3 at 128 steps,
    or Table 5's −ln MSE; nothing beside our extra rows)."""
    paper = {metric: _study_row(study, metric, highlight) for metric in metrics}
    first = unit["cells"][unit["images"]["evaluated"][0]]
    has = {m: {k for k in (*first["scores"].get(m, {}), *first["jpeg"].get(m, {}))} for m in [*unit["methods"], "random"]}
    rows = []
    for method, keys in has.items():
        if not any(m in keys for m in metrics):
            continue
        row = []
        for metric in metrics:
            pv = paper.get(metric, {}).get(method)
            ours = idgi_table(unit, metric, [method], seed)[method] if metric in keys else "—"
            row.append(ours + ("" if pv is None else f" · **{pv:.3f}**"))
        rows.append([labels.get(method, method), *row])
    return table(["method", *(f"{m}: ours [95 % CI] (photos) · **study**" for m in metrics)], rows)


def _study_pair(study: dict | None, metric: str, base: str, highlight: str = "Inception V3") -> tuple[float | None, float | None]:
    """The study's (IDGI, base) values for one metric on its ``highlight`` model (Tables 1–3 at 128 steps, Table 5)."""
    row = _study_row(study, metric, highlight)
    return row.get(base + "+idgi"), row.get(base)


def idgi_claims(units: list[dict], metrics: list[str], seed: int = 0, study: dict | None = None) -> list[dict]:
    """Per unit (model), base path and metric: IDGI's score minus its base path's, paired over the photos both keep;
    the claim is that IDGI scores better (higher, but lower for deletion, completeness, MSE and the relative error ρ;
    Table 5: a higher −ln MSE, i.e. a more stable map); ``study`` (idgi_study_tables) puts its InceptionV3 difference
    beside ours.  ``units``: of one numerics variant."""
    out = []
    one_variant(units, "idgi_claims' units")
    for u in units:
        for base in IDGI_BASES:
            if base not in u["methods"] or base + "+idgi" not in u["methods"]:
                continue
            for metric in metrics:
                a, b = idgi_per_image(u, base + "+idgi", metric), idgi_per_image(u, base, metric)
                keep = np.isfinite(a) & np.isfinite(b)
                if keep.sum() < 2:
                    continue
                better = idgi_better(metric)
                out.append(claim(f"{PATH_LABELS[base]} + IDGI scores {better} (better) than {PATH_LABELS[base]} on {metric}",
                                 a[keep], b[keep], better, *_study_pair(study, metric, base), seed=seed,
                                 model=u["model"], path=base, metric=metric))
    return out


# Tolerance of idgi_recompute_gap.  The stored maps are float32 sums whose last bits move with the batch, the thread
# count and the CPU's kernels (one thread takes other conv kernels than two, whatever the batch); the sum over 150k
# pixels cancels, and with few steps the spread grows: on Lite0 (AMD EPYC), 1 against 2 threads moved IG's completeness
# error by up to 5.2e-4 over the first four pool photos at 8 steps (batch size: < 1e-6) and by 4e-7 on chelsea at 128
# steps; float64 differs from both by 7e-5 there.  2e-3 stays above that spread and far below the table's differences.
RECOMPUTE_TOL = 2e-3


def idgi_recompute_gap(unit: dict, methods: tuple[str, ...] = ("ig", "ig+idgi"),
                       keys: tuple[str, ...] = ("insertion_prob", "deletion", "completeness"), batch_size: int = 16) -> tuple[str, float]:
    """(photo, largest |recomputed − stored|): the unit's first photo explained again on the CPU with the unit's
    settings (its 8-bit copy, target, steps, insertion start, ranking) for ``methods``, scored on ``keys``; compare it
    with :data:`RECOMPUTE_TOL` (float32 rounding, not a finding)."""
    import torch

    from riemannkit import evaluation as EV
    from riemannkit import metrics as M
    from riemannkit.data import load_images
    from riemannkit.models import load_model

    s, name = unit["settings"], unit["images"]["evaluated"][0]
    cell = unit["cells"][name]
    net, size, _ = load_model(unit["model"], torch.device("cpu"))
    x, _ = load_images(s["source"], size=size, names=[name])
    xq = M._to_uint8(x).float() / 255
    target = torch.tensor([cell["target"]])
    maps = EV.method_maps(net, xq, list(methods), s["steps"], None, target, "prob", batch_size, s["path_kwargs"])
    tab = EV.metric_table(net, xq, maps, list(keys), target, steps=s["insertion_steps"], insertion_start=s["insertion_start"],
                          reduce=s["reduce"], pic_start=s["pic_start"], min_pred_value=s["min_pred_value"], seed=s["seed"],
                          batch_size=batch_size)
    return name, max(abs(tab[m][k]["per_image"][0] - cell["scores"][m][k]) for m in methods for k in keys)


def idgi_units_at(units: list[dict], steps: int = 128) -> list[dict]:
    """The reference_idgi units made at ``steps`` (128: the study's Tables 1–3 and 5; 8: Table 4's other end)."""
    return [u for u in units if u.get("settings", {}).get("steps") == steps]


def _paired_units(units: list[dict], lo: int, hi: int, unpaired: dict | None = None) -> list[tuple[dict, dict, list[str]]]:
    """(unit at lo, unit at hi, their common photos) per model holding both with at least 2 common photos; ``unpaired``
    (a dict) receives {model: why not} for the other models with a unit at either step count."""
    one_variant(units, "the step-count pairs' units")
    out = []
    for model in dict.fromkeys(u["model"] for u in units):
        h = next((u for u in idgi_units_at(units, hi) if u["model"] == model), None)
        low = next((u for u in idgi_units_at(units, lo) if u["model"] == model), None)
        if h is None or low is None:
            why = f"no unit at {hi if h is None else lo} steps stored yet"
        else:
            common = [n for n in h["images"]["evaluated"] if n in low["cells"]]
            if len(common) >= 2:
                out.append((low, h, common))
                continue
            why = f"its {lo}- and {hi}-step units share {len(common)} photo(s); a paired difference needs 2 or more"
        if unpaired is not None:
            unpaired[model] = why
    return out


def _restrict(unit: dict, names: list[str]) -> dict:
    return {**unit, "images": {**unit["images"], "evaluated": names}}


def table4_values(units: list[dict], metrics: list[str], lo: int = 8, hi: int = 128) -> dict[str, dict[str, dict[str, float]]]:
    """{model: {method: {metric: value(hi) − value(lo)}}}: the study's Table 4 over the photos both units hold
    (models whose units share fewer than 2 photos are left out)."""
    out = {}
    for low, high, common in _paired_units(units, lo, hi):
        out[high["model"]] = {m: {k: idgi_value(_restrict(high, common), m, k)[0] - idgi_value(_restrict(low, common), m, k)[0]
                                  for k in metrics} for m in high["methods"]}
    return out


def sweep_values(units: list[dict], model: str, metrics: list[str]) -> tuple[dict[str, dict[str, dict[int, float]]], list[str]]:
    """The study's Figure 3 over stored units: ({metric: {method: {steps: value}}}, the photos) for one model, every
    reference_idgi unit of it (one per step count) scored on the photos all of them hold, so the curves are comparable.
    A partial unit (``complete`` false, a run still under way) is left out: it would shrink every curve to its photos;
    :func:`partial_steps` names it."""
    one_variant([u for u in units if u["model"] == model], f"sweep_values' units of {model}")
    mine = sorted((u for u in units if u["model"] == model and not U.is_partial(u)), key=lambda u: u["settings"]["steps"])
    if not mine:
        return {}, []
    common = [n for n in mine[0]["images"]["evaluated"] if all(n in u["cells"] for u in mine)]
    out: dict = {k: {} for k in metrics}
    for u in mine:
        ru = _restrict(u, common)
        for k in metrics:
            for m in u["methods"]:
                out[k].setdefault(m, {})[int(u["settings"]["steps"])] = idgi_value(ru, m, k)[0]
    return out, common


def partial_steps(units: list[dict], model: str) -> dict[int, tuple[int, int]]:
    """{steps: (photos evaluated, photos planned)} of ``model``'s partial reference_idgi units (left out of :func:`sweep_values`)."""
    return {int(u["settings"]["steps"]): (len(u["images"]["evaluated"]), len(u["images"].get("planned", u["images"]["evaluated"])))
            for u in units if u["model"] == model and U.is_partial(u)}


def table4_claims(units: list[dict], metrics: list[str], lo: int = 8, hi: int = 128, seed: int = 0,
                  unpaired: dict | None = None, study: dict | None = None) -> list[dict]:
    """The study's claim "IDGI is more sensitive to the number of steps than its base method", per model, base path and
    metric: per photo |value(hi) − value(lo)| of IDGI minus that of the base path, paired (claim: higher).  ``unpaired``
    (a dict) receives {model: why it has no pair} (:func:`_paired_units`); ``study`` (idgi_study_tables) puts its
    InceptionV3 |Δ| of Table 4 (8 → 128 steps) beside ours."""
    t4 = study_table(study, 4) if study is not None and (lo, hi) == (8, 128) else {}
    out = []
    for low, high, common in _paired_units(units, lo, hi, unpaired):
        hu, lu = _restrict(high, common), _restrict(low, common)
        for base in IDGI_BASES:
            if not {base, base + "+idgi"} <= set(high["methods"]) & set(low["methods"]):
                continue
            for metric in metrics:
                move = {m: np.abs(idgi_per_image(hu, m, metric) - idgi_per_image(lu, m, metric)) for m in (base, base + "+idgi")}
                keep = np.isfinite(move[base]) & np.isfinite(move[base + "+idgi"])
                if keep.sum() < 2:
                    continue
                pa, pb = (t4.get(m, {}).get(metric) for m in (base + "+idgi", base))
                out.append(claim(f"{PATH_LABELS[base]} + IDGI's {metric} moves more from n = {lo} to n = {hi} than {PATH_LABELS[base]}'s",
                                 move[base + "+idgi"][keep], move[base][keep], "higher",
                                 None if pa is None else abs(pa), None if pb is None else abs(pb), seed=seed,
                                 model=high["model"], path=base, metric=metric))
    return out


def idgi_claim_row(units: list[dict], metrics: list[str], models: list[str], seed: int = 0, steps: bool = False) -> dict:
    """The "What held" verdict of an IDGI claim made for every model: combined over models, paths and metrics
    ('inconclusive' at best while a model has no stored unit), with each cell's effect.  ``steps``: the step-count
    claim (Table 4, units at 8 and 128 steps) instead of IDGI-versus-base at 128 steps."""
    mine = one_variant([u for u in units if u["model"] in models], "idgi_claim_row's units")
    why: dict = {}
    cells = table4_claims(mine, metrics, seed=seed, unpaired=why) if steps else idgi_claims(idgi_units_at(mine, 128), metrics, seed)
    row = _every_model(cells, models, lambda c: f"{PATH_LABELS[c['path']]} {c['metric']}", why)
    if not row and why:
        row = {"ours": "; ".join(f"{m}: {w}" for m, w in why.items())}
    return row


def _every_model(cells: list[dict], models: list[str], label, why: dict | None = None) -> dict:
    """The combined row of a claim made for every model in ``models``: each cell named by its model and
    ``label(cell)``; 'inconclusive' at best while a model has no cell (``why``: {model: the reason}, else "not stored
    yet")."""
    row = _combined_row(cells, lambda c: f"{c['model'].replace('efficientnet_', '')} {label(c)}")
    missing = [m for m in models if m not in {c["model"] for c in cells}]
    if row and missing:
        # A claim "for every model" cannot hold while a model is not stored; it can already fail.
        row["ours"] += "; " + "; ".join(f"{m}: {(why or {})[m]}" if m in (why or {}) else f"{m} not stored yet (partial run)"
                                        for m in missing)
        if row["verdict"] == "holds":
            row["verdict"] = "inconclusive"
    return row


def insertion_claims(unit: dict, metric: str = "insertion_prob", seed: int = 0) -> list[dict]:
    """Per path and n of a reference_insertion unit: RiemannOpt's insertion score minus the baseline's, paired over the
    photos (claim: higher), with the relative change of the means (the paper's "up to 20 %")."""
    out = []
    names = unit["images"]["evaluated"]
    for path, base in unit["baseline"].items():
        steps = sorted({int(n) for c in unit["cells"].values() for n in c.get(path, {})})
        for n in steps:
            a = [unit["cells"][p][path][str(n)]["riemannopt"][metric] for p in names]
            b = [unit["cells"][p][path][str(n)][base][metric] for p in names]
            if len(a) < 2:
                continue
            c = claim(f"{PATH_LABELS[path]} + RiemannOpt has a higher {metric} than {PATH_LABELS[path]} at n = {n}",
                      a, b, "higher", seed=seed, model=unit["model"], path=path, n=n, baseline=base)
            c["relative_change"] = float(np.mean(a) / np.mean(b) - 1)
            out.append(c)
    return out


def _combined_row(cells: list[dict], label, model: str | None = None) -> dict:
    """A "What held" row from the cells of a claim made for all of them: the combined verdict, each cell's effect
    (``label(cell)`` names it), the fewest images of any cell and the model(s)."""
    if not cells:
        return {}
    ours = "; ".join(f"{label(c)}: {c['ours_diff']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}] ({c['verdict']})" for c in cells)
    return {"verdict": combined_verdict([c["verdict"] for c in cells]), "ours": ours,
            "images": min(c["n_images"] for c in cells),
            "model": model or ", ".join(dict.fromkeys(c["model"] for c in cells))}


def insertion_claim_row(units: list[dict], model: str, seed: int = 0) -> dict:
    """The "What held" verdict of R5 (RiemannOpt improves insertion scores): combined over paths and n."""
    one_variant([u for u in units if u["model"] == model], "insertion_claim_row's units")
    unit = next((u for u in units if u["model"] == model), None)
    return _combined_row(insertion_claims(unit, seed=seed) if unit else [],
                         lambda c: f"{PATH_LABELS[c['path']]} n = {c['n']} ({c['relative_change']:+.1%})", model)


def insertion_table1_agreement(unit: dict, table1_units: list[dict]) -> dict[str, float]:
    """Per path, the largest absolute difference between the relative completeness errors of a reference_insertion
    unit's maps and the Table 1 unit's per-image values for the same photo, n and recipe: the same maps computed twice,
    one photo per call here, 31 photos per call there."""
    worst: dict[str, float] = {}
    for t in table1_units:
        if t["model"] != unit["model"] or t["path"] not in unit["baseline"]:
            continue
        idx = {n: i for i, n in enumerate(t["images"]["evaluated"])}
        for photo, cell in unit["cells"].items():
            for n, recipes in cell.get(t["path"], {}).items():
                for recipe, v in recipes.items():
                    ref = t["results"].get(recipe, {}).get(n)
                    if ref is not None and photo in idx:
                        gap = abs(v["rel_error"] - ref["rel_error"][idx[photo]])
                        worst[t["path"]] = max(worst.get(t["path"], 0.0), gap)
    return worst


# ------------------------------------------------------------------ SAMP over the pool (reference_samp units)
SAMP_BASES = ("ig", "blurig", "guidedig")
SAMP_METRICS = ("deletion", "insertion_prob")


def samp_claims(unit: dict, seed: int = 0) -> list[dict]:
    """SAMP's claim per base path and metric of a reference_samp unit: SAMP's deletion lower and insertion higher than
    the base path's, paired over the photos."""
    names = unit["images"]["evaluated"]
    out = []
    for base in SAMP_BASES:
        for metric in SAMP_METRICS:
            direction = S.better(metric)
            a = [unit["cells"][n]["scores"]["samp"][metric] for n in names]
            b = [unit["cells"][n]["scores"][base][metric] for n in names]
            if len(a) >= 2:
                out.append(claim(f"SAMP has a {direction} {metric} than {PATH_LABELS[base]}", a, b, direction, seed=seed,
                                 model=unit["model"], path=base, metric=metric))
    return out


def samp_claim_row(units: list[dict], models: list[str], seed: int = 0) -> dict:
    """The "What held" verdict of S1 (SAMP beats IG, BlurIG and Guided IG on deletion and insertion), combined over
    the models' units ('inconclusive' at best while a model has none)."""
    cells = [c for u in one_variant([u for u in units if u["model"] in models], "samp_claim_row's units") for c in samp_claims(u, seed)]
    return _every_model(cells, models, lambda c: f"SAMP − {PATH_LABELS[c['path']]}, {c['metric']}")


STORED_UNITS = {"idgi_study": "idgi_study_*.json", "riemannopt_insertion": "riemannopt_insertion_*.json",
                "samp_pool": "samp_pool_*.json"}


def load_stored(folder: str | Path | None = None, variant: str | None = "cpu") -> dict[str, list[dict]]:
    """The photo-by-photo reference units of ``variant`` by kind (STORED_UNITS), for :func:`judge_claims`."""
    return {kind: load_units(pattern, folder, variant) for kind, pattern in STORED_UNITS.items()}


def _paper_cell(paper: dict, path: str, recipe: str, n: int) -> float | None:
    table = paper["tables"][0]
    for row, key in table["row_keys"].items():
        if key["path"] == path and key["recipe"] == recipe and n in table["n"]:
            return table["rows"][row][table["n"].index(n)]
    return None


def table1_cells(units: list[dict], paper: dict | None = None, seed: int = 0) -> list[dict]:
    """One dict per (model, path, recipe, n): our mean relative error with its 95 % CI over images, and the paper's value
    (``units`` of one numerics variant)."""
    cells = []
    one_variant(units, "table1_cells' units")
    for u in units:
        for recipe, per_n in u["results"].items():
            for n_str, cell in per_n.items():
                n = int(n_str)
                ci = ST.bootstrap_ci(cell["rel_error"], seed=seed)
                cells.append({
                    "model": u["model"], "path": u["path"], "recipe": recipe, "n": n, "mean": ci.estimate, "low": ci.low,
                    "high": ci.high, "n_images": ci.n, "pooled": cell.get("pooled"), "n_gradients": cell.get("n_gradients"),
                    "paper": _paper_cell(paper, u["path"], recipe, n) if paper else None,
                })
    return cells


# Table 1's rows as a reader names them (the units' keys are code names).
TABLE1_ROW_LABELS = {"linear_left": "linear, left sum", "linear_right": "linear, right sum",
                     "riemannopt": "RiemannOpt, released (right sum)", "riemannopt_paper_left": "RiemannOpt, paper's left bound",
                     "gausslegendre": "Gauss–Legendre", "density": "√|g′| density (ours)"}


def table1_markdown(cells: list[dict], recipe_labels: dict[str, str] | None = None, fmt: str = "{:.3f}", ci: bool = False) -> str:
    """Table 1 as the paper prints it, one table per model: a row per (path, method), a column per n, each cell 'ours
    (**paper**)' (the paper's number in bold where it has one); ``ci`` gives the same table with our 95 % CIs
    instead.  The model and photo count head each table instead of repeating on every row."""
    labels = {**TABLE1_ROW_LABELS, **(recipe_labels or {})}
    steps = sorted({c["n"] for c in cells})
    by = {(c["model"], c["path"], c["recipe"], c["n"]): c for c in cells}
    out = []
    for model in dict.fromkeys(c["model"] for c in cells):
        keys = list(dict.fromkeys((c["path"], c["recipe"]) for c in cells if c["model"] == model))
        n_img = sorted({c["n_images"] for c in cells if c["model"] == model})
        what = "ours, 95 % CI" if ci else "ours (**paper**: InceptionV3, ImageNet)"
        rows = []
        for path, recipe in keys:
            row = []
            for n in steps:
                c = by.get((model, path, recipe, n))
                if c is None:
                    row.append("—")
                elif ci:
                    row.append(f"[{fmt.format(c['low'])}, {fmt.format(c['high'])}]")
                else:
                    row.append(fmt.format(c["mean"]) + ("" if c["paper"] is None else f" (**{fmt.format(c['paper'])}**)"))
            rows.append([PATH_LABELS.get(path, path), labels.get(recipe, recipe), *row])
        out += [f"**{model}**, {'/'.join(map(str, n_img))} photos; {what}:", "",
                table(["path", "method", *(f"n = {n}" for n in steps)], rows, align="ll" + "r" * len(steps)), ""]
    return "\n".join(out).rstrip("\n")


# Fewer images than this make a bootstrap interval too narrow to trust: such a claim is 'inconclusive'.
MIN_IMAGES = 10


def claim(statement: str, a, b, direction: str, paper_a: float | None = None, paper_b: float | None = None,
          seed: int = 0, **where) -> dict:
    """A claim "a − b has sign ``direction``" judged on paired per-image values: the CI of the mean difference and its
    verdict ('inconclusive' below MIN_IMAGES images, whatever the interval)."""
    ci = ST.paired_difference(a, b, seed=seed)
    paper_diff = None if paper_a is None or paper_b is None else paper_a - paper_b
    return {"claim": statement, **where, "ours_diff": ci.estimate, "low": ci.low, "high": ci.high, "n_images": ci.n,
            "paper_a": paper_a, "paper_b": paper_b, "paper_diff": paper_diff,
            "paper_verdict": None if paper_diff is None else ("holds" if np.sign(paper_diff) == (-1 if direction == "lower" else 1) else "does not hold"),
            "verdict": ST.verdict(ci, direction) if ci.n >= MIN_IMAGES else "inconclusive"}


def table1_claims(units: list[dict], paper: dict, seed: int = 0) -> list[dict]:
    """RiemannOpt's Table 1 claim, per path and n: the released recipe's relative error is lower than the baseline's,
    and the same for the paper's left-bound fit (our row, not the paper's); ``units`` of one numerics variant."""
    out = []
    one_variant(units, "table1_claims' units")
    for u in units:
        path, base = u["path"], TABLE1_BASELINE[u["path"]]
        res = u["results"]
        for n_str in sorted(res.get("riemannopt", {}), key=int):
            n = int(n_str)
            if n_str not in res.get(base, {}):
                continue
            for recipe, what in (("riemannopt", "RiemannOpt (released recipe)"), ("riemannopt_paper_left", "RiemannOpt, paper's left bound")):
                if n_str not in res.get(recipe, {}):
                    continue
                out.append(claim(
                    f"{PATH_LABELS[path]} + {what} has a lower relative completeness error than {PATH_LABELS[path]} at n = {n}",
                    res[recipe][n_str]["rel_error"], res[base][n_str]["rel_error"], "lower",
                    _paper_cell(paper, path, "riemannopt", n) if recipe == "riemannopt" else None,
                    _paper_cell(paper, path, base, n) if recipe == "riemannopt" else None,
                    seed=seed, model=u["model"], path=path, n=n, recipe=recipe, baseline=base,
                ))
    return out


def unit_errors(unit: dict, row: str, n: int | str, photos: list[str]) -> np.ndarray:
    """The stored relative completeness errors of ``photos`` (in that order) for one recipe row and n of a Table 1 unit."""
    names = list(unit["images"]["evaluated"])
    missing = [p for p in photos if p not in names]
    if missing:
        raise ValueError(f"photos {missing} are not in the unit's evaluated photos; accepted values: {', '.join(names)}")
    cell = unit["results"][row][str(n)]["rel_error"]
    return np.asarray([cell[names.index(p)] for p in photos], dtype=np.float64)


def best_recipe_claims(units: list[dict], baseline: str = "linear_left", seed: int = 0) -> list[dict]:
    """Which rule and placement to use at a budget n, judged on Table 1 units: per (model, path, n) the recipe other
    than ``baseline`` with the lowest mean relative error on the even-indexed photos is chosen, then the claim "it is
    lower than ``baseline``" is judged on the odd-indexed photos (the choice and its test on disjoint photos, so the
    luck of the pick is not counted as evidence).  Each claim also holds 'recipe', 'n', 'path' and 'factor' (the mean
    baseline error over the mean chosen error, on the test photos)."""
    out = []
    for u in one_variant(units, "best_recipe_claims' units"):
        names = list(u["images"]["evaluated"])
        pick, test = names[0::2], names[1::2]
        for n in sorted({int(k) for per_n in u["results"].values() for k in per_n}):
            rows = [r for r in u["results"] if str(n) in u["results"][r]]
            if baseline not in rows or len(rows) < 2:
                continue
            mean = {r: float(unit_errors(u, r, n, pick).mean()) for r in rows if r != baseline}
            best = min(mean, key=mean.get)
            a, b = unit_errors(u, best, n, test), unit_errors(u, baseline, n, test)
            label = TABLE1_ROW_LABELS.get(best, best)
            c = claim(f"{PATH_LABELS.get(u['path'], u['path'])}, n = {n}: {label} (chosen on {len(pick)} photos) has a lower "
                      f"error than the {TABLE1_ROW_LABELS.get(baseline, baseline)}", a, b, "lower", seed=seed,
                      model=u["model"], path=u["path"], n=n, recipe=best)
            out.append(c | {"factor": float(b.mean() / a.mean()) if a.mean() > 0 else float("inf"),
                            "best_mean": float(a.mean()), "baseline_mean": float(b.mean())})
    return out


def best_recipe_markdown(claims: list[dict], fmt: str = "{:.3f}") -> str:
    """The answer table of :func:`best_recipe_claims`: per path and n the chosen recipe, its and the baseline's mean
    error on the test photos with their ratio, the paired difference [95 % CI] and the verdict."""
    rows = [[PATH_LABELS.get(c["path"], c["path"]), c["n"], TABLE1_ROW_LABELS.get(c["recipe"], c["recipe"]),
             f"{fmt.format(c['best_mean'])} · {fmt.format(c['baseline_mean'])} ({c['factor']:.1f}×)",
             f"{c['ours_diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}], {c['n_images']}",
             f"**{VERDICT_BADGES.get(c['verdict'], c['verdict'])}**"] for c in claims]
    return table(["path", "n", "chosen on the even photos", "mean error: chosen · left sum (factor)",
                  "difference [95 % CI], photos", "verdict"], rows, align="lrlrrl")


def table1_by_variant(paper: dict, folder: str | Path | None = None, recipe: str = "riemannopt") -> list[dict]:
    """Table 1's claim cells (:func:`table1_claims`, ``recipe``) per (model, path, n) under every stored numerics variant:
    rows {'model', 'path', 'n', 'by_variant': {variant: claim}, 'floor', 'verdict'}.  'verdict' is 'device-sensitive'
    when the variants that hold the cell disagree; when two or more agree, it is stats.floor_verdict's on the photos
    they share, each photo's difference widened by its spread across the variants ('floor': that verdict and the
    widest widened CI), so an agreement inside the numerical floor is 'inconclusive'; one variant alone: its verdict."""
    units = load_units("riemannopt_table1_*.json", folder, variant=None)
    rows: dict[tuple, dict] = {}
    unit_of: dict[tuple, dict] = {}
    for v, us in units_by_variant(units).items():
        for u in us:
            unit_of[(u["model"], u["path"], v)] = u
        for c in table1_claims(us, paper):
            if c["recipe"] != recipe:
                continue
            key = (c["model"], c["path"], c["n"])
            rows.setdefault(key, {"model": c["model"], "path": c["path"], "n": c["n"], "by_variant": {}})["by_variant"][v] = c
    order = list(PATH_LABELS)
    out = []
    for key in sorted(rows, key=lambda k: (k[0], order.index(k[1]) if k[1] in order else len(order), k[2])):
        row = rows[key]
        verdicts = {c["verdict"] for c in row["by_variant"].values()}
        row["verdict"] = verdicts.pop() if len(verdicts) == 1 else "device-sensitive"
        row["floor"] = None
        if len(row["by_variant"]) >= 2 and row["verdict"] != "device-sensitive":
            # The variants agree: judge again with each photo's difference widened by its spread across the variants
            # (stats.floor_verdict), on the photos every variant evaluated; a difference inside that floor is no evidence.
            us = {v: unit_of[(row["model"], row["path"], v)] for v in row["by_variant"]}
            photos = [p for p in next(iter(us.values()))["images"]["evaluated"] if all(p in u["images"]["evaluated"] for u in us.values())]
            if len(photos) >= MIN_IMAGES:
                base, n = TABLE1_BASELINE[row["path"]], row["n"]
                fv = ST.floor_verdict({v: unit_errors(u, recipe, n, photos) - unit_errors(u, base, n, photos)
                                       for v, u in us.items()}, "lower")
                row["floor"] = {"verdict": fv.verdict, "low": min(lo for lo, _ in fv.floor_cis.values()),
                                "high": max(hi for _, hi in fv.floor_cis.values()), "photos": len(photos)}
                row["verdict"] = fv.verdict
        out.append(row)
    return out


def table1_by_variant_markdown(rows: list[dict], fmt: str = "{:+.3f}") -> str:
    """Markdown table of :func:`table1_by_variant`: per model, path and n, each variant's mean paired difference
    [95 % CI] and verdict, then the verdict across variants."""
    variants = [v for v in U.VARIANTS if any(v in r["by_variant"] for r in rows)]
    body = []
    for r in rows:
        cells = []
        for v in variants:
            c = r["by_variant"].get(v)
            cells.append("—" if c is None else f"{fmt.format(c['ours_diff'])} [{fmt.format(c['low'])}, {fmt.format(c['high'])}], "
                                               f"{c['n_images']}: {c['verdict']}")
        floor = "" if not r.get("floor") else f"with the floor [{fmt.format(r['floor']['low'])}, {fmt.format(r['floor']['high'])}]: "
        body.append([r["model"], PATH_LABELS.get(r["path"], r["path"]), r["n"], *cells, f"{floor}**{r['verdict']}**"])
    return table(["model", "path", "n", *(f"`{v}`: difference [95 % CI], images" for v in variants), "across variants"], body,
                 align="llr" + "l" * (len(variants) + 1))


def claims_markdown(claims: list[dict], fmt: str = "{:+.3f}") -> str:
    """Markdown table of claims: ours (mean paired difference and 95 % CI, images), the paper's difference, verdict."""
    rows = []
    for c in claims:
        paper = "—" if c["paper_diff"] is None else f"{fmt.format(c['paper_diff'])} ({c['paper_verdict']})"
        rows.append([c["claim"], c.get("model", ""), c["n_images"],
                     f"{fmt.format(c['ours_diff'])} [{fmt.format(c['low'])}, {fmt.format(c['high'])}]", paper, f"**{c['verdict']}**"])
    return table(["claim", "model", "images", "ours: mean difference [95 % CI]", "paper: difference", "verdict"], rows,
                 align="llrrrl")


def verdict_counts(claims: list[dict]) -> dict[str, int]:
    """How many claims hold, do not hold, or are inconclusive."""
    return {v: sum(c["verdict"] == v for c in claims) for v in ST.VERDICTS}


def verdict_summary(claims: list[dict], what: str = "claims") -> str:
    """One Markdown sentence: the verdict counts over ``claims`` and per model (computed, never typed)."""
    models = list(dict.fromkeys(c["model"] for c in claims))
    per_model = "; ".join(f"{MODEL_LABELS.get(m, m)}: " + ", ".join(
        f"{k} {v}" for k, v in verdict_counts([c for c in claims if c["model"] == m]).items()) for m in models)
    return (f"**Verdicts over {len(claims)} {what}:** " + ", ".join(f"{k} {v}" for k, v in verdict_counts(claims).items())
            + (f". Per model: {per_model}." if len(models) > 1 else "."))


def provenance_line(unit: dict) -> str:
    """One sentence naming where a stored unit came from: commit, command, device, versions, images, date, wall time."""
    p = unit.get("provenance", {})
    imgs = unit.get("images", {})
    n_eval = len(imgs.get("evaluated", []))
    # What a reader planning a rerun needs: the unit's time over the photos it evaluated (calibration included).
    per_photo = f" ({p['wall_s'] / n_eval:.0f} s of wall time per evaluated photo)" if n_eval and isinstance(p.get("wall_s"), (int, float)) else ""
    commit = U.commit_words(p)
    return (f"`{unit.get('file', '?')}`: {commit}, "
            f"{p.get('device', '?')}, torch {p.get('torch', '?')}, numpy {p.get('numpy', '?')}, scipy {p.get('scipy', '?')}, "
            f"pillow {p.get('pillow', '?')}; {n_eval} evaluated photos"
            + (f", {len(imgs['calibration'])} calibration photos ({', '.join(imgs['calibration'])})" if imgs.get("calibration") else "")
            + f"; "
            f"{p.get('date', '?')}, wall time {p.get('wall_s', '?')} s{per_photo}; command: `{p.get('command', '?')}`")


def cross_n_claim(units: list[dict], path: str, n_opt: int, n_base: int, paper: dict | None = None, seed: int = 0) -> dict | None:
    """"RiemannOpt at n_opt is not worse than the baseline at n_base" on paired per-image errors (None without the cells)."""
    one_variant(units, "cross_n_claim's units")
    for u in units:
        if u["path"] != path:
            continue
        res, base = u["results"], TABLE1_BASELINE[path]
        a, b = res.get("riemannopt", {}).get(str(n_opt)), res.get(base, {}).get(str(n_base))
        if a is None or b is None:
            return None
        return claim(
            f"{PATH_LABELS[path]} + RiemannOpt at n = {n_opt} is not worse than {PATH_LABELS[path]} at n = {n_base}",
            a["rel_error"], b["rel_error"], "lower",
            _paper_cell(paper, path, "riemannopt", n_opt) if paper else None,
            _paper_cell(paper, path, base, n_base) if paper else None,
            seed=seed, model=u["model"], path=path, n=n_opt, recipe="riemannopt", baseline=base,
        )
    return None


def claim_records(claims: list[dict], folder: str | Path | None = None) -> dict[str, dict]:
    """The stored chapter runs (``results/<file>``) that claims judged from a chapter run name in their args."""
    folder = Path(folder) if folder is not None else ROOT / "results"
    files = {c["args"]["file"] for c in claims if isinstance(c.get("args"), dict) and "file" in c["args"]}
    return {f: read_json(folder / f) | {"file": f} for f in sorted(files) if (folder / f).is_file()}


def manifold_attack_claims(record: dict, seed: int = 0) -> list[dict]:
    """Manifold IG's robustness claim on a stored manifold_ig run: under the attack aimed at IG, MIG's map stays closer to
    its clean map than IG's does (paired over the attacked images), by Pearson correlation and by top-10 % overlap."""
    move = record["attack"]["move"]
    return [claim(f"MIG's map moves less than IG's under the targeted attack ({label}, clean vs attacked map)",
                  move["MIG"][key], move["IG"][key], "higher", seed=seed, model="Fashion-MNIST CNN (Softplus)",
                  measure=key)
            for key, label in (("pearson", "Pearson correlation"), ("topk", "top-10 % overlap"))]


def combined_verdict(verdicts: list[str]) -> str:
    """A claim made for every cell ("at every n"): holds if every cell holds, does not hold if any does not, else inconclusive."""
    if not verdicts:
        return "not judged"
    if any(v == "does not hold" for v in verdicts):
        return "does not hold"
    return "holds" if all(v == "holds" for v in verdicts) else "inconclusive"


def judge_claims(claims: list[dict], units: list[dict], paper: dict, records: dict[str, dict] | None = None,
                 stored: dict[str, list[dict]] | None = None, variant: str = "cpu") -> list[dict]:
    """Our verdict for each claim of results/paper/claims.json that a stored unit (Table 1; ``stored``: the
    photo-by-photo units by kind, :func:`load_stored`) or a stored chapter run (``records``: file name under results/ →
    its JSON) can judge; 'not judged' otherwise.  Only ``variant``'s units are judged (each row says which): the
    units of other numerics variants are left out here, for a call with their variant (:func:`units_by_variant`)."""
    records = records or {}
    units = [u for u in units if unit_variant(u) == variant]
    stored = {kind: [u for u in us if unit_variant(u) == variant] for kind, us in (stored or {}).items()}
    table = [c for c in table1_claims(units, paper) if c["recipe"] == "riemannopt"]
    out = []
    for c in claims:
        row = {**c, "verdict": "not judged", "ours": c.get("needs", "no stored reference run yet"), "variant": variant}
        if c.get("judge") == "table1_rows":
            cells = [t for t in table if t["path"] == c["args"]["path"]]
            if cells:
                row["verdict"] = combined_verdict([t["verdict"] for t in cells])
                row["ours"] = "; ".join(f"n = {t['n']}: {t['ours_diff']:+.3f} [{t['low']:+.3f}, {t['high']:+.3f}] ({t['verdict']})" for t in cells)
                missing = sorted(set(paper["tables"][0]["n"]) - {t["n"] for t in cells})
                if missing:
                    # "At every sample count" cannot hold on a partial run; it can already fail.
                    row["ours"] += f"; n = {missing} not stored yet (partial run)"
                    if row["verdict"] == "holds":
                        row["verdict"] = "inconclusive"
                row["images"] = cells[0]["n_images"]
                row["model"] = cells[0]["model"]
        elif c.get("judge") == "cross_n":
            t = cross_n_claim(units, paper=paper, **c["args"])
            if t is not None:
                row["verdict"], row["images"], row["model"] = t["verdict"], t["n_images"], t["model"]
                row["ours"] = f"{t['ours_diff']:+.3f} [{t['low']:+.3f}, {t['high']:+.3f}]"
        elif c.get("judge") == "riemannopt_insertion":
            row.update(insertion_claim_row(stored.get("riemannopt_insertion", []), c["args"]["model"]))
        elif c.get("judge") == "samp_pairs":
            row.update(samp_claim_row(stored.get("samp_pool", []), c["args"]["models"]))
        elif c.get("judge") in ("idgi_pairs", "idgi_steps"):
            row.update(idgi_claim_row(stored.get("idgi_study", []), c["args"]["metrics"], c["args"]["models"],
                                      steps=c["judge"] == "idgi_steps"))
        elif c.get("judge") == "manifold_attack" and c["args"]["file"] in records:
            rec = records[c["args"]["file"]]
            ts = manifold_attack_claims(rec)
            row["verdict"] = combined_verdict([t["verdict"] for t in ts])
            row["ours"] = "; ".join(f"MIG − IG, {t['measure']}: {t['ours_diff']:+.3f} [{t['low']:+.3f}, {t['high']:+.3f}] "
                                    f"({t['verdict']})" for t in ts) + f" (results/{c['args']['file']})"
            row["images"], row["model"] = ts[0]["n_images"], ts[0]["model"]
        out.append(row)
    return out


def judge_by_variant(claims: list[dict], paper: dict, records: dict[str, dict] | None = None,
                     folder: str | Path | None = None) -> list[dict]:
    """Each claim judged on the 'cpu' units (the book's verdict) and again under every other stored numerics variant
    (a GPU with or without TF32, float64), each against the 'cpu' verdict on the same models.

    Per claim the row is :func:`judge_claims`' 'cpu' row plus ``by_variant``: {variant: {'verdict', 'ours', 'model',
    'images', 'common_verdict', 'cpu_same_models'}} for each variant whose units judge it: 'verdict' on all the
    variant's models, 'common_verdict' and 'cpu_same_models' the variant's and the 'cpu' verdicts on the models both
    hold, so a model that only one variant covers never passes for a device effect.  A claim whose verdict under some variant differs from that 'cpu' verdict is
    'device-sensitive' (stats.FLOOR_VERDICTS): counted neither as holding nor as failing; 'cpu_verdict' keeps the
    'cpu' verdict.  Chapter records (``records``) are CPU runs and judge only the 'cpu' row."""
    every = load_units("*.json", folder, variant=None)
    by_v = units_by_variant(every)
    kinds = {k: [u for u in every if fnmatch.fnmatch(u["file"], pat)] for k, pat in STORED_UNITS.items()}
    table = [u for u in every if fnmatch.fnmatch(u["file"], "riemannopt_table1_*.json")]

    def judged_on(variant: str, models: set | None) -> list[dict]:
        keep = (lambda u: models is None or u["model"] in models)
        return judge_claims(claims, [u for u in table if keep(u)], paper, records if variant == "cpu" else None,
                            {k: [u for u in us if keep(u)] for k, us in kinds.items()}, variant=variant)

    base = judged_on("cpu", None)
    out = [{**row, "cpu_verdict": row["verdict"], "by_variant": {}} for row in base]
    cpu_models = {u["model"] for u in by_v.get("cpu", [])}
    for v, us in by_v.items():
        if v == "cpu":
            continue
        models = {u["model"] for u in us}
        common = models & cpu_models
        mine, mine_common, cpu_same = judged_on(v, models), judged_on(v, common), judged_on("cpu", common)
        for row, r, rc, c in zip(out, mine, mine_common, cpu_same):
            if r["verdict"] == "not judged":
                continue
            row["by_variant"][v] = {k: r.get(k) for k in ("verdict", "ours", "model", "images")} | {
                "common_verdict": rc["verdict"], "cpu_same_models": c["verdict"]}
            if "not judged" not in (c["verdict"], rc["verdict"]) and rc["verdict"] != c["verdict"]:
                row["verdict"] = "device-sensitive"
    return out


def variant_cell(row: dict) -> str:
    """The per-variant verdicts of a :func:`judge_by_variant` row, for a table cell ('—' when no other variant judges it)."""
    parts = [f"{v}: {d['verdict']} ({d.get('model') or '?'}, {d.get('images') or '?'}; on the models cpu holds too: "
             f"{d['common_verdict']}, cpu {d['cpu_same_models']})" for v, d in row.get("by_variant", {}).items()]
    return "; ".join(parts) or "—"


# Symbols every text font has (emoji fall back to empty boxes where no emoji font is installed).
VERDICT_BADGES = {"holds": "✓ holds", "does not hold": "✗ does not hold", "inconclusive": "? inconclusive",
                  "device-sensitive": "⚠ device-sensitive", "not judged": "· not judged"}


def claims_overview_markdown(judged: list[dict]) -> str:
    """The "What held" table, verdict first and narrow enough for the page: verdict badge, claim id, the claim, model
    and images, chapter; the evidence behind each row is in :func:`claims_details_markdown`."""
    rows = []
    for c in judged:
        models = ", ".join(MODEL_LABELS.get(m.strip(), m.strip()) for m in str(c.get("model") or "").split(","))
        who = f"{models}, {c['images']}" if c.get("images") else "—"
        # Plain chapter names: links inside a notebook's output are not resolved to the built pages.
        rows.append([f"**{VERDICT_BADGES.get(c['verdict'], c['verdict'])}**", c.get("id", ""), c["claim"], who, c["chapter"]])
    return table(["verdict", "id", "claim", "model, images", "chapter"], rows, align="lllll")


def claims_details_markdown(judged: list[dict]) -> str:
    """Per claim, one bullet: the paper and its evidence, ours (mean paired difference [95 % CI], per n where the claim
    combines several), and (for :func:`judge_by_variant` rows) the verdicts under other numerics variants."""
    out = []
    for c in judged:
        line = (f"- **{c.get('id', '')}** ({VERDICT_BADGES.get(c['verdict'], c['verdict'])}): {cell(c['claim'])} "
                f"*{c['paper']}: {cell(c['evidence'])}* Ours: {cell(c['ours'])}.")
        if c.get("by_variant"):
            line += f" Other numerics: {cell(variant_cell(c))}."
            if c["verdict"] == "device-sensitive":
                line += f" On the CPU alone: {c['cpu_verdict']}."
        out.append(line)
    return "\n".join(out)


def pool_table_markdown(manifest: dict, models: tuple[str, ...] = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")) -> str:
    """The photo pool as a table: photo, source package and version, licence, human label, each model's top-1 (probability, ✓/✗)."""
    short = {m: MODEL_LABELS.get(m, m) for m in models}
    rows = []
    for p in manifest["photos"]:
        src = p["source"]
        cells = []
        for m in models:
            r = p["models"][m]
            cells.append(f"{'✓' if r['correct'] else '✗'} {r['top1_name']} ({r['top1_prob']:.2f})")
        rows.append([p["name"], f"{src['package']} {src['version']}", p["licence"], f"{p['label_name']} ({p['label']})", *cells,
                     "yes" if p["in_pool"] else "no"])
    return table(["photo", "source (package, version)", "licence", "label (human)", *(f"{short[m]} top-1 (p)" for m in models),
                  "in pool"], rows, align="l" * (len(models) + 5))


def pool_counts(manifest: dict) -> dict[str, int]:
    """Photos in the manifest, in the pool, and correctly classified per model (computed from the manifest's flags)."""
    photos = manifest["photos"]
    out = {"photos": len(photos), "in_pool": sum(p["in_pool"] for p in photos)}
    for m in photos[0]["models"]:
        out[m] = sum(p["models"][m]["correct"] for p in photos)
    return out


# ------------------------------------------------------------------ attribution to a tolerance (reference_tolerance units)
TOL_METHODS = {"left": "linear (left rule)", "riemannopt": "RiemannOpt (released)"}
TOL_TARGET = 4.0  # the issue's target: the median image needs >= 4x fewer gradients than the fixed n meeting tol for 95 %
TOL_COVERAGE = 0.95


def tolerance_units(folder: str | Path | None = None, variant: str | None = "cpu") -> list[dict]:
    """The stored reference_tolerance units (``tolerance_<model>[.<variant>].json``) of ``variant`` (None: every
    variant, 'cpu' first), dry runs left out."""
    return load_units("tolerance_*.json", folder, variant)


def tolerance_unit_per_model(units: list[dict]) -> dict[str, dict]:
    """{model: its unit with the most photos} (a tie: the first given, 'cpu' in :func:`tolerance_units`' order), models in
    MODEL_LABELS order: the one unit a model's verdicts rest on (numerics variants are never merged)."""
    best: dict[str, dict] = {}
    for u in units:
        if u["model"] not in best or len(u["images"]["evaluated"]) > len(best[u["model"]]["images"]["evaluated"]):
            best[u["model"]] = u
    order = list(MODEL_LABELS)
    return {m: best[m] for m in sorted(best, key=lambda m: order.index(m) if m in order else len(order))}


def tolerance_adaptive(unit: dict, path: str, tol: float) -> dict[str, np.ndarray]:
    """Per photo (stored order) the adaptive run's state at ``tol``: gradients, map_error (vs the reference), estimate,
    completeness, hit_n_max."""
    cells = [unit["cells"][n]["paths"][path]["adaptive"][str(tol)] for n in unit["images"]["evaluated"]]
    return {k: np.array([c[k] for c in cells], dtype=float) for k in ("gradients", "map_error", "estimate", "completeness", "hit_n_max")}


def tolerance_cost(unit: dict) -> dict[str, np.ndarray]:
    """Per photo (stored order) the gradients its cell took, every path's reference (and its check), nested left rule,
    RiemannOpt schedules and adaptive run to the smallest tol, and the cell's wall time (s)."""
    s, cells = unit["settings"], [unit["cells"][n] for n in unit["images"]["evaluated"]]
    tol = str(min(s["tols"]))

    def path_cost(c: dict) -> int:
        return (c["reference"].get("n", s["ref_n"]) + c.get("reference_check", {}).get("n", 0) + s["left_max"]
                + sum(int(r.get("gradients", n)) for n, r in c["riemannopt"].items()) + int(c["adaptive"][tol]["gradients"]))

    return {"gradients": np.array([sum(path_cost(c["paths"][p]) for p in s["paths"]) for c in cells], dtype=float),
            "wall_s": np.array([c.get("wall_s", np.nan) for c in cells], dtype=float)}


def tolerance_meets(unit: dict, path: str, method: str, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, gradients (photos, n), meets (photos, n)) of a fixed method ('left' or 'riemannopt'): whether each photo's map
    at each stored n has map error and completeness error both <= tol (the adaptive run's own criterion)."""
    names = unit["images"]["evaluated"]
    ns = sorted((int(k) for k in unit["cells"][names[0]]["paths"][path][method]), key=int)
    rec = [[unit["cells"][p]["paths"][path][method][str(n)] for n in ns] for p in names]
    meets = np.array([[r["map_error"] <= tol and r["completeness"] <= tol for r in row] for row in rec], dtype=bool)
    grads = np.array([[r.get("gradients", n) for r, n in zip(row, ns)] for row in rec], dtype=float)
    return np.array(ns, dtype=float), grads, meets


def n_for_coverage(ns: np.ndarray, meets: np.ndarray, coverage: float = TOL_COVERAGE) -> float:
    """The smallest stored n at which at least ``coverage`` of the photos meet the tolerance (inf: none does)."""
    m = meets.shape[0]
    ok = np.flatnonzero(meets.sum(0) >= m - coverage_misses(m, coverage)) if m else []
    return float(ns[ok[0]]) if len(ok) else np.inf


def coverage_misses(n_photos: int, coverage: float = TOL_COVERAGE) -> int:
    """How many of ``n_photos`` may miss the tolerance at the n of :func:`n_for_coverage` (its order statistic: the
    n is the (n_photos - misses)-th smallest per-photo need where the needs are monotone)."""
    return next(k for k in range(n_photos + 1) if (n_photos - k - 1) < (coverage - 1e-12) * n_photos)


def n_needed(ns: np.ndarray, meets: np.ndarray) -> np.ndarray:
    """Per photo the smallest stored n from which on it meets the tolerance at every larger stored n (inf: not at the largest)."""
    out = np.full(meets.shape[0], np.inf)
    for i, row in enumerate(meets):
        bad = np.flatnonzero(~row)
        k = 0 if len(bad) == 0 else bad[-1] + 1
        if k < len(ns):
            out[i] = ns[k]
    return out


def _ratio_fn(ns: np.ndarray, cap: float):
    """fn(gradients, meets rows) -> n_for_coverage / median gradients, an unreached coverage counted at ``cap`` (a lower bound)."""
    def fn(grads, meets):
        n95 = n_for_coverage(ns, meets.astype(bool))
        return min(n95, cap) / float(np.median(grads))
    return fn


def tolerance_row(unit: dict, path: str, tol: float, seed: int = 0) -> dict:
    """One row of the chapter's table: the adaptive run's gradients and achieved error at ``tol``, and the fixed n each
    fixed method needs for 95 % of the photos (inf: beyond the largest stored n), with the ratio to the median gradients."""
    ad = tolerance_adaptive(unit, path, tol)
    row = {"model": unit["model"], "path": path, "tol": tol, "photos": len(ad["gradients"]),
           "grad_median": float(np.median(ad["gradients"])), "grad_p90": float(np.quantile(ad["gradients"], 0.9)),
           "err_median": float(np.median(ad["map_error"])), "err_p90": float(np.quantile(ad["map_error"], 0.9)),
           "err_max": float(np.max(ad["map_error"])), "met": int(np.sum(ad["map_error"] <= tol)),
           "hit_n_max": int(np.sum(ad["hit_n_max"])),
           "estimate_ratio_median": float(np.median(ad["map_error"] / np.maximum(ad["estimate"], 1e-300)))}
    for method in TOL_METHODS:
        sub, note = unit, ""
        if method == "riemannopt":
            sub, note = _out_of_sample(unit, path)
        ns, _, meets = tolerance_meets(sub, path, method, tol)
        n95 = n_for_coverage(ns, meets)
        row[f"{method}_n95"] = n95
        row[f"{method}_max_n"] = float(ns[-1])
        row[f"{method}_ratio"] = n95 / row["grad_median"]
        row[f"{method}_photos"] = meets.shape[0]
        row[f"{method}_note"] = note
    return row


def _out_of_sample(unit: dict, path: str) -> tuple[dict, str]:
    """The unit restricted to the photos the released RiemannOpt schedule was not calibrated on (when 2 or more are left),
    and a note saying which photos its n rests on."""
    cal = set(unit["settings"].get("riemannopt", {}).get(path, {}).get("calibration", []))
    names = unit["images"]["evaluated"]
    out = [n for n in names if n not in cal]
    if len(out) >= 2:
        return (_restrict(unit, out), "" if len(out) == len(names) else f"on the {len(out)} photos outside its calibration set")
    return unit, f"in-sample: {len(names) - len(out)} of the {len(names)} photos are its calibration photos"


def _n_cell(n: float, top: float) -> str:
    return f"> {top:g}" if not np.isfinite(n) else f"{n:g}"


def tolerance_markdown(rows: list[dict]) -> str:
    """The chapter's table: one row per path and tolerance."""
    body = []
    for r in rows:
        ratio = lambda m: (f"> {r[f'{m}_max_n'] / r['grad_median']:.1f}" if not np.isfinite(r[f"{m}_n95"])  # noqa: E731
                           else f"{r[f'{m}_ratio']:.1f}")
        ro_note = f" ({r['riemannopt_note']})" if r.get("riemannopt_note") else ""
        body.append([PATH_LABELS[r["path"]], f"{r['tol']:g}", r["photos"], f"{r['grad_median']:g} ({r['grad_p90']:.0f})",
                     f"{r['err_median']:.4f} ({r['err_p90']:.4f}, {r['err_max']:.4f})", f"{r['met']} of {r['photos']}",
                     f"{r['estimate_ratio_median']:.2f}", r["hit_n_max"], f"{_n_cell(r['left_n95'], r['left_max_n'])} ({ratio('left')})",
                     f"{_n_cell(r['riemannopt_n95'], r['riemannopt_max_n'])} ({ratio('riemannopt')}){ro_note}"])
    return table(["path", "tol", "photos", "gradients: median (90th pct)", "achieved map error: median (90th pct, max)",
                  "photos with error ≤ tol", "error / estimate (median)", "n_max hit",
                  "linear n for 95 % (ratio to median gradients)", "RiemannOpt n for 95 % (ratio)"], body)


def tolerance_reference(unit: dict) -> dict[str, str]:
    """{path: '<rule> <n>'}: the reference each path's errors are measured against (units stored before BlurIG's graded
    reference name one rule for every path: riemannkit.evaluation.reference_rule)."""
    s = unit["settings"]
    return {p: f"{reference_rule(s, p)} {s.get('ref_n', '?')}" for p in s["paths"]}


def tolerance_reference_floor(unit: dict, path: str) -> float:
    """A bound on the reference map's own relative error for ``path``: the largest distance of the reference's rule at
    half its nodes from the reference over the checked photos (for an error falling as 1/n^p with p >= 1 the
    reference's error is at most that distance); 0 where no photo was checked (the unit's settings say so)."""
    checks = [c["paths"][path]["reference_check"]["map_error"] for c in unit["cells"].values()
              if "reference_check" in c["paths"].get(path, {})]
    return float(max(checks)) if checks else 0.0


def _no_interval(estimate: float, n: int, name: str) -> ST.CI:
    """The CI of a statistic over fewer than 2 photos (a run just begun): none, (−inf, inf), which every verdict reads
    as inconclusive and the claim figures leave out."""
    return ST.CI(float(estimate), -np.inf, np.inf, 0.95, n, name)


def tolerance_claims(unit: dict, tols: list[float] | None = None, seed: int = 0) -> list[dict]:
    """Per path and tolerance, the issue's target judged by computation: the fixed linear n that meets ``tol`` for 95 % of
    the photos is >= 4x the median adaptive gradients (bootstrap CI of the ratio over the photos, an n beyond the largest
    stored one counted as the next dyadic n: a lower bound), and the stopping rule's claim: the median achieved map
    error is below ``tol`` (CI of the median of error − tol, judged widened on both sides by the reference's own error,
    :func:`tolerance_reference_floor`).  Verdicts are 'inconclusive' below MIN_IMAGES photos; a unit of one photo (a
    run just begun) gets claims without an interval instead of an error."""
    tols = tols or unit["settings"]["tols"]
    floors = {p: tolerance_reference_floor(unit, p) for p in unit["settings"]["paths"]}
    out = []
    for path in unit["settings"]["paths"]:
        for tol in tols:
            ad = tolerance_adaptive(unit, path, tol)
            ns, _, meets = tolerance_meets(unit, path, "left", tol)
            n = len(ad["gradients"])
            ratio = _ratio_fn(ns, 2 * ns[-1])
            ci = (ST.bootstrap_statistic(ratio, ad["gradients"], meets, seed=seed, name="ratio") if n >= 2
                  else _no_interval(ratio(ad["gradients"], meets), n, "ratio"))
            censored = not np.isfinite(n_for_coverage(ns, meets))
            v = ST.verdict((ci.low - TOL_TARGET, ci.high - TOL_TARGET), "higher")
            if v == "does not hold" and censored:
                v = "inconclusive"  # the ratio is only a lower bound
            out.append({"claim": f"{PATH_LABELS[path]}, tol = {tol}: the fixed linear n meeting tol for 95 % of photos is "
                                 f">= {TOL_TARGET:g}x the median adaptive gradients",
                        "model": unit["model"], "path": path, "tol": tol, "kind": "ratio", "n_images": n,
                        "ours_diff": ci.estimate, "low": ci.low, "high": ci.high, "censored": censored,
                        "paper_a": None, "paper_b": None, "paper_diff": None, "paper_verdict": None,
                        "verdict": v if n >= MIN_IMAGES else "inconclusive"})
            eci = (ST.bootstrap_ci(ad["map_error"] - tol, stat="median", seed=seed) if n >= 2
                   else _no_interval(np.median(ad["map_error"] - tol), n, "median"))
            # The error is measured against a quadrature: judge the interval widened by the reference's own error
            # (a verdict no better than the numerics under it).
            floor = floors[path]
            v = ST.verdict((eci.low - floor, eci.high + floor), "lower")
            out.append({"claim": f"{PATH_LABELS[path]}, tol = {tol}: the median achieved map error (vs the reference) is below tol",
                        "model": unit["model"], "path": path, "tol": tol, "kind": "error", "n_images": n,
                        "ours_diff": eci.estimate, "low": eci.low, "high": eci.high, "censored": False,
                        "reference_floor": floor,
                        "paper_a": None, "paper_b": None, "paper_diff": None, "paper_verdict": None,
                        "verdict": v if n >= MIN_IMAGES else "inconclusive"})
    return out


def tolerance_models_units_markdown(units: dict[str, dict]) -> str:
    """Markdown: per model (its unit from :func:`tolerance_unit_per_model`) and path, the unit's state and the reference
    its map errors are measured against, with the reference's own error bound (:func:`tolerance_reference_floor`) that
    the stopping-rule claim allows for; :func:`tolerance_models_markdown` holds the claims (two tables: one is wider
    than the book's page)."""
    body = []
    for model, unit in units.items():
        refs = tolerance_reference(unit)
        for path in unit["settings"]["paths"]:
            body.append([MODEL_LABELS.get(model, model), f"`{unit['variant']}`, {U.photos_state(unit)}",
                         PATH_LABELS.get(path, path), refs[path], f"{tolerance_reference_floor(unit, path):.4f}"])
    return table(["model", "unit", "path", "reference", "its error bound"], body, align="lllll")


def claim_estimate_text(claim: dict, fmt: str = "{:.3g}") -> str:
    """A claim's estimate with its 95 % CI ('1.52 [1.10, 2.03]'), or '1.52 (no CI from 1 photo)' where its photos give no
    interval; the book's tables and tools/tolerance_verdicts.py both say it this way."""
    est = fmt.format(claim["ours_diff"])
    if not np.isfinite([claim["low"], claim["high"]]).all():
        n = claim["n_images"]
        return f"{est} (no CI from {n} photo{'s' if n != 1 else ''})"
    return f"{est} [{fmt.format(claim['low'])}, {fmt.format(claim['high'])}]"


def tolerance_models_markdown(units: dict[str, dict], claims: list[dict]) -> str:
    """Markdown: per model (its unit from :func:`tolerance_unit_per_model`), path and tol, the photos and the two claims
    of :func:`tolerance_claims` (estimate [95 % CI] and verdict) side by side; each unit's reference is in
    :func:`tolerance_models_units_markdown`."""
    body = []
    for model in units:
        for c in (c for c in claims if c["model"] == model and c["kind"] == "ratio"):
            e = next(e for e in claims if e["model"] == model and e["kind"] == "error" and (e["path"], e["tol"]) == (c["path"], c["tol"]))
            body.append([MODEL_LABELS.get(model, model), PATH_LABELS.get(c["path"], c["path"]), f"{c['tol']:g}", c["n_images"],
                         ("≥ " if c["censored"] else "") + claim_estimate_text(c, "{:.3g}"), f"**{c['verdict']}**",
                         claim_estimate_text(e, "{:+.3g}"), f"**{e['verdict']}**"])
    return table(["model", "path", "tol", "photos", "linear n for 95 % / median gradients [95 % CI]", "≥ 4× target",
                  "median map error − tol [95 % CI]", "stopping rule"], body, align="llrrrlrl")


def tolerance_claim_cells(claims: list[dict], kind: str) -> list[dict]:
    """Cells of plot.claim_intervals for one kind of :func:`tolerance_claims` ('ratio': ratio − 4, so the zero line is
    the issue's target; 'error': median map error − tol), one row per path and tolerance, one series per model."""
    if kind not in ("ratio", "error"):
        raise ValueError(f"kind={kind!r}; accepted values: ratio, error")
    shift = TOL_TARGET if kind == "ratio" else 0.0
    return [{"row": f"{PATH_LABELS[c['path']]}, tol = {c['tol']:g}",
             "series": f"{MODEL_LABELS.get(c['model'], c['model'])} ({c['n_images']} photos)",
             "mean": c["ours_diff"] - shift, "low": c["low"] - shift, "high": c["high"] - shift, "paper": None}
            for c in claims if c["kind"] == kind and np.isfinite([c["low"], c["high"]]).all()]


def tolerance_by_variant(units: list[dict]) -> tuple[list[dict], list[str]]:
    """One model's tolerance units under different numerics variants (a CPU run beside a GPU run), on the photos all of
    them hold: per path and tol, each variant's median adaptive gradients and median achieved map error, and the largest
    per-photo difference between variants of each (how far the study moves with the arithmetic).  Returns (rows, photos)."""
    if len({u["model"] for u in units}) > 1 or len({u["variant"] for u in units}) != len(units):
        raise ValueError("units must be one model's, one unit per numerics variant")
    refs = {u["variant"]: tolerance_reference(u) for u in units}
    if len({tuple(sorted(r.items())) for r in refs.values()}) > 1:
        raise ValueError(f"units measured against different references {refs}: their map errors do not compare")
    photos = [n for n in units[0]["images"]["evaluated"] if all(n in u["images"]["evaluated"] for u in units)]
    rows = []
    for path in units[0]["settings"]["paths"]:
        for tol in units[0]["settings"]["tols"]:
            ad = {u["variant"]: tolerance_adaptive(_restrict(u, photos), path, tol) for u in units}
            spread = lambda k: float(np.max(np.ptp(np.stack([a[k] for a in ad.values()]), axis=0))) if photos else float("nan")  # noqa: E731
            rows.append({"path": path, "tol": tol, "photos": len(photos),
                         "by_variant": {v: {"gradients": float(np.median(a["gradients"])), "map_error": float(np.median(a["map_error"]))}
                                        for v, a in ad.items()} if photos else {},
                         "max_gradients_diff": spread("gradients"), "max_map_error_diff": spread("map_error")})
    return rows, photos


def tolerance_by_variant_markdown(rows: list[dict]) -> str:
    """Markdown of :func:`tolerance_by_variant`: per path and tol, each variant's median gradients / median map error, and
    the largest per-photo differences between the variants."""
    variants = list(rows[0]["by_variant"]) if rows else []
    body = [[PATH_LABELS.get(r["path"], r["path"]), f"{r['tol']:g}",
             *(f"{r['by_variant'][v]['gradients']:.0f} / {r['by_variant'][v]['map_error']:.4f}" for v in variants),
             f"{r['max_gradients_diff']:.0f}", f"{r['max_map_error_diff']:.1e}"] for r in rows]
    return table(["path", "tol", *(f"`{v}` median gradients / map error" for v in variants),
                  "max Δ gradients (a photo)", "max Δ map error (a photo)"], body)


def tolerance_pooled(unit: dict, path: str, method: str, n: int) -> float:
    """Σ_b |Σ attr_b − Δf_b| / Σ_b |Δf_b| of a fixed method at n over the unit's photos (RiemannOpt's Table 1 pooling)."""
    cells = [unit["cells"][p]["paths"][path] for p in unit["images"]["evaluated"]]
    delta = np.array([abs(c["f_input"] - c["f_baseline"]) for c in cells])
    comp = np.array([c[method][str(n)]["completeness"] for c in cells])
    return float(np.sum(comp * delta) / np.sum(delta))


def tolerance_beside_paper(unit: dict, paper: dict) -> str:
    """Markdown: RiemannOpt's Table 1 (InceptionV3, pooled relative completeness error) beside the unit's pooled values
    for the left rule and the released RiemannOpt schedule at the n both hold."""
    rows = next(t for t in paper["tables"] if t.get("table") == 1)
    ns = [n for n in rows["n"] if all(str(n) in unit["cells"][unit["images"]["evaluated"][0]]["paths"][p][m]
                                      for p in unit["settings"]["paths"] for m in TOL_METHODS)]
    if not ns:
        return f"*The unit holds none of the paper's n ({', '.join(map(str, rows['n']))}) for every method.*"
    body = []
    for p in unit["settings"]["paths"]:
        label = PATH_LABELS[p]
        for method, key, what in (("left", label, "linear (ours: left sum; paper: right sum)"),
                                  ("riemannopt", f"{label} + RIEMANNOPT", "RiemannOpt (released)")):
            paper_row = rows["rows"].get(key)
            cells = [f"{tolerance_pooled(unit, p, method, n):.3f}" + ("" if paper_row is None else f" · **{paper_row[rows['n'].index(n)]:.3f}**")
                     for n in ns]
            body.append([label, what, *cells])
    return table(["path", "method", *(f"n = {n}: ours · **paper**" for n in ns)], body, align="ll" + "r" * len(ns))
