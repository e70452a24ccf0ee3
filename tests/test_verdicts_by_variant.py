"""tools/verdicts_by_variant.py: the before/after tables quoted by closing notes, computed from the stored units."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from riemannstudy import evidence as EV

ROOT = Path(__file__).resolve().parent.parent


def test_every_claim_has_a_row_and_after_is_the_books_verdict():
    out = subprocess.run([sys.executable, "tools/verdicts_by_variant.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    claims = json.loads((EV.PAPER_DIR / "claims.json").read_text())["claims"]
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ") and "claim" not in line}
    for c in claims:
        assert c["id"] in rows, c["id"]
    judged = EV.judge_by_variant(claims, EV.load_paper("riemannopt_table1"), EV.claim_records(claims))
    for c in judged:
        assert rows[c["id"]].rstrip().endswith(f"**{c['verdict']}** |")
    assert "verdicts before:" in out and "across variants" in out
