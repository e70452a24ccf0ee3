"""benchmarks/idgi_study_speed.py: the dry run prints and stores a timing row with its stages; the comparison of cells
finds the largest difference per metric and counts mismatched flags."""
from __future__ import annotations

import json
import math

import pytest
from conftest import load_benchmark

import idgi_cells_fixture as FX


@pytest.mark.slow  # an end-to-end script run (PIC's WebP sizes and MS-SSIM of one 161 px photo)
def test_dry_run_times_the_stages(tmp_path, monkeypatch):
    speed = load_benchmark("idgi_study_speed")
    # The tiny float64 CNN of the cell fixture in place of EfficientNet-Lite0: the dry run checks the harness, not a speed.
    monkeypatch.setattr(speed.MO, "load_model", lambda name, device: (FX.TinyCNN().to(device).eval(), FX.SIZE, None))
    out = tmp_path / "speed.json"
    rec = speed.main(["--dry-run", "--profile", "--device", "cpu", "--out", str(out)])
    assert json.loads(out.read_text())["rows"] == rec["rows"]
    (row,) = rec["rows"]
    assert rec["grouped"] and row["group_size"] == 1 and row["photos"] == 1 and row["wall_s"] > 0
    assert set(row["stages_s"]) == {label for label, _, _ in speed.STAGES} | {"other"}
    assert row["stages_s"]["attributions"] > 0 and row["stages_s"]["PIC passes"] > 0
    assert rec["settings"]["steps"] == speed.DRY_RUN["steps"] and rec["input_size"] == FX.SIZE


def test_compare_reports_the_largest_difference_per_metric():
    speed = load_benchmark("idgi_study_speed")
    old = {"p": 0.5, "target": 3, "scores": {"ig": {"sic_webp": 0.25, "deletion": math.nan}},
           "pic": {"ig": {"sic_webp": {"info": [0.0, 0.5], "valid": [True, True]}}}, "wall_s": 9.0}
    new = {"p": 0.5 + 1e-9, "target": 3, "scores": {"ig": {"sic_webp": 0.2501, "deletion": math.nan}},
           "pic": {"ig": {"sic_webp": {"info": [0.0, 0.5], "valid": [True, False]}}}, "wall_s": 1.0}
    res = speed.compare({"a": new}, {"a": old, "b": old})
    assert res["photos"] == ["a"] and res["mismatches"] == 1
    by = res["by_metric"]
    assert by["p"]["rel"] == pytest.approx(2e-9) and by["scores/sic_webp"]["rel"] == pytest.approx(4e-4)
    assert by["scores/deletion"]["mismatch"] == 0 and by["pic/sic_webp/valid"]["mismatch"] == 1
    assert res["max_rel"] == pytest.approx(4e-4) and "wall_s" not in by
