"""tools/tolerance_verdicts.py: the tolerance verdicts a closing note quotes, and their movement since a commit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_tolerance_study import _unit

from riemannstudy import evidence as EVD

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import tolerance_verdicts as TV  # noqa: E402


def _claims(unit: dict) -> list[dict]:
    return [c | {"variant": "cpu"} for c in EVD.tolerance_claims(unit)]


def test_a_claim_whose_verdict_changed_is_marked_and_both_counts_are_computed():
    holds = _claims(_unit([5] * 6 + [7] * 6, [32] * 10 + [64, 64], [16] * 12))
    fails = _claims(_unit([9] * 6 + [11] * 6, [8] * 12, [8] * 12, errors=[0.2] * 12))
    md = TV.markdown(fails, holds, "abc1234")
    rows = [line for line in md.splitlines() if line.startswith("| toy")]
    assert len(rows) == 2 and all(r.rstrip().endswith("**moved** |") for r in rows)
    assert "now: holds 0, does not hold 2, inconclusive 0" in md and "at abc1234: holds 2, does not hold 0" in md
    same = TV.markdown(holds, holds, "abc1234")
    assert "**moved**" not in same and "12 photos:" in same
    assert "at " not in TV.markdown(holds).split("|---")[0]  # no earlier column without --since


def test_a_claim_judged_only_at_the_earlier_commit_keeps_its_row():
    holds = _claims(_unit([5] * 6 + [7] * 6, [32] * 10 + [64, 64], [16] * 12))
    md = TV.markdown(holds[:1], holds, "abc1234")
    gone = [line for line in md.splitlines() if line.rstrip().endswith("**gone** |")]
    assert len(gone) == len(holds) - 1 and all("| — |" in line for line in gone)
    assert "now: holds 1," in md and "at abc1234: holds 2," in md


def test_since_a_commit_judges_the_stored_units_of_that_commit():
    clean = subprocess.run(["git", "status", "--porcelain", "--", "results/reference"], cwd=ROOT, capture_output=True, text=True)
    if clean.returncode != 0 or clean.stdout.strip():
        pytest.skip("needs a git checkout whose stored units are committed")
    out = subprocess.run([sys.executable, "tools/tolerance_verdicts.py", "--since", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    n_claims = sum(len(u["settings"]["paths"]) * len(u["settings"]["tols"]) * 2
                   for u in EVD.tolerance_unit_per_model(EVD.tolerance_units(variant=None)).values())
    rows = [line for line in out.splitlines() if line.startswith("| ") and "| model |" not in line]
    assert len(rows) == n_claims and "**moved**" not in out  # HEAD's units are today's
    now, then = (line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(("now: ", "at HEAD: ")))
    assert now == then


def test_a_commit_git_does_not_know_is_refused_naming_the_option():
    r = subprocess.run([sys.executable, "tools/tolerance_verdicts.py", "--since", "no-such-rev"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--since 'no-such-rev'" in r.stderr


def test_a_claim_on_one_photo_says_it_has_no_ci_instead_of_printing_infinities():
    one = _claims(_unit([5], [32], [16]))
    md = TV.markdown(one)
    assert "inf" not in md and "1 photo: " in md and "(no CI from 1 photo)" in md and "**inconclusive**" in md
