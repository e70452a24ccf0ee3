"""Store a photo-by-photo unit that a background run wrote into results/reference, and print its commit message.

A long reference run (benchmarks/reference_tolerance.py and the other photo-by-photo benchmarks) writes its unit
into its ``--out-dir`` after every photo and resumes there, so a run spans sessions.  It runs in a clean worktree at
a commit of this history (the provenance must name the code that produced it); this tool copies its unit into the
stored results only when a reader can trace it: it reads as a unit (riemannstudy.units.read_unit), every part of
its provenance names a clean tree at a commit of this history, it keeps every photo the stored unit had, unchanged,
and it adds at least one.  The commit message is made from the unit (photos, wall times, device, command), never
typed.

    python tools/store_unit.py _build/ref-tol/tolerance_efficientnet_lite1.json --issue 29 --note "machine otherwise idle"
    python tools/store_unit.py ... --commit      # also `git add` the stored file and commit it with that message
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from riemannstudy.provenance import in_history  # noqa: E402
from riemannstudy.units import UnitError, is_partial, read_unit, unit_kind, unit_variant  # noqa: E402


def provenance_parts(unit: dict) -> list[dict]:
    """The provenance of every run that wrote part of ``unit`` (the unit's own when it has no parts)."""
    pv = unit["provenance"]
    return pv.get("parts") or [pv]


def added_photos(new: dict, old: dict | None, history: Callable[[str], bool] = in_history) -> list[str]:
    """The photos ``new`` adds to the stored ``old``, or a UnitError saying why ``new`` may not replace it."""
    where = new.get("file", "the new unit")
    if not isinstance(new.get("cells"), dict):
        raise UnitError(f"{where}: a {unit_kind(new)} unit has no photo cells; this tool stores photo-by-photo units")
    for i, part in enumerate(provenance_parts(new)):
        commit = str(part.get("git_commit", ""))
        if part.get("dirty", True):
            raise UnitError(f"{where}: provenance part {i} ran on a dirty tree (commit {commit[:10]} + changes); "
                            "rerun it from a clean worktree so the commit holds the code that produced it")
        if not commit or not history(commit):
            raise UnitError(f"{where}: provenance part {i} names commit {commit[:10] or '(none)'}, which is not in this "
                            "history; rerun it from a commit of this history")
    old_cells = old["cells"] if old else {}
    lost = [n for n in old_cells if n not in new["cells"]]
    if lost:
        raise UnitError(f"{where}: the stored unit has photos this one lacks ({', '.join(lost[:5])}); storing it would "
                        "drop them")
    changed = [n for n in old_cells if new["cells"][n] != old_cells[n]]
    if changed:
        raise UnitError(f"{where}: the photos {', '.join(changed[:5])} differ from the stored unit's; a resumed run "
                        "keeps stored photos as they are, so this is another run (replacing a stored unit is the "
                        "benchmark's --overwrite, not this tool's)")
    added = [n for n in new["cells"] if n not in old_cells]
    if not added:
        raise UnitError(f"{where}: adds no photo to the stored unit ({len(old_cells)} photos); nothing to store")
    return added


def _seconds(cell) -> str:
    wall = cell.get("wall_s") if isinstance(cell, dict) else None
    return f" {wall:.1f} s" if isinstance(wall, (int, float)) else ""


def commit_message(new: dict, added: list[str], into: str, issue: int | None = None, note: str = "") -> str:
    """The commit message for storing ``new`` (adding the photos ``added``), made from the unit alone."""
    cells, pv = new["cells"], new["provenance"]
    planned = new["settings"]["images"]
    commits = sorted({str(p["git_commit"])[:7] for p in provenance_parts(new)})
    devices = "; ".join(sorted({str(p.get("device", "?")) for p in provenance_parts(new)}))  # a run may span machines
    state = "complete" if not is_partial(new) else "PARTIAL"
    last = added[-1] if added else list(cells)[-1]
    tail = f"{last}:{_seconds(cells[last])}" + (f", {note}" if note else "")
    total = f"{pv['wall_s']:.1f} s over all parts ({tail})" if isinstance(pv.get("wall_s"), (int, float)) else tail
    return (f"{unit_kind(new).replace('_', ' ').capitalize()} unit of {new['model']} "
            f"({unit_variant(new)}), {state}{f' (issue {issue})' if issue else ''}: {len(cells)} of {len(planned)} photos "
            f"({', '.join(n + _seconds(c) for n, c in cells.items())}); this commit adds {', '.join(added) or 'no photo'}. "
            f"From a clean tree at {', '.join(commits)} (a commit of this history), {devices}, command: "
            f"{pv.get('command', '?')} (the unit copied to {into}/); {total}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("unit", help="the unit the run wrote (in its --out-dir)")
    ap.add_argument("--into", default="results/reference", help="folder of stored units (repository-relative)")
    ap.add_argument("--issue", type=int, help="the issue the run serves, named in the message")
    ap.add_argument("--note", default="", help="what else ran beside the last photo (its wall time's context)")
    ap.add_argument("--commit", action="store_true", help="git add the stored unit and commit it with the message")
    args = ap.parse_args(argv)
    try:
        new = read_unit(args.unit)
        dst = ROOT / args.into / Path(args.unit).name
        old = read_unit(dst) if dst.exists() else None
        added = added_photos(new, old, in_history)
    except UnitError as err:
        print(f"store_unit: {err}", file=sys.stderr)
        return 1
    shutil.copyfile(args.unit, dst)
    message = commit_message(new, added, args.into, args.issue, args.note)
    print(message)
    if args.commit:
        git = ["git", "-C", str(ROOT)]
        subprocess.run(git + ["add", str(dst)], check=True)
        subprocess.run(git + ["commit", "-q", "-m", message, "--", str(dst)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
