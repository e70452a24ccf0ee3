"""The numerical floor of a stored Table 1 unit: how far per-photo completeness errors move with the arithmetic alone.

Study layer (reads stored records, builds tables; computes no attribution).  A Table 1 unit
(benchmarks/reference_riemannopt.py) stores per photo, recipe row and n the relative completeness error
|Σ attr − Δf| / |Δf|.  The floor record (benchmarks/numerical_floor.py) recomputes those cells for a few photos
with the same recipes and nodes under other arithmetic: float64 on the CPU, float32 at 1 and at 2 threads.  Stored
units of the same photos made elsewhere (the CPU unit itself, a GPU unit with TF32) are further variants.  Per
photo the *spread* is max − min across the variants; a difference between two recipes inside it is not evidence.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from riemannkit import integrate as I
from riemannkit import quadrature as Q
from riemannkit import schedule as S
from .evidence import unit_errors  # noqa: F401  (part of this module's API)
from .tables import table

# The floor record's own variants: name -> (dtype, threads) on the CPU; 'reference' is the one the others are
# compared with (float64: its rounding is ~1e-16 where float32's is ~1e-7).
COMPUTED_VARIANTS = {"cpu_fp32_1thread": ("float32", 1), "cpu_fp32_2threads": ("float32", 2), "cpu_fp64": ("float64", 1)}
REFERENCE_VARIANT = "cpu_fp64"
# The variant names agreed for stored units (riemannstudy.units.unit_variant): what each computed variant is.
UNIT_VARIANT = {"cpu_fp32_1thread": "cpu", "cpu_fp32_2threads": "cpu", "cpu_fp64": "cpu_fp64"}
# Rows that place their own points from the unit's calibration: a unit made on another device has its own points.
POINT_ROWS = ("riemannopt", "riemannopt_paper_left", "density")


def photo_moves(unit_a: Mapping, unit_b: Mapping) -> dict[str, float]:
    """Per photo of both units, the largest |Δ relative error| between them over every recipe row and n they share."""
    photos = [p for p in unit_a["images"]["evaluated"] if p in set(unit_b["images"]["evaluated"])]
    move = np.zeros(len(photos))
    for row, per_n in unit_a["results"].items():
        for n in per_n:
            if n in unit_b["results"].get(row, {}):
                move = np.maximum(move, np.abs(unit_errors(unit_a, row, n, photos) - unit_errors(unit_b, row, n, photos)))
    return dict(sorted(zip(photos, move.tolist()), key=lambda kv: -kv[1]))


def pick_photos(moves: Mapping[str, float], sensitive: int = 3, ordinary: int = 1) -> list[str]:
    """The ``sensitive`` photos that moved most and ``ordinary`` photos around the median move (most moved first)."""
    ranked = sorted(moves, key=lambda p: -moves[p])
    if sensitive + ordinary > len(ranked) or sensitive < 0 or ordinary < 0:
        raise ValueError(f"sensitive={sensitive} and ordinary={ordinary} must be >= 0 and add up to at most {len(ranked)} photos")
    rest = ranked[sensitive:]
    mid = len(ranked) // 2 - sensitive  # the median rank, within the rest
    start = min(max(0, mid - ordinary // 2), len(rest) - ordinary)
    return ranked[:sensitive] + rest[start : start + ordinary]


def spread(values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per photo, max − min of the values across variants ({variant: (photos,)})."""
    stack = np.stack([np.asarray(v, dtype=np.float64) for v in values.values()])
    return np.ptp(stack, axis=0)


def floor_values(record: Mapping, units: Mapping[str, Mapping] | None = None) -> dict:
    """{row: {n: {'values': {variant: (photos,)}, 'spread': (photos,)}}} over the floor record's photos: its computed
    variants, plus each stored Table 1 unit of ``units`` ({variant label: unit}) for the same photos."""
    photos = list(record["images"]["evaluated"])
    if not photos:
        raise ValueError("the floor record holds no photo yet")
    units = dict(units or {})
    out: dict = {}
    first = record["cells"][photos[0]]["variants"]
    for variant in first:
        for row, per_n in first[variant]["rows"].items():
            for n in per_n:
                cell = out.setdefault(row, {}).setdefault(n, {"values": {}})
                cell["values"][variant] = np.asarray(
                    [record["cells"][p]["variants"][variant]["rows"][row][n]["rel_error"] for p in photos])
    for label, unit in units.items():
        for row, per_n in out.items():
            for n, cell in per_n.items():
                if n in unit["results"].get(row, {}):
                    cell["values"][label] = unit_errors(unit, row, n, photos)
    for per_n in out.values():
        for cell in per_n.values():
            cell["spread"] = spread(cell["values"])
    return out


def floor_rows(values: dict, baseline: str, reference: str = REFERENCE_VARIANT) -> list[dict]:
    """Per recipe row and n: the median and largest per-photo spread, against the median and smallest per-photo
    |error(row) − error(baseline)| (the difference between recipes, under ``reference``) and how many photos have
    that difference inside their spread (the larger of the row's and the baseline's spread)."""
    rows = []
    for row, per_n in values.items():
        for n in sorted(per_n, key=int):
            cell = per_n[n]
            entry = {"row": row, "n": int(n), "photos": int(cell["spread"].size), "variants": list(cell["values"]),
                     "median_spread": float(np.median(cell["spread"])), "max_spread": float(np.max(cell["spread"]))}
            base = values.get(baseline, {}).get(n)
            if row != baseline and base is not None and reference in cell["values"] and reference in base["values"]:
                diff = np.abs(cell["values"][reference] - base["values"][reference])
                floor = np.maximum(cell["spread"], base["spread"])
                entry.update(median_difference=float(np.median(diff)), min_difference=float(np.min(diff)),
                             inside_floor=int(np.sum(diff <= floor)))
            rows.append(entry)
    return rows


