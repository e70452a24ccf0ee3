"""riemannstudy.evidence: tables with CIs and verdicts computed from stored units (synthetic units with known answers)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from riemannstudy import evidence as EV


def _unit(path: str, gap: float, n_images: int = 30, seed: int = 0, steps=(16, 32)) -> dict:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.6, n_images)
    noise = rng.normal(0, 0.01, n_images)
    res = {"linear_left": {}, "linear_right": {}, "riemannopt": {}, "riemannopt_paper_left": {}}
    for n in steps:
        res["linear_right"][str(n)] = {"rel_error": (base / n * 16).tolist()}
        res["linear_left"][str(n)] = {"rel_error": (base / n * 16).tolist()}
        res["riemannopt"][str(n)] = {"rel_error": (base / n * 16 - gap + noise).tolist()}
        res["riemannopt_paper_left"][str(n)] = {"rel_error": (base / n * 16 + noise).tolist()}
    return {"model": "m", "path": path, "results": res, "images": {"evaluated": [f"p{i}" for i in range(n_images)]}}


def test_table1_cells_carry_the_papers_numbers_and_a_ci_that_holds_the_mean():
    paper = EV.load_paper("riemannopt_table1")
    cells = EV.table1_cells([_unit("ig", 0.05)], paper)
    c = next(c for c in cells if c["recipe"] == "riemannopt" and c["n"] == 16)
    assert c["paper"] == 0.404 and c["low"] <= c["mean"] <= c["high"] and c["n_images"] == 30
    base = next(c for c in cells if c["recipe"] == "linear_right" and c["n"] == 32)
    assert base["paper"] == 0.374
    assert next(c for c in cells if c["recipe"] == "riemannopt_paper_left")["paper"] is None  # not a paper row
    md = EV.table1_markdown(cells)
    assert md.startswith("**m**, 30 photos") and md.count("\n| IG |") == 4 and "(**0.404**)" in md
    assert "| IG | RiemannOpt, released (right sum) |" in md and "linear_left" not in md
    assert "[" in EV.table1_markdown(cells, ci=True) and "**0.404**" not in EV.table1_markdown(cells, ci=True)


def test_claims_are_judged_from_the_paired_differences():
    paper = EV.load_paper("riemannopt_table1")
    better = EV.table1_claims([_unit("blurig", 0.05)], paper)
    assert {c["verdict"] for c in better if c["recipe"] == "riemannopt"} == {"holds"}
    assert {c["verdict"] for c in better if c["recipe"] == "riemannopt_paper_left"} == {"inconclusive"}  # zero-mean noise
    few = EV.table1_claims([_unit("blurig", 0.05, n_images=5)], paper)
    assert {c["verdict"] for c in few} == {"inconclusive"}  # below MIN_IMAGES no interval is trusted
    worse = EV.table1_claims([_unit("blurig", -0.05)], paper)
    assert {c["verdict"] for c in worse if c["recipe"] == "riemannopt"} == {"does not hold"}
    c16 = next(c for c in better if c["recipe"] == "riemannopt" and c["n"] == 16)
    assert abs(c16["paper_diff"] - (0.269 - 0.886)) < 1e-12 and c16["paper_verdict"] == "holds"
    assert EV.verdict_counts(better)["holds"] == 2
    assert "**holds**" in EV.claims_markdown(better)


def test_judge_claims_combines_cells_and_leaves_unjudged_claims_marked():
    import json

    paper = EV.load_paper("riemannopt_table1")
    claims = json.loads((EV.PAPER_DIR / "claims.json").read_text())["claims"]
    judged = EV.judge_claims(claims, [_unit("ig", 0.05, steps=(16, 32, 64, 128))], paper)
    by = {c["id"]: c for c in judged}
    assert by["R1-ig"]["verdict"] == "holds" and by["R1-ig"]["images"] == 30
    assert by["R1-blurig"]["verdict"] == "not judged" and by["I1"]["verdict"] == "not judged"
    assert EV.combined_verdict(["holds", "inconclusive"]) == "inconclusive"
    assert EV.combined_verdict(["holds", "does not hold"]) == "does not hold"
    assert "**✓ holds** | R1-ig |" in EV.claims_overview_markdown(judged)
    judged[0]["model"] = "efficientnet_lite0, efficientnet_lite1"
    assert "| Lite0, Lite1, 30 |" in EV.claims_overview_markdown(judged)  # the models' short labels, not their keys
    assert "- **R1-ig** (✓ holds):" in EV.claims_details_markdown(judged)


def test_pool_table_has_a_row_per_photo_and_counts_match_the_flags():
    from riemannkit import pool

    man = pool.manifest()
    md = EV.pool_table_markdown(man)
    assert md.count("\n") == 1 + len(man["photos"])
    counts = EV.pool_counts(man)
    assert counts["in_pool"] == len(pool.pool_names()) and counts["efficientnet_lite0"] == len(pool.pool_names("efficientnet_lite0"))


def test_a_partial_run_cannot_make_an_every_n_claim_hold():
    paper = EV.load_paper("riemannopt_table1")
    claims = [c for c in json.loads((EV.PAPER_DIR / "claims.json").read_text())["claims"] if c["id"] == "R1-ig"]
    unit = _unit("ig", 0.05)  # n = 16 and 32 only: 64 and 128 missing
    judged = EV.judge_claims(claims, [unit], paper)[0]
    assert judged["verdict"] == "inconclusive" and "partial run" in judged["ours"]
    unit["results"] = {k: {"16": v["16"]} for k, v in _unit("ig", -0.05)["results"].items()}
    assert EV.judge_claims(claims, [unit], paper)[0]["verdict"] == "does not hold"  # failing at one n already decides


CPU_PROV = {"device": "CPU (x86_64, 2 threads)", "git_commit": "abc", "parts": []}


def _calibrated(model: str, path: str, peak: float, points_only: bool = False) -> dict:
    grid = np.linspace(0, 1, 129)[:-1]
    g = np.exp(-((grid - peak) / 0.05) ** 2)
    return {"benchmark": "reference_riemannopt", "schema": 1, "complete": True, "model": model, "path": path,
            "settings": {"steps": [16], **({"points_only": True} if points_only else {})}, "provenance": CPU_PROV,
            "results": {}, "images": {"evaluated": [], "calibration": ["a", "b"]},
            "calibration": {"grid": grid.tolist(), "mean_gprime": g.tolist(), "released_grid": grid.tolist(),
                            "released_profile": g.tolist(), "per_image_gprime": [g.tolist()] * 2},
            "points": {"riemannopt": {"16": np.linspace(0, 1, 17).tolist()},
                       "riemannopt_paper_left": {"16": [0.0, 0.8] + np.linspace(0.81, 0.99, 14).tolist()}}}


def test_figure2_prefers_table1_units_and_reads_the_papers_rise(tmp_path):
    paper = EV.load_paper("riemannopt_table1")
    rise = EV.paper_rise(paper)
    assert set(rise) == {"ig", "blurig", "guidedig"} and rise["blurig"] > rise["ig"] == rise["guidedig"]
    table1 = _calibrated("m0", "ig", 0.1)
    points_only = _calibrated("m0", "ig", 0.9, points_only=True)
    other = _calibrated("m1", "blurig", 0.8, points_only=True)
    (tmp_path / "riemannopt_table1_m0_ig.json").write_text(json.dumps(table1))
    (tmp_path / "riemannopt_points_m0_ig.json").write_text(json.dumps(points_only))
    (tmp_path / "riemannopt_points_m1_blurig.json").write_text(json.dumps(other))
    units = EV.figure2_units(tmp_path)
    assert [(u["model"], u["path"], u["file"]) for u in units] == [
        ("m0", "ig", "riemannopt_table1_m0_ig.json"), ("m1", "blurig", "riemannopt_points_m1_blurig.json")]
    rows = EV.figure2_rows(units, rise)
    assert abs(rows[0]["profile_peak"] - 0.1) < 1 / 128 and abs(rows[1]["mean_gprime_peak"] - 0.8) < 1 / 128
    assert abs(rows[0]["released_median"] - 17 / 32) < 1e-12 and rows[0]["left_longest"] == (0.0, 0.8)
    md = EV.figure2_markdown(rows)
    assert md.count("\n") == 3 and "| m1 | BlurIG | 0.800 |" in md


def test_manifold_attack_claim_is_judged_from_a_stored_chapter_run(tmp_path):
    rng = np.random.default_rng(1)
    ig = rng.uniform(0.2, 0.5, 24)

    def record(gap):
        noise = rng.normal(0, 0.01, 24)
        mig = ig + gap + noise - noise.mean()  # the mean paired difference is exactly gap
        return {"attack": {"move": {"IG": {"pearson": ig.tolist(), "topk": ig.tolist()},
                                    "MIG": {"pearson": mig.tolist(), "topk": mig.tolist()}}},
                "provenance": {"git_commit": "abc"}}

    claims = [{"id": "M1", "judge": "manifold_attack", "args": {"file": "m.json"}, "paper": "Manifold IG",
               "claim": "robust", "evidence": "e", "chapter": "manifold_ig"}]
    assert EV.claim_records(claims, tmp_path) == {}  # no stored run: the claim stays unjudged
    assert EV.judge_claims(claims, [], {}, {})[0]["verdict"] == "not judged"
    for gap, verdict in ((0.2, "holds"), (-0.2, "does not hold"), (0.0, "inconclusive")):
        (tmp_path / "m.json").write_text(json.dumps(record(gap)))
        records = EV.claim_records(claims, tmp_path)
        row = EV.judge_claims(claims, [], {}, records)[0]
        assert row["images"] == 24 and "results/m.json" in row["ours"]
        assert row["verdict"] == verdict, (gap, row)


def test_the_idgi_studys_tables_are_read_by_our_metric_and_method_keys():
    study = EV.load_paper("idgi_study_tables")
    t1 = EV.study_values(study, "insertion_prob")
    assert len(t1) == 10 and t1["Inception V3"]["ig"] == 0.135 and t1["Inception V3"]["blurig+idgi"] == 0.379
    assert set(EV.study_values(study, "sic_msssim", 8)["Inception V3"]) == {"ig", "ig+idgi", "blurig", "blurig+idgi"}
    wins = EV.study_idgi_wins(t1)
    assert set(wins) == {"ig", "guidedig", "blurig"} and all(w.endswith("/10") for w in wins.values())
    t4, t5 = EV.study_table(study, 4), EV.study_table(study, 5)
    assert t4["ig+idgi"]["insertion_prob"] == 0.224 and t5["guidedig"]["neg_log_mse"] == 0.845
    with pytest.raises(ValueError, match="metric='deletion'.*insertion_prob"):
        EV.study_values(study, "deletion")
    with pytest.raises(ValueError, match="accepted values: 4, 5"):
        EV.study_table(study, 1)
    md = EV.beside_markdown({"ig": {"insertion_prob": 0.5, "deletion": 0.1}}, t4, {"ig": "IG"}, ["insertion_prob", "deletion"])
    assert "| IG | +0.500 · **+0.024** | +0.100 |" in md
    md1 = EV.study_beside_markdown({"ig": {"m0": 0.2}, "guidedig": {"m0": 0.3}}, EV.study_values(study, "insertion_prob", 64), {})
    assert "study: range over 10 models" in md1 and "| guidedig | 0.300 | — | — |" in md1


def _idgi_unit(model, gaps, n=24, seed=0):
    """A synthetic reference_idgi unit: IDGI's insertion and −ln MSE exceed the base path's by gaps[path] on every photo
    (plus zero-mean noise), its SIC/AIC left out."""
    rng = np.random.default_rng(seed)
    names = [f"p{i}" for i in range(n)]
    cells = {}
    for name in names:
        scores, jpeg = {}, {}
        for base in ("ig", "guidedig", "blurig"):
            v = rng.uniform(0.2, 0.6)
            scores[base] = {"insertion_prob": v}
            scores[base + "+idgi"] = {"insertion_prob": v + gaps[base] + rng.normal(0, 0.01)}
            jpeg[base] = {"neg_log_mse": 20 + v}
            jpeg[base + "+idgi"] = {"neg_log_mse": 20 + v + gaps[base] + rng.normal(0, 0.01)}
        cells[name] = {"scores": scores, "jpeg": jpeg}
    return {"model": model, "methods": ["ig", "ig+idgi", "guidedig", "guidedig+idgi", "blurig", "blurig+idgi"],
            "settings": {"steps": 128}, "images": {"evaluated": names}, "cells": cells}


def test_idgi_claims_are_judged_per_model_path_and_metric():
    up = {"ig": 0.2, "guidedig": 0.2, "blurig": 0.2}
    u0 = _idgi_unit("m0", up)
    cells = EV.idgi_claims([u0], ["insertion_prob", "neg_log_mse"])
    assert len(cells) == 6 and all(c["verdict"] == "holds" and c["n_images"] == 24 for c in cells)
    assert EV.idgi_value(u0, "ig", "insertion_prob") == (pytest.approx(EV.idgi_per_image(u0, "ig", "insertion_prob").mean()), 24)
    study = EV.load_paper("idgi_study_tables")
    beside = EV.idgi_claims([u0], ["insertion_prob", "neg_log_mse"], study=study)
    ins = EV.study_values(study, "insertion_prob", 128)["Inception V3"]
    assert beside[0]["paper_diff"] == pytest.approx(ins["ig+idgi"] - ins["ig"])
    t5 = EV.study_table(study, 5)
    assert beside[1]["paper_diff"] == pytest.approx(t5["ig+idgi"]["neg_log_mse"] - t5["ig"]["neg_log_mse"])
    claims = [{"id": "I1", "judge": "idgi_pairs", "args": {"metrics": ["insertion_prob"], "models": ["m0", "m1"]},
               "paper": "IDGI study", "claim": "c", "evidence": "e", "chapter": "idgi_models"}]
    # every cell holds, but m1 is not stored: a claim "for every model" is not yet shown
    row = EV.judge_claims(claims, [], {}, {}, {"idgi_study": [u0]})[0]
    assert row["verdict"] == "inconclusive" and "m1 not stored yet" in row["ours"]
    row = EV.judge_claims(claims, [], {}, {}, {"idgi_study": [u0, _idgi_unit("m1", up, seed=1)]})[0]
    assert row["verdict"] == "holds" and row["images"] == 24
    # one path on one model going the other way decides it
    worse = _idgi_unit("m1", {**up, "blurig": -0.2}, seed=2)
    assert EV.judge_claims(claims, [], {}, {}, {"idgi_study": [u0, worse]})[0]["verdict"] == "does not hold"
    assert EV.judge_claims(claims, [], {}, {}, {})[0]["verdict"] == "not judged"


def test_insertion_claims_pair_riemannopt_with_the_authors_baseline():
    rng = np.random.default_rng(4)
    names = [f"p{i}" for i in range(20)]
    cells = {}
    for p in names:
        base = rng.uniform(0.2, 0.5)
        cells[p] = {"ig": {"16": {"linear_right": {"insertion_prob": base, "rel_error": 0.3},
                                  "riemannopt": {"insertion_prob": base * 1.1 + rng.normal(0, 1e-3), "rel_error": 0.2}}}}
    unit = {"model": "m", "baseline": {"ig": "linear_right"}, "images": {"evaluated": names}, "cells": cells}
    (c,) = EV.insertion_claims(unit)
    assert c["verdict"] == "holds" and c["n"] == 16 and c["relative_change"] == pytest.approx(0.1, abs=0.01)
    row = EV.judge_claims([{"id": "R5", "judge": "riemannopt_insertion", "args": {"model": "m"}, "paper": "RiemannOpt",
                            "claim": "c", "evidence": "e", "chapter": "riemannopt"}], [], {}, {}, {"riemannopt_insertion": [unit]})[0]
    assert row["verdict"] == "holds" and row["images"] == 20 and "+10." in row["ours"]
    t1 = {"model": "m", "path": "ig", "images": {"evaluated": names[::-1]},
          "results": {"linear_right": {"16": {"rel_error": [0.3] * 20}}, "riemannopt": {"16": {"rel_error": [0.2] * 19 + [0.25]}}}}
    assert EV.insertion_table1_agreement(unit, [t1]) == {"ig": pytest.approx(0.05)}  # p0 is the last photo of t1's order


def test_table4_pairs_the_8_and_128_step_units_photo_by_photo():
    rng = np.random.default_rng(5)
    names = [f"p{i}" for i in range(16)]

    def unit(steps, idgi_shift):
        cells = {}
        for i, p in enumerate(names):
            scores = {}
            for base in ("ig", "guidedig", "blurig"):
                v = 0.3 + 0.01 * i
                scores[base] = {"insertion_prob": v + (0.01 if steps == 8 else 0.0)}
                scores[base + "+idgi"] = {"insertion_prob": v + (idgi_shift + rng.normal(0, 1e-3) if steps == 8 else 0.0)}
            cells[p] = {"scores": scores}
        return {"model": "m", "settings": {"steps": steps}, "images": {"evaluated": names}, "cells": cells,
                "methods": ["ig", "ig+idgi", "guidedig", "guidedig+idgi", "blurig", "blurig+idgi"]}

    units = [unit(128, 0), unit(8, -0.1)]
    assert EV.idgi_units_at(units, 8) == [units[1]]
    t4 = EV.table4_values(units, ["insertion_prob"])
    assert t4["m"]["ig"]["insertion_prob"] == pytest.approx(-0.01) and t4["m"]["ig+idgi"]["insertion_prob"] == pytest.approx(0.1, abs=2e-3)
    cells = EV.table4_claims(units, ["insertion_prob"])
    assert len(cells) == 3 and all(c["verdict"] == "holds" and c["n_images"] == 16 for c in cells)
    claims = [{"id": "I4", "judge": "idgi_steps", "args": {"metrics": ["insertion_prob"], "models": ["m"]},
               "paper": "IDGI study", "claim": "c", "evidence": "e", "chapter": "sweeps"}]
    assert EV.judge_claims(claims, [], {}, {}, {"idgi_study": units})[0]["verdict"] == "holds"
    assert EV.judge_claims(claims, [], {}, {}, {"idgi_study": units[:1]})[0]["verdict"] == "not judged"  # no 8-step unit
    # Figure 3 over the units: one curve point per stored step count, on the photos every unit holds.
    mid = unit(32, 0)
    del mid["cells"]["p0"]
    mid["images"] = {"evaluated": names[1:]}
    curves, photos = EV.sweep_values([*units, mid, {**mid, "model": "other"}], "m", ["insertion_prob"])
    assert photos == names[1:] and sorted(curves["insertion_prob"]["ig"]) == [8, 32, 128]
    assert curves["insertion_prob"]["ig"][128] == pytest.approx(np.mean([0.3 + 0.01 * i for i in range(1, 16)]))
    assert curves["insertion_prob"]["ig"][8] - curves["insertion_prob"]["ig"][128] == pytest.approx(0.01)
    assert EV.sweep_values(units, "absent", ["insertion_prob"]) == ({}, [])
    # A partial unit (a run under way) is left out of the curves, not allowed to shrink them to its photos, and named.
    part = {**unit(64, 0), "complete": False}
    part["images"] = {"evaluated": names[:3], "planned": names}
    part["cells"] = {k: part["cells"][k] for k in names[:3]}
    curves, photos = EV.sweep_values([*units, part], "m", ["insertion_prob"])
    assert photos == names and sorted(curves["insertion_prob"]["ig"]) == [8, 128]
    assert EV.partial_steps([*units, part], "m") == {64: (3, 16)} and EV.partial_steps(units, "m") == {}


def test_samp_claims_need_better_deletion_and_insertion_than_every_base():
    rng = np.random.default_rng(6)
    names = [f"p{i}" for i in range(16)]
    cells = {}
    for p in names:
        sc = {b: {"deletion": rng.uniform(0.1, 0.2), "insertion_prob": rng.uniform(0.4, 0.6)} for b in ("ig", "blurig", "guidedig")}
        sc["samp"] = {"deletion": min(v["deletion"] for v in sc.values()) - 0.05,
                      "insertion_prob": max(v["insertion_prob"] for v in sc.values()) + 0.05}
        cells[p] = {"scores": sc}
    unit = {"model": "m", "images": {"evaluated": names}, "cells": cells}
    cs = EV.samp_claims(unit)
    assert len(cs) == 6 and all(c["verdict"] == "holds" for c in cs)
    claims = [{"id": "S1", "judge": "samp_pairs", "args": {"models": ["m"]}, "paper": "SAMP", "claim": "c", "evidence": "e",
               "chapter": "samp"}]
    assert EV.judge_claims(claims, [], {}, {}, {"samp_pool": [unit]})[0]["verdict"] == "holds"
    # Made for every model: holding on one cannot make it hold while another model has no unit.
    two = [{**claims[0], "args": {"models": ["m", "m2"]}}]
    row = EV.judge_claims(two, [], {}, {}, {"samp_pool": [unit]})[0]
    assert row["verdict"] == "inconclusive" and "m2 not stored yet" in row["ours"]
    assert EV.judge_claims(two, [], {}, {}, {"samp_pool": [unit, {**unit, "model": "m2"}]})[0]["verdict"] == "holds"
    for p in names:  # SAMP deletes worse than Guided IG everywhere: the claim fails
        cells[p]["scores"]["samp"]["deletion"] = cells[p]["scores"]["guidedig"]["deletion"] + 0.05
    assert EV.judge_claims(claims, [], {}, {}, {"samp_pool": [unit]})[0]["verdict"] == "does not hold"


def test_provenance_line_names_the_commit_command_and_time_per_photo():
    unit = {"file": "u.json", "images": {"evaluated": ["a", "b", "c", "d"]},
            "provenance": {"git_commit": "0123456789abcdef", "device": "cpu", "wall_s": 100.0, "command": "python x.py"}}
    line = EV.provenance_line(unit)
    assert "commit 0123456789" in line and "`python x.py`" in line
    assert "wall time 100.0 s (25 s of wall time per evaluated photo)" in line
    assert "per evaluated photo" not in EV.provenance_line({**unit, "images": {"evaluated": []}})


def _stored_table1(model: str, gap: float, variant: str, seed: int = 0) -> tuple[str, dict]:
    """A Table 1 unit (file name, record) of ``variant`` whose RiemannOpt row is ``gap`` below the baseline."""
    from riemannstudy import units as U

    steps = (16, 32, 64, 128)
    rec = _calibrated(model, "ig", 0.1) | {"settings": {"steps": list(steps)}}
    body = _unit("ig", gap, seed=seed, steps=steps)
    rec["results"], rec["images"] = body["results"], {**rec["images"], "evaluated": body["images"]["evaluated"]}
    numerics = {"device_type": "cuda", "dtype": "float32", "tf32_conv": variant == "cuda_tf32", "tf32_matmul": False}
    if variant != "cpu":
        rec["provenance"] = {**CPU_PROV, "device": "NVIDIA H200", "numerics": numerics}
    return U.unit_file_name(rec), rec


def test_a_claim_whose_verdict_moves_with_the_numerics_is_device_sensitive(tmp_path):
    """judge_by_variant and table1_by_variant: the cpu verdict stays the book's; a variant that disagrees on the same
    model makes the claim device-sensitive; a model only another variant holds is no device effect."""
    paper = EV.load_paper("riemannopt_table1")
    claims = json.loads((EV.PAPER_DIR / "claims.json").read_text())["claims"]
    for name, rec in (_stored_table1("m0", 0.05, "cpu"), _stored_table1("m0", -0.05, "cuda_tf32"),
                      _stored_table1("m0", 0.05, "cuda", seed=1), _stored_table1("m1", -0.05, "cuda")):
        (tmp_path / name).write_text(json.dumps(rec))
    by = {c["id"]: c for c in EV.judge_by_variant(claims, paper, folder=tmp_path)}
    r1 = by["R1-ig"]
    assert r1["cpu_verdict"] == "holds" and r1["verdict"] == "device-sensitive"
    assert r1["by_variant"]["cuda_tf32"]["verdict"] == "does not hold" and r1["by_variant"]["cuda_tf32"]["cpu_same_models"] == "holds"
    # cuda holds m0 (agrees with cpu) and m1 (only cuda has it, and there the claim fails): the comparison is on m0
    cuda = r1["by_variant"]["cuda"]
    assert cuda["verdict"] == "does not hold" and cuda["common_verdict"] == cuda["cpu_same_models"] == "holds"
    assert "cuda_tf32: does not hold" in EV.variant_cell(r1) and "device-sensitive" in EV.claims_overview_markdown(list(by.values()))
    assert "On the CPU alone: holds." in EV.claims_details_markdown([r1])
    rows = EV.table1_by_variant(paper, tmp_path)
    m0 = [r for r in rows if r["model"] == "m0"]
    assert m0 and all(r["verdict"] == "device-sensitive" and set(r["by_variant"]) == {"cpu", "cuda", "cuda_tf32"} for r in m0)
    assert all(set(r["by_variant"]) == {"cuda"} and r["verdict"] == "does not hold" for r in rows if r["model"] == "m1")
    assert "| m0 | IG | 16 |" in EV.table1_by_variant_markdown(rows)
    # without the TF32 unit, cuda's m1 (a model the cpu lacks) is no device effect
    (tmp_path / _stored_table1("m0", -0.05, "cuda_tf32")[0]).unlink()
    assert {c["id"]: c for c in EV.judge_by_variant(claims, paper, folder=tmp_path)}["R1-ig"]["verdict"] == "holds"
    # cpu and cuda agree (holds) and differ per photo by the noise only: the floor keeps 'holds'
    m0 = [r for r in EV.table1_by_variant(paper, tmp_path) if r["model"] == "m0"]
    assert all(r["floor"]["verdict"] == "holds" == r["verdict"] and r["floor"]["high"] < 0 for r in m0)
    # both still hold on their own, but the per-photo spread between them (0.038) covers cuda's whole gain (0.012):
    # a difference inside the numerical floor is never 'holds'
    name, rec = _stored_table1("m0", 0.012, "cuda")
    (tmp_path / name).write_text(json.dumps(rec))
    m0 = [r for r in EV.table1_by_variant(paper, tmp_path) if r["model"] == "m0"]
    assert all(set(c["verdict"] for c in r["by_variant"].values()) == {"holds"} for r in m0)
    assert all(r["verdict"] == "inconclusive" and r["floor"]["high"] > 0 for r in m0)
    assert "with the floor" in EV.table1_by_variant_markdown(m0)
    # one variant alone: the cpu verdict
    for f in tmp_path.glob("*cuda*.json"):
        f.unlink()
    assert {c["id"]: c for c in EV.judge_by_variant(claims, paper, folder=tmp_path)}["R1-ig"]["verdict"] == "holds"


def test_table4_claims_put_the_studys_abs_delta_beside_ours():
    study = EV.load_paper("idgi_study_tables")
    t4 = EV.study_table(study, 4)
    names = [f"p{i}" for i in range(12)]

    def unit(steps):
        cells = {p: {"scores": {m: {"insertion_prob": 0.3 + 0.01 * i + (0.05 if steps == 8 and "idgi" in m else 0.0)}
                                for m in ("ig", "ig+idgi", "blurig", "blurig+idgi")}} for i, p in enumerate(names)}
        return {"model": "efficientnet_lite1", "settings": {"steps": steps}, "images": {"evaluated": names}, "cells": cells,
                "methods": ["ig", "ig+idgi", "blurig", "blurig+idgi"]}

    cells = EV.table4_claims([unit(128), unit(8)], ["insertion_prob"], study=study)
    ig = next(c for c in cells if c["path"] == "ig")
    assert ig["paper_diff"] == pytest.approx(abs(t4["ig+idgi"]["insertion_prob"]) - abs(t4["ig"]["insertion_prob"]))
    assert ig["ours_diff"] == pytest.approx(0.05) and ig["verdict"] == "holds"
    assert all(c["paper_diff"] is None for c in EV.table4_claims([unit(128), unit(8)], ["insertion_prob"]))
    # Figure cells: the series is the model with its photo count, the paper's difference the marker.
    fig_cells = EV.claim_cells(cells, lambda c: c["path"])
    assert [c["row"] for c in fig_cells] == ["ig", "blurig"] and fig_cells[0]["series"] == "Lite1 (12 photos)"
    assert fig_cells[0]["paper"] == ig["paper_diff"] and fig_cells[0]["low"] <= fig_cells[0]["mean"] <= fig_cells[0]["high"]
    summary = EV.verdict_summary(cells, "claims")
    assert summary.startswith("**Verdicts over 2 claims:** holds 2, does not hold 0, inconclusive 0") and "Per model" not in summary


def test_study_beside_markdown_leaves_out_a_range_over_one_model():
    ours = {"ig": {"Lite0": 0.1}, "ig+idgi": {"Lite0": 0.2}}
    one = EV.study_beside_markdown(ours, {"Inception V3": {"ig": 0.3, "ig+idgi": 0.4}}, {})
    assert "range" not in one and one.splitlines()[2] == "| ig | 0.100 | 0.300 |"
    two = EV.study_beside_markdown(ours, {"Inception V3": {"ig": 0.3}, "ResNet": {"ig": 0.5}}, {})
    assert "range over 2 models" in two and two.splitlines()[2] == "| ig | 0.100 | 0.300 | 0.300–0.500 |"


def test_the_best_recipe_is_chosen_on_half_the_photos_and_judged_on_the_other_half():
    # riemannopt is 0.05 lower than the left sum on every photo: chosen (lowest mean) and judged to hold.
    u = _unit("ig", gap=0.05, n_images=30) | {"variant": "cpu"}
    claims = EV.best_recipe_claims([u])
    assert [(c["n"], c["recipe"], c["verdict"], c["n_images"]) for c in claims] == [
        (16, "riemannopt", "holds", 15), (32, "riemannopt", "holds", 15)]
    odd = np.asarray(u["results"]["linear_left"]["16"]["rel_error"])[1::2]
    assert claims[0]["baseline_mean"] == pytest.approx(odd.mean())
    assert claims[0]["factor"] == pytest.approx(odd.mean() / claims[0]["best_mean"])
    md = EV.best_recipe_markdown(claims)
    assert md.count("\n") == 3 and "RiemannOpt, released (right sum)" in md and "✓ holds" in md
    # No gap: the pick is luck, and the disjoint test photos do not let it hold.
    assert all(c["verdict"] != "holds" for c in EV.best_recipe_claims([_unit("ig", gap=0.0) | {"variant": "cpu"}]))
