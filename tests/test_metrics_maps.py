"""Comparing maps (riemannkit.metrics): relative L2, mass ratio, relative map error, concentration; the per-image
tables of them (riemannstudy.chapter, riemannstudy.tables)."""
from __future__ import annotations

import pytest
import torch

from riemannstudy import tables as TB
from riemannkit import evaluation as EV
from riemannkit import integrate as I
from riemannkit import metrics as M


def test_relative_l2_and_table():
    a = {"IG": torch.ones(2, 3), "GIG": torch.zeros(2, 3)}
    b = {"IG": torch.ones(2, 3), "GIG": torch.full((2, 3), 2.0)}
    d = M.relative_l2(a, b)
    assert torch.equal(d["IG"], torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(d["GIG"], torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="a lacks the key"):
        M.relative_l2({"IG": a["IG"]}, b)
    with pytest.raises(ValueError, match="has shape"):
        M.relative_l2({"IG": torch.ones(3), "GIG": a["GIG"]}, b)
    md = TB.mean_spread_table({"IG": torch.tensor([1.0, 3.0]), "IG+IDGI": torch.tensor([4.0])}, "−ln MSE")
    assert md.splitlines()[2] == "| IG | 2.00 ± 1.41 |"
    assert md.splitlines()[3] == "| IG+IDGI | **4.00 ± 0.00** |"
    with pytest.raises(ValueError, match="unknown best="):
        TB.mean_spread_table({"IG": torch.ones(2)}, "x", best="median")


def test_per_image_markdown():
    md = TB.per_image_markdown({"IG": torch.tensor([0.5, 0.25])}, ["a", "b"], fmt="{:.2f}")
    assert md.splitlines() == ["| method | a | b | mean |", "|---|---:|---:|---:|", "| IG | 0.50 | 0.25 | 0.38 |"]
    with pytest.raises(ValueError, match=r"rows\['IG'\] has 2 values for 3 names"):
        TB.per_image_markdown({"IG": torch.ones(2)}, ["a", "b", "c"])


def test_mass_ratio(linear_model, images):
    maps = EV.all_method_maps(linear_model, images, ["ig"], n=4, output="logit", target=0)
    ratio = M.mass_ratio(maps)
    # Linear f: IDGI's map is w ⊙ w Δf / ||w||², all of one sign, so nothing cancels.
    assert torch.allclose(ratio["IG+IDGI"], torch.ones(2, dtype=torch.float64), atol=1e-5)
    assert (ratio["IG"] >= 1 - 1e-6).all()
    r = maps["IG"]
    with pytest.raises(ValueError, match="f\\(x\\) − f\\(x'\\) is 0"):
        M.mass_ratio({"IG": I.Attribution(r.attr, r.f_input, r.f_input, r.target, 4)})


def test_relative_map_error(images):
    a = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(M.relative_map_error(a, 5 * a, images), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(M.relative_map_error(a, -a, images), torch.full((2,), 2.0, dtype=torch.float64))
    # Maps with disjoint supports share nothing: error 1.
    b = torch.zeros_like(a)
    b[:, :, :4] = 1.0
    c = torch.zeros_like(a)
    c[:, :, 4:] = 1.0
    assert torch.allclose(M.relative_map_error(b, c, images), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="all-zero map"):
        M.relative_map_error(a, torch.zeros_like(a), images)


def test_concentration(images):
    flat = torch.ones(2, 3, 8, 8)
    assert torch.allclose(M.concentration(flat, images), torch.ones(2, dtype=torch.float64))
    spike = torch.zeros(2, 3, 8, 8)
    spike[:, :, 2, 5] = -1.0
    assert torch.allclose(M.concentration(spike, images), torch.full((2,), 64.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="all-zero map"):
        M.concentration(torch.zeros(2, 3, 8, 8), images)

