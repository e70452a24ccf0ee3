"""Today's code reproduces the stored reference run: per-image Σ attr, f(x) and f(x') of two photos of
results/reference/riemannopt_table1_efficientnet_lite0_ig.json, recomputed from the stored points.

The stored unit was computed at the commit its provenance names, with all its photos in passes of its own size
(the command in its provenance); here two photos go through passes of 64 points, so the float32 sums agree to
~1e-6 relative, not bit for bit.  A refactoring of
the engine, the paths or the schedule helpers that changed the numbers would fail here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import riemannkit as rk
from riemannkit import schedule as S

UNIT = Path(__file__).resolve().parents[1] / "results" / "reference" / "riemannopt_table1_efficientnet_lite0_ig.json"
PHOTOS = 2  # the first evaluated photos of the unit


@pytest.mark.slow
@pytest.mark.parametrize("row", ["linear_right", "gausslegendre", "riemannopt", "riemannopt_paper_left"])
def test_stored_reference_cells_are_reproduced(row):
    pytest.importorskip("efficientnet_lite_pytorch")
    from riemannkit.data import load_images
    from riemannkit.models import load_model

    unit = json.loads(UNIT.read_text())
    names = unit["settings"]["evaluated"][:PHOTOS]
    target = unit["images"]["targets"][:PHOTOS]
    net, size, _ = load_model(unit["model"], torch.device("cpu"))
    x, got = load_images(unit["settings"]["images"], size=size, names=names)
    assert list(got) == names
    n = 16
    if row in ("linear_right", "gausslegendre"):
        kwargs = {"rule": row.split("_")[-1] if row != "gausslegendre" else "gausslegendre", "n": n}
    elif row == "riemannopt":
        kwargs = S.released_attribute_args(np.asarray(unit["points"][row][str(n)]), unit["path"])
    else:
        kwargs = {"rule": "left", "alphas": np.asarray(unit["points"][row][str(n)])}
    r = rk.attribute(net, x, path=unit["path"], target=target, output="prob", batch_size=64, **kwargs)
    cell = unit["results"][row][str(n)]
    assert r.n_gradients == cell["n_gradients"]
    for mine, stored in ((r.attr.double().flatten(1).sum(1), cell["sum_attr"]),
                         (r.f_input.double(), cell["f_input"]), (r.f_baseline.double(), cell["f_baseline"])):
        stored = torch.tensor(stored[:PHOTOS], dtype=torch.float64)
        # float32 sums of 150 528 features × 16 nodes through other pass shapes: ~1e-6 of the largest term
        torch.testing.assert_close(mine, stored, rtol=1e-4, atol=1e-6)
