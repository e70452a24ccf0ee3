"""The tolerance chapter's study layer on synthetic units: the fixed n a method needs per photo and for 95 % of the
photos, the table row, the claims' verdicts (the issue's 4x target, censored n as a lower bound), and the paired
bootstrap of any statistic."""
from __future__ import annotations

import numpy as np
import pytest

from riemannstudy import evidence as EVD
from riemannstudy import stats as ST

NS = [4, 8, 16, 32, 64]


def _unit(grads, left_need, ro_need, errors=None, tols=(0.05,), calibration=()):
    """A reference_tolerance-shaped unit: per photo its adaptive gradients and achieved error, and the n from which the
    left rule (and RiemannOpt) meet tol (inf: never)."""
    names = [f"p{i}" for i in range(len(grads))]
    errors = errors if errors is not None else [0.01] * len(grads)
    cells = {}
    for i, n_ in enumerate(names):
        fixed = lambda need: {str(n): {"map_error": 0.01 if n >= need else 0.5, "completeness": 0.0 if n >= need else 0.2,  # noqa: E731
                                       "gradients": n} for n in NS}
        cells[n_] = {"paths": {"ig": {
            "f_input": 0.9, "f_baseline": 0.1 * (i + 1) / len(grads),
            "adaptive": {str(t): {"gradients": grads[i], "map_error": errors[i], "estimate": errors[i], "completeness": 0.0,
                                  "completeness_estimate": 0.0, "hit_n_max": False, "nodes": []} for t in tols},
            "left": fixed(left_need[i]), "riemannopt": fixed(ro_need[i])}}}
    return {"model": "toy", "file": "tolerance_toy.json", "images": {"evaluated": names, "planned": names}, "cells": cells,
            "settings": {"paths": ["ig"], "tols": list(tols), "riemannopt": {"ig": {"calibration": list(calibration)}},
                         "ref_rule": "gausslegendre", "ref_n": 4096}}


