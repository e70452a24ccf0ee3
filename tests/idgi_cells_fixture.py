"""The fixture of tests/test_reference_idgi.py: benchmarks/reference_idgi.py's cells of two shipped photos on a tiny
float64 CNN, made photo by photo by the script's photo_cell at commit 7aa0c9e (before photos were computed in groups):

    mkdir /tmp/rk-7aa0c9e && git archive 7aa0c9e | tar -x -C /tmp/rk-7aa0c9e
    cp tests/idgi_cells_fixture.py /tmp/rk-7aa0c9e/tests/
    (cd /tmp/rk-7aa0c9e && python tests/idgi_cells_fixture.py $OLDPWD/tests/data/idgi_cells_7aa0c9e.json)

The same script at b429a96 (the engine refactor: f(x) and f(x') from the gradient passes) gives these cells to 6e-15
relative.  The model is small enough for a unit test (PIC's WebP sizes and MS-SSIM of 7 maps × 15 bokeh images per
photo are the cost) and float64, so that the passes' shapes (one photo against a group) move its maps and
probabilities by ~1e-13 only and no pixel crosses a PIC threshold or an insertion rank because of them.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SIZE = 161  # the smallest side 5-scale MS-SSIM takes
NAMES = ["chelsea", "rocket"]
BATCH = 16  # points per forward/backward, as the script's default
SETTINGS = {
    "steps": 4, "rule": "left", "path_kwargs": {"guidedig": {"fraction": 0.5, "max_dist": 1.0}}, "insertion_steps": 10,
    "insertion_start": "black", "pic_start": "blur", "reduce": "sum", "min_pred_value": 0.3, "jpeg_quality": 75, "seed": 0,
}


class TinyCNN(nn.Module):
    """Log-energies of 8 zero-mean 5×5 filters on the 4×4-pooled image, 10 logits; float64, seeded weights.

    Energy of high-pass filters is what a blur removes, so the blurred PIC start can score far below the photo
    (chelsea: class 8, p = 0.60 against 0.00 at the start) or not (rocket: class 5, 0.98 against 1.00, so its SIC
    and AIC are invalid, NaN): both cases of a cell."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 5, dtype=torch.float64)
        self.fc = nn.Linear(8, 10, dtype=torch.float64)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            w = torch.randn(self.c1.weight.shape, generator=g, dtype=torch.float64)
            self.c1.weight.copy_(w - w.mean((2, 3), keepdim=True))
            self.c1.bias.copy_(0.1 * torch.randn(8, generator=g, dtype=torch.float64))  # no zero gradient at black
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g, dtype=torch.float64))
            self.fc.bias.copy_(torch.randn(10, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.avg_pool2d(x, 4))
        return 3 * self.fc(torch.log((h * h).mean((2, 3)) + 1e-3))


def photos() -> torch.Tensor:
    from riemannkit.data import load_images

    x, got = load_images("shipped", size=SIZE, names=NAMES)
    assert list(got) == NAMES
    return x


def script():
    spec = importlib.util.spec_from_file_location("reference_idgi", ROOT / "benchmarks" / "reference_idgi.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def per_photo_cells() -> dict:
    """{name: cell} of the fixture's photos, each computed alone by the script's photo_cell."""
    ref, net, x = script(), TinyCNN().eval(), photos()
    cells = {n: ref.photo_cell(net, x[i : i + 1], n, SETTINGS, BATCH) for i, n in enumerate(NAMES)}
    for c in cells.values():
        c.pop("wall_s")
    return cells


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    out = Path(sys.argv[1])
    out.write_text(json.dumps({"names": NAMES, "size": SIZE, "settings": SETTINGS, "cells": per_photo_cells()}, indent=0) + "\n")
    print("wrote", out)
