"""Mark stored results whose commit is no longer in this history, instead of letting them cite a commit nobody can check out.

A submission that fails CI does not land: the next clone starts at the last landed commit, with the failed
submission's work as uncommitted changes, and the commits it made are gone.  A stored record that names one of
them (``git_commit`` of a clean run, ``code_commit`` of an attested device run) then points nowhere.  This tool
keeps the record's numbers and its original provenance, moves each lost name to ``<key>_lost`` with a note saying
what happened, and adds ``annotated_by`` (this tool's commit, command and date), so the record says truthfully who
wrote its current form.  Readers see the loss on the page (``evidence.provenance_line``); a rerun from a commit of
this history replaces such a record.

    python tools/mark_lost_commits.py --lost 239e42b aa51881 eb6c772 --why "..."
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from riemannstudy.provenance import code_state, in_history  # noqa: E402

COMMIT_KEYS = ("git_commit", "code_commit")


def mark(record, lost: tuple[str, ...], why: str) -> int:
    """Move every commit key naming a lost commit to ``<key>_lost`` (with ``lost_commit_note``); the count moved."""
    moved = 0
    if isinstance(record, dict):
        for key in COMMIT_KEYS:
            value = record.get(key)
            if isinstance(value, str) and value.startswith(lost):
                record[f"{key}_lost"] = record.pop(key)
                record["lost_commit_note"] = why
                moved += 1
        for v in record.values():
            moved += mark(v, lost, why)
    elif isinstance(record, list):
        for v in record:
            moved += mark(v, lost, why)
    return moved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lost", nargs="+", required=True, help="commit prefixes (7+ hex digits) that this history lacks")
    ap.add_argument("--why", required=True, help="what happened to them, stored in each record")
    ap.add_argument("--results", default="results", help="folder of stored results (repository-relative)")
    args = ap.parse_args(argv)
    for c in args.lost:
        if len(c) < 7 or any(ch not in "0123456789abcdef" for ch in c):
            ap.error(f"--lost {c!r}: give a commit prefix of at least 7 lowercase hex digits")
        if in_history(c):
            ap.error(f"--lost {c}: this commit is in the history; only commits the history lacks are marked")
    # The same clean-tree test as every stored run's (untracked files count): annotated_by's "dirty": False then means
    # what it means in every other record.
    state = code_state(allow_dirty=True)
    if state["dirty"] is not False or not state["git_commit"]:
        ap.error("the tree has uncommitted or untracked files (or git could not be read): commit this tool first, so "
                 "annotated_by names the code that wrote it")
    stamp = {"git_commit": state["git_commit"], "dirty": False,
             "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "command": "python tools/mark_lost_commits.py " + shlex.join(sys.argv[1:] if argv is None else argv)}
    for f in sorted((ROOT / args.results).rglob("*.json")):
        rec = json.loads(f.read_text())
        n = mark(rec, tuple(args.lost), args.why)
        if n:
            # First key, so a reader (and the project's check that every record names a commit of this history) meets
            # the commit that wrote this form of the record before the lost ones.
            rec = {"annotated_by": stamp, **rec} if isinstance(rec, dict) else rec
            f.write_text(json.dumps(rec, indent=1))  # as riemannstudy.provenance.save_json writes
            print(f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}: {n} lost commit name(s) moved")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