def floor_markdown(rows: list[dict], labels: Mapping[str, str] | None = None, fmt: str = "{:.2g}") -> str:
    """Markdown table of :func:`floor_rows`: spread across variants beside the difference to the baseline recipe."""
    labels = labels or {}
    body = []
    for r in rows:
        diff = "baseline" if "median_difference" not in r else fmt.format(r["median_difference"])
        inside = "—" if "inside_floor" not in r else f"{r['inside_floor']} of {r['photos']}"
        body.append([labels.get(r["row"], r["row"]), r["n"], r["photos"], fmt.format(r["median_spread"]),
                     fmt.format(r["max_spread"]), diff, inside])
    return table(["recipe", "n", "photos", "spread: median", "spread: max", "\\|recipe − baseline\\|: median",
                  "photos inside the floor"], body)


def rule_nodes_of_unit(unit: Mapping | None, n: int, path: str = "ig") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Nodes and weights of each rule with ``n`` gradient evaluations: every registered rule that takes n, and the
    RiemannOpt recipes at the points a stored Table 1 unit placed (released: right sum; the paper's bound and the
    √|g'| density: left sums), when ``unit`` holds them for this n."""
    out = {r: tuple(t.numpy() for t in I.rule_nodes(r, n)) for r in Q.rules_taking(n)}  # Simpson: odd n only
    pts = (unit or {}).get("points", {})
    if str(n) in pts.get("riemannopt", {}):
        kw = S.released_attribute_args(pts["riemannopt"][str(n)], path)
        out["riemannopt"] = tuple(t.numpy() for t in I.schedule_nodes(kw["rule"], kw["alphas"]))
    for row in ("riemannopt_paper_left", "density"):
        if str(n) in pts.get(row, {}):
            out[row] = tuple(t.numpy() for t in I.schedule_nodes("left", pts[row][str(n)]))
    return out


# ------------------------------------------------------------------------------ stored units by variant
# The agreed file names: a unit of variant 'cpu' keeps its name, any other variant appends .<variant> before .json.
UNIT_VARIANTS = ("cpu", "cpu_fp64", "cuda", "cuda_tf32")


def stored_variants(stem: str, folder) -> dict[str, dict]:
    """{variant: unit} of the stored units ``<stem>.json`` (variant 'cpu') and ``<stem>.<variant>.json`` in ``folder``."""
    import json
    from pathlib import Path

    out = {}
    for v in UNIT_VARIANTS:
        f = Path(folder) / (f"{stem}.json" if v == "cpu" else f"{stem}.{v}.json")
        if f.is_file():
            out[v] = json.loads(f.read_text()) | {"file": f.name}
    return out


def floor_claims(units: Mapping[str, Mapping], baseline: str, recipes: tuple[str, ...] = ("riemannopt", "riemannopt_paper_left"),
                 spread=None, seed: int = 0) -> list[dict]:
    """Table 1's claims "recipe has a lower relative error than ``baseline`` at n", judged by stats.floor_verdict over the
    photos every unit of ``units`` ({variant: Table 1 unit}) holds, the floor being the spread of the per-photo
    difference across the variants (and ``spread``, a per-photo or single floor, when given)."""
    from . import stats as ST

    if not units:
        raise ValueError("units must hold at least one stored Table 1 unit: {variant: unit}")
    first = next(iter(units.values()))
    photos = [p for p in first["images"]["evaluated"] if all(p in u["images"]["evaluated"] for u in units.values())]
    out = []
    for recipe in recipes:
        for n in sorted(first["results"].get(recipe, {}), key=int):
            if not all(n in u["results"].get(recipe, {}) and n in u["results"].get(baseline, {}) for u in units.values()):
                continue
            d = {v: unit_errors(u, recipe, n, photos) - unit_errors(u, baseline, n, photos) for v, u in units.items()}
            fv = ST.floor_verdict(d, "lower", spread=spread, seed=seed)
            out.append({"recipe": recipe, "baseline": baseline, "n": int(n), "photos": len(photos), "result": fv})
    return out


def floor_claims_markdown(claims: list[dict], labels: Mapping[str, str] | None = None, fmt: str = "{:+.3f}") -> str:
    """Markdown table of :func:`floor_claims`: per variant the mean difference, its 95 % CI and verdict; the CI widened
    by the floor; the verdict with the floor."""
    labels = labels or {}
    if not claims:
        return "*No claim: the units hold no shared cell.*"
    variants = list(claims[0]["result"].cis)
    body = []
    for c in claims:
        r = c["result"]
        per = [f"{fmt.format(r.cis[v].estimate)} [{fmt.format(r.cis[v].low)}, {fmt.format(r.cis[v].high)}], {r.plain[v]}"
               for v in variants]
        lo, hi = min(r.floor_cis[v][0] for v in variants), max(r.floor_cis[v][1] for v in variants)
        body.append([f"{labels.get(c['recipe'], c['recipe'])} < {labels.get(c['baseline'], c['baseline'])}", c["n"], c["photos"],
                     *per, f"{np.median(r.floor):.3g}", f"[{fmt.format(lo)}, {fmt.format(hi)}]", f"**{r.verdict}**"])
    return table(["claim", "n", "photos", *(f"{v}: mean [95 % CI], verdict" for v in variants), "floor: median per photo",
                  "CI with the floor", "verdict"], body, align="lrr" + "r" * len(variants) + "rrl")
