"""The chapters' quick/full profiles, the rendering of committed full-profile runs and the tables a chapter shows (riemannstudy.chapter, riemannstudy.tables)."""
from __future__ import annotations

import json

import pytest
import torch

from riemannstudy import chapter as CH


def test_quick_changes_nothing_and_full_sets_the_listed_parameters():
    ns = {"k": 32, "steps": [16], "model": "efficientnet_lite0"}
    assert CH.apply_profile("riemannopt", "quick", ns) == {} and ns == {"k": 32, "steps": [16], "model": "efficientnet_lite0"}
    got = CH.apply_profile("riemannopt", "full", ns)
    assert ns["k"] == 128 and ns["steps"] == [16, 32, 64, 128] and ns["model"] == "efficientnet_lite0"
    assert got == CH.FULL_PROFILE["riemannopt"]
    assert CH.apply_profile("sweeps", "full", {})["steps"] == [8, 16, 32, 64, 128]  # the IDGI study's sweep


def test_full_profiles_use_only_the_nine_offline_photos():
    from riemannkit.data import shipped_names

    for chapter, s in CH.FULL_PROFILE.items():
        used = s.get("n_images", 0) + s.get("n_eval", 0) + s.get("n_calib", 0)
        assert 0 < used <= len(shipped_names()), chapter


def test_bad_profile_or_chapter_names_the_accepted_values():
    with pytest.raises(ValueError, match="profile='fast'.*quick, full"):
        CH.apply_profile("riemannopt", "fast", {})
    with pytest.raises(ValueError, match="chapter='samp'.*riemannopt"):
        CH.apply_profile("samp", "full", {})


def test_stored_full_runs_are_found_and_rendered(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj.data))
    assert CH.render_full_runs("idgi", tmp_path) == 0
    assert "No full-profile run" in shown[-1]
    rec = {"provenance": {"device": "NVIDIA H100", "torch": "2.11", "cuda": "12.8", "git_commit": "abc",
                          "date": "2026-11-23", "command": "papermill idgi.ipynb"}, "wall_s": 12.5,
           "tables_markdown": ["| a |\n|---|\n| 1 |"]}
    (tmp_path / "idgi_full_efficientnet_lite0.json").write_text(json.dumps(rec))
    (tmp_path / "idgi_quick.json").write_text(json.dumps(rec))  # not a full run
    shown.clear()
    assert CH.render_full_runs("idgi", tmp_path) == 1
    assert "NVIDIA H100" in shown[0] and "12.5 s" in shown[0] and shown[1] == rec["tables_markdown"][0]


def test_show_records_the_tables_of_its_chapter(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda obj: None)
    ch = CH.Chapter("idgi", {}, torch.device("cpu"), {})
    ch.show("| x |")
    from IPython.display import Markdown

    ch.show(Markdown("| y |"))
    assert ch.shown == ["| x |", "| y |"]
    # Each chapter set-up starts its own list: nothing is kept between chapters (no module-level list).
    assert CH.Chapter("sweeps", {}, torch.device("cpu"), {}).shown == []
