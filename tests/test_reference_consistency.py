"""Today's code reproduces the stored reference run: per-image Σ attr, f(x) and f(x') of two photos of
results/reference/riemannopt_table1_efficientnet_lite0_ig.json, recomputed from the stored points.

The stored unit was computed at the commit its provenance names, with all its photos in passes of its own size
(the command in its provenance); here two photos go through passes of 64 points, on one thread and on two, so the
float32 sums agree to rounding (see TOL), not bit for bit.  A refactoring of the engine, the paths or the schedule
helpers that changed the numbers would fail here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import riemannkit as rk
from riemannstudy import evidence as EVD
from riemannkit import schedule as S

UNIT = Path(__file__).resolve().parents[1] / "results" / "reference" / "riemannopt_table1_efficientnet_lite0_ig.json"
PHOTOS = 2  # the first evaluated photos of the unit
# |recomputed − stored| Σ attr over |Δf|, the scale of the unit's completeness error.  Σ attr sums 150 528 float32
# products over 16 nodes through a deep ReLU6 net; the conv kernels (one thread vs two, the pass's shape, the CPU)
# move it by up to 8e-4 of |Δf| over the first four photos on the AMD EPYC (Gauss–Legendre: 5e-4 on the second photo,
# the value CI's CPU gave too), so the stored unit's own tolerance for recomputation, evidence.RECOMPUTE_TOL (2e-3),
# holds here.  A change of method is larger: left against right nodes at n = 16 move Σ attr by 2.8e-2 of |Δf| on the
# first photo.
TOL = EVD.RECOMPUTE_TOL


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("row", ["linear_right", "gausslegendre", "riemannopt", "riemannopt_paper_left"])
def test_stored_reference_cells_are_reproduced(row, threads):
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
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        r = rk.attribute(net, x, path=unit["path"], target=target, output="prob", batch_size=64, **kwargs)
    finally:
        torch.set_num_threads(before)
    cell = unit["results"][row][str(n)]
    assert r.n_gradients == cell["n_gradients"]
    f_input, f_baseline = (torch.tensor(cell[k][:PHOTOS], dtype=torch.float64) for k in ("f_input", "f_baseline"))
    # f(x) and f(x') are single forward passes: they move by < 1e-6 relative with the threads, so their old bound stays.
    torch.testing.assert_close(r.f_input.double(), f_input, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(r.f_baseline.double(), f_baseline, rtol=1e-4, atol=1e-6)
    stored = torch.tensor(cell["sum_attr"][:PHOTOS], dtype=torch.float64)
    gap = ((r.attr.double().flatten(1).sum(1) - stored).abs() / (f_input - f_baseline).abs()).max().item()
    assert gap < TOL, f"{row}, {threads} thread(s): recomputed Σ attr differs from stored by {gap:.2e} of |Δf| (TOL {TOL})"
