"""tools/mark_lost_commits.py: a record naming a commit this history lacks says so, and the page says so too."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from riemannstudy.units import commit_words

spec = importlib.util.spec_from_file_location("mark_lost_commits", Path(__file__).parent.parent / "tools" / "mark_lost_commits.py")
MLC = importlib.util.module_from_spec(spec)
spec.loader.exec_module(MLC)


def test_mark_moves_only_lost_commit_names_at_any_depth():
    rec = {"provenance": {"git_commit": "aaaaaaa1", "code_commit": "bbbbbbb2", "parts": [{"git_commit": "bbbbbbb2x"}]},
           "other": {"git_commit": "ccccccc3"}}
    assert MLC.mark(rec, ("bbbbbbb",), "why") == 2
    assert rec["provenance"]["code_commit_lost"] == "bbbbbbb2" and "code_commit" not in rec["provenance"]
    assert rec["provenance"]["git_commit"] == "aaaaaaa1"
    assert rec["provenance"]["parts"][0] == {"git_commit_lost": "bbbbbbb2x", "lost_commit_note": "why"}
    assert rec["other"] == {"git_commit": "ccccccc3"}


def test_commit_words_names_the_loss():
    assert commit_words({"git_commit": "a" * 40, "dirty": True}) == "commit aaaaaaaaaa (dirty tree)"
    lost = commit_words({"git_commit": "a" * 40, "dirty": True, "code_commit_lost": "b" * 40})
    assert "bbbbbbbbbb" in lost and "not in this history" in lost and "aaaaaaaaaa" in lost
    assert "not in this history" in commit_words({"git_commit_lost": "c" * 40})
    assert commit_words({"git_commit": "a" * 40, "code_commit": "d" * 40}).startswith("code of commit dddddddddd")


def test_refuses_a_commit_of_this_history(capsys):
    import subprocess

    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    try:
        MLC.main(["--lost", head[:7], "--why", "x"])
    except SystemExit as e:
        assert e.code == 2
    assert "is in the history" in capsys.readouterr().err


def test_refuses_a_tree_with_untracked_files(monkeypatch, capsys):
    # code_state counts untracked files as dirt, as for every stored run; the tool must not stamp "dirty": False then.
    monkeypatch.setattr(MLC, "code_state", lambda allow_dirty=True: {"git_commit": "f" * 40, "dirty": True})
    try:
        MLC.main(["--lost", "0000000", "--why", "x"])
        raise AssertionError("a dirty tree was accepted")
    except SystemExit as e:
        assert e.code == 2
    assert "uncommitted or untracked" in capsys.readouterr().err


def test_stamp_names_the_clean_commit_of_code_state(monkeypatch, tmp_path):
    import json

    monkeypatch.setattr(MLC, "code_state", lambda allow_dirty=True: {"git_commit": "f" * 40, "dirty": False})
    (tmp_path / "r.json").write_text(json.dumps({"provenance": {"git_commit": "0000000abc"}, "value": 1.5}))
    assert MLC.main(["--lost", "0000000", "--why", "lost in a failed landing", "--results", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "r.json").read_text())
    assert list(rec)[0] == "annotated_by" and rec["annotated_by"]["git_commit"] == "f" * 40
    assert rec["annotated_by"]["dirty"] is False and rec["value"] == 1.5
    assert rec["provenance"] == {"git_commit_lost": "0000000abc", "lost_commit_note": "lost in a failed landing"}