def test_fixed_n_per_photo_and_for_95_percent():
    ns = np.array(NS, dtype=float)
    meets = np.array([[0, 1, 1, 1, 1], [0, 0, 1, 0, 1], [0, 0, 0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(EVD.n_needed(ns, meets), [8, 64, np.inf])  # from which n on it stays within tol
    assert EVD.n_for_coverage(ns, meets[:2], coverage=0.95) == 16
    assert EVD.n_for_coverage(ns, meets, coverage=0.95) == np.inf
    assert EVD.n_for_coverage(ns, meets, coverage=0.6) == 16


def test_coverage_misses_is_the_order_statistic_n_for_coverage_uses():
    assert [EVD.coverage_misses(m) for m in (1, 11, 19, 20, 22, 39, 40)] == [0, 0, 0, 1, 1, 1, 2]
    ns = np.array(NS, dtype=float)
    for m in (11, 20, 22, 39):
        k = EVD.coverage_misses(m)
        need = np.arange(m) % len(NS)  # photo i meets from NS[need[i]] on
        meets = np.arange(len(NS))[None, :] >= np.sort(need)[:, None]
        assert EVD.n_for_coverage(ns, meets) == ns[np.sort(need)[m - k - 1]]  # all but k photos meet there


def test_the_row_and_the_claims_judge_the_4x_target():
    grads = [5] * 6 + [7] * 6
    holds = _unit(grads, [32] * 10 + [64, 64], [16] * 12)
    row = EVD.tolerance_row(holds, "ig", 0.05)
    assert row["photos"] == 12 and row["grad_median"] == 6 and row["left_n95"] == 64 and row["left_ratio"] == 64 / 6
    assert row["riemannopt_n95"] == 16 and row["met"] == 12
    claims = {c["kind"]: c for c in EVD.tolerance_claims(holds)}
    assert claims["ratio"]["verdict"] == "holds" and claims["ratio"]["low"] >= 4
    assert claims["error"]["verdict"] == "holds"  # every achieved error 0.01 < 0.05
    fails = _unit([9] * 6 + [11] * 6, [8] * 12, [8] * 12, errors=[0.2] * 12)
    claims = {c["kind"]: c for c in EVD.tolerance_claims(fails)}
    assert claims["ratio"]["verdict"] == "does not hold" and claims["error"]["verdict"] == "does not hold"
    # beyond the largest stored n the ratio is a lower bound: never judged 'does not hold'
    censored = _unit([60] * 12, [np.inf] * 12, [np.inf] * 12)
    c = {c["kind"]: c for c in EVD.tolerance_claims(censored)}["ratio"]
    assert c["censored"] and c["verdict"] == "inconclusive" and EVD.tolerance_row(censored, "ig", 0.05)["left_n95"] == np.inf
    assert "> 64" in EVD.tolerance_markdown([EVD.tolerance_row(censored, "ig", 0.05)])
    # fewer photos than MIN_IMAGES: inconclusive whatever the interval
    few = _unit(grads[:3], [64] * 3, [64] * 3)
    assert all(c["verdict"] == "inconclusive" for c in EVD.tolerance_claims(few))


def test_a_unit_of_one_photo_has_claims_without_an_interval():
    # a run just begun stores one photo: the chapter must render it (no bootstrap of one value), judge nothing, draw nothing
    one = _unit([6], [64], [16])
    claims = EVD.tolerance_claims(one)
    assert [c["kind"] for c in claims] == ["ratio", "error"] and all(c["verdict"] == "inconclusive" for c in claims)
    ratio, err = claims
    assert ratio["ours_diff"] == pytest.approx(64 / 6) and err["ours_diff"] == pytest.approx(0.01 - 0.05)
    assert all((c["low"], c["high"], c["n_images"]) == (-np.inf, np.inf, 1) for c in claims)
    assert EVD.tolerance_claim_cells(claims, "ratio") == [] and EVD.tolerance_claim_cells(claims, "error") == []


def test_pooled_completeness_beside_the_papers_table_1():
    u = _unit([10] * 4, [32, 32, 64, 64], [16] * 4)
    deltas = np.array([0.9 - 0.1 * (i + 1) / 4 for i in range(4)])
    assert EVD.tolerance_pooled(u, "ig", "left", 32) == pytest.approx(0.2 * deltas[2:].sum() / deltas.sum())
    assert EVD.tolerance_pooled(u, "ig", "riemannopt", 16) == 0
    md = EVD.tolerance_beside_paper(u, EVD.load_paper("riemannopt_table1"))
    assert "n = 16: ours · **paper**" in md and "n = 64" in md and "n = 128" not in md  # the n both hold
    assert "| IG | linear (ours: left sum; paper: right sum) | 0.200 · **0.708** |" in md


def test_riemannopt_rests_on_the_photos_outside_its_calibration_set():
    u = _unit([10] * 4, [16] * 4, [8, 8, 64, 64], calibration=["p0", "p1"])
    row = EVD.tolerance_row(u, "ig", 0.05)
    assert row["riemannopt_n95"] == 64 and row["riemannopt_photos"] == 2 and "outside its calibration set" in row["riemannopt_note"]
    inside = _unit([10] * 3, [16] * 3, [8] * 3, calibration=["p0", "p1"])
    row = EVD.tolerance_row(inside, "ig", 0.05)
    assert row["riemannopt_photos"] == 3 and row["riemannopt_note"].startswith("in-sample: 2 of the 3")


def test_bootstrap_statistic_is_paired_and_matches_the_mean_ci():
    rng = np.random.default_rng(1)
    a = rng.normal(size=30)
    ci = ST.bootstrap_statistic(np.mean, a, n_boot=2000, seed=3)
    ref = ST.bootstrap_ci(a, "mean", n_boot=2000, seed=3)
    assert ci.estimate == pytest.approx(ref.estimate) and abs(ci.low - ref.low) < 0.02 and abs(ci.high - ref.high) < 0.02
    b = a + 1.0  # paired: every resample draws the same images from both columns, so a − b is exactly −1
    d = ST.bootstrap_statistic(lambda u, v: float(np.mean(u - v)), a, b, n_boot=500)
    assert d.low == pytest.approx(-1) and d.high == pytest.approx(-1)
    inf = ST.bootstrap_statistic(lambda u: np.inf if u.max() > 2 else 1.0, np.array([0.0, 3.0]), n_boot=200)
    assert inf.high == np.inf and ST.verdict((inf.low - 4, inf.high - 4), "higher") in ST.VERDICTS
    with pytest.raises(ValueError, match="one value .* per image"):
        ST.bootstrap_statistic(np.mean, np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least 2 images"):
        ST.bootstrap_statistic(np.mean, np.zeros(1))


def test_claim_cells_put_the_target_on_the_zero_line():
    grads = [5] * 6 + [7] * 6
    claims = EVD.tolerance_claims(_unit(grads, [32] * 10 + [64, 64], [16] * 12))
    ratio = EVD.tolerance_claim_cells(claims, "ratio")
    r = next(c for c in claims if c["kind"] == "ratio")
    assert len(ratio) == 1 and ratio[0]["row"] == "IG, tol = 0.05" and ratio[0]["series"] == "toy (12 photos)"
    assert ratio[0]["mean"] == pytest.approx(r["ours_diff"] - 4) and ratio[0]["low"] == pytest.approx(r["low"] - 4)
    err = EVD.tolerance_claim_cells(claims, "error")
    assert err[0]["high"] < 0  # every achieved error 0.01 below tol 0.05: left of the zero line
    with pytest.raises(ValueError, match="kind='map'; accepted values: ratio, error"):
        EVD.tolerance_claim_cells(claims, "map")


def test_the_error_claim_is_no_better_than_its_reference():
    grads = [5] * 6 + [7] * 6
    u = _unit(grads, [32] * 10 + [64, 64], [16] * 12)
    assert EVD.tolerance_reference_floor(u, "ig") == 0.0  # no photo checked
    u["cells"]["p0"]["paths"]["ig"]["reference_check"] = {"n": 2048, "map_error": 0.05, "completeness": 0.0}
    u["cells"]["p1"]["paths"]["ig"]["reference_check"] = {"n": 2048, "map_error": 0.02, "completeness": 0.0}
    assert EVD.tolerance_reference_floor(u, "ig") == 0.05
    err = {c["kind"]: c for c in EVD.tolerance_claims(u)}["error"]
    # every achieved error is 0.01 at tol 0.05 (interval at -0.04), but a reference off by up to 0.05 cannot tell
    assert err["high"] == pytest.approx(-0.04) and err["reference_floor"] == 0.05 and err["verdict"] == "inconclusive"
    u["cells"]["p0"]["paths"]["ig"]["reference_check"]["map_error"] = 0.001
    assert {c["kind"]: c for c in EVD.tolerance_claims(u)}["error"]["verdict"] == "holds"


def test_variants_side_by_side_on_the_photos_both_hold():
    cpu = _unit([6, 8, 10], [64] * 3, [16] * 3, errors=[0.01, 0.02, 0.03]) | {"variant": "cpu"}
    gpu = _unit([6, 9], [64] * 2, [16] * 2, errors=[0.01, 0.025]) | {"variant": "cuda"}
    rows, photos = EVD.tolerance_by_variant([cpu, gpu])
    assert photos == ["p0", "p1"] and len(rows) == 1
    r = rows[0]
    assert r["by_variant"]["cpu"] == {"gradients": 7.0, "map_error": pytest.approx(0.015)}
    assert r["by_variant"]["cuda"]["gradients"] == 7.5
    assert r["max_gradients_diff"] == 1 and r["max_map_error_diff"] == pytest.approx(0.005)
    md = EVD.tolerance_by_variant_markdown(rows)
    assert "`cpu` median gradients / map error" in md and "| IG | 0.05 | 7 / 0.0150 | 8 / 0.0175 | 1 | 5.0e-03 |" in md
    with pytest.raises(ValueError, match="one unit per numerics variant"):
        EVD.tolerance_by_variant([cpu, cpu])


def test_across_models_each_model_is_judged_on_its_largest_unit():
    grads = [5] * 6 + [7] * 6
    lite0_cpu = _unit(grads, [32] * 10 + [64, 64], [16] * 12) | {"model": "efficientnet_lite0", "variant": "cpu"}
    lite0_gpu = _unit(grads[:4], [32] * 4, [16] * 4) | {"model": "efficientnet_lite0", "variant": "cuda"}
    lite1 = _unit(grads[:3], [64] * 3, [16] * 3) | {"model": "efficientnet_lite1", "variant": "cuda"}
    per = EVD.tolerance_unit_per_model([lite1, lite0_gpu, lite0_cpu])
    assert list(per) == ["efficientnet_lite0", "efficientnet_lite1"]  # MODEL_LABELS order, not the given order
    assert per["efficientnet_lite0"] is lite0_cpu and per["efficientnet_lite1"] is lite1
    twin = _unit(grads, [32] * 12, [16] * 12) | {"model": "efficientnet_lite0", "variant": "cuda"}
    assert EVD.tolerance_unit_per_model([lite0_cpu, twin])["efficientnet_lite0"] is lite0_cpu  # a tie: the first
    claims = [c for u in per.values() for c in EVD.tolerance_claims(u)]
    md = EVD.tolerance_models_markdown(per, claims)
    rows = [line for line in md.splitlines() if line.startswith("| Lite")]
    assert len(rows) == 2
    assert rows[0].startswith("| Lite0 | IG | 0.05 | 12 |")
    assert rows[0].count("**holds**") == 2
    # three photos (below MIN_IMAGES): both claims inconclusive, however far the interval is from the line
    assert rows[1].startswith("| Lite1 | IG | 0.05 | 3 |")
    assert rows[1].count("**inconclusive**") == 2
    # each unit's state, each path's reference and the error bound the stopping-rule claim allows for (no photo checked: 0)
    refs = [line for line in EVD.tolerance_models_units_markdown(per).splitlines() if line.startswith("| Lite")]
    assert refs == ["| Lite0 | `cpu`, complete | IG | gausslegendre 4096 | 0.0000 |",
                    "| Lite1 | `cuda`, complete | IG | gausslegendre 4096 | 0.0000 |"]
    one = {"efficientnet_lite2": _unit([6], [64], [16]) | {"model": "efficientnet_lite2", "variant": "cpu"}}
    md = EVD.tolerance_models_markdown(one, EVD.tolerance_claims(one["efficientnet_lite2"]))
    assert "10.7 (no CI from 1 photo)" in md and "inf" not in md  # a run just begun: an estimate, no interval


def test_claim_estimate_text_gives_the_interval_or_says_why_there_is_none():
    c = {"ours_diff": 1.5234, "low": 1.1, "high": 2.034, "n_images": 12}
    assert EVD.claim_estimate_text(c, "{:.2f}") == "1.52 [1.10, 2.03]"
    one = c | {"low": -np.inf, "high": np.inf, "n_images": 1}
    assert EVD.claim_estimate_text(one, "{:+.3g}") == "+1.52 (no CI from 1 photo)"
    # the same sentence however many photos gave no interval (the bootstrap needs two)
    assert EVD.claim_estimate_text(one | {"n_images": 0, "low": np.nan}) == "1.52 (no CI from 0 photos)"


def test_variants_measured_against_different_references_are_not_set_side_by_side():
    cpu = _unit([6, 8], [64] * 2, [16] * 2) | {"variant": "cpu"}
    gpu = _unit([6, 9], [64] * 2, [16] * 2) | {"variant": "cuda"}
    gpu["settings"] = {**gpu["settings"], "ref_rule": {"ig": "gausslegendre_graded"}}
    assert EVD.tolerance_reference(cpu) == {"ig": "gausslegendre 4096"}  # a unit naming one rule for every path
    assert EVD.tolerance_reference(gpu) == {"ig": "gausslegendre_graded 4096"}
    with pytest.raises(ValueError, match="different references"):
        EVD.tolerance_by_variant([cpu, gpu])


def test_a_photos_cost_counts_every_gradient_its_cell_took():
    unit = _unit([5, 9], [8, 8], [8, 8], tols=(0.1, 0.05))
    unit["settings"].update(left_max=64, ref_check_photos=1)
    for i, c in enumerate(unit["cells"].values()):
        c["paths"]["ig"]["reference"] = {"rule": "gausslegendre", "n": 4096, "map_error": 0.0}
        if i == 0:
            c["paths"]["ig"]["reference_check"] = {"n": 2048, "map_error": 0.001}
        c["wall_s"] = 10.0 * (i + 1)
    cost = EVD.tolerance_cost(unit)
    fixed = 4096 + 64 + sum(NS)  # the reference, the nested left rule, the RiemannOpt schedules at every stored n
    np.testing.assert_array_equal(cost["gradients"], [fixed + 2048 + 5, fixed + 9])  # the adaptive run at the smallest tol
    np.testing.assert_array_equal(cost["wall_s"], [10.0, 20.0])
