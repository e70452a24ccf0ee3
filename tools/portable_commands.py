"""Make the stored commands of results rerun as is in any clone: an output folder of one machine becomes the folder
the record is stored in now.

Units written by earlier sessions to a folder outside the repository (``--out-dir /work/ref-out4``) and then copied
into results/ store a command that names that machine's folder; a reader's clone has no such folder, and the rule of
this project is a command with repository-relative paths.  The output option only chooses where the file goes (the
numbers do not depend on it), so the command that reruns the record as is names the folder (``--out-dir``) or file
(``--out``) where the record lies now.  This tool rewrites exactly that: the command as it was run is kept under
``command_as_run`` beside the new ``command``, and the record gains ``annotated_by`` (this tool's commit, command and
date; ``annotated_by_portable_commands`` where a record already has an ``annotated_by``).  A machine path in any other
word is reported and left alone (it cannot be rewritten without knowing what it named).  Runs since this tool are
refused such folders (``riemannstudy.runs.reference_out_dir``) and store repository-relative paths
(``riemannstudy.provenance.portable_command``).

    python tools/portable_commands.py            # rewrite results/**/*.json
    python tools/portable_commands.py --check    # list what would change; exit 1 if anything would
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_OPTIONS = {"--out-dir": "folder", "--out": "file"}


def portable(command: str, record_file: Path, root: Path = ROOT) -> tuple[str, list[str]]:
    """(``command`` with each absolute --out-dir / --out value replaced by where ``record_file`` lies, relative to
    ``root``; the absolute paths it could not rewrite)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command, []
    here = {"folder": record_file.parent.relative_to(root).as_posix(), "file": record_file.relative_to(root).as_posix()}
    out, left = [], []
    for i, w in enumerate(words):
        opt, eq, value = w.partition("=") if w.startswith("--") and "=" in w else ("", "", w)
        before = opt or (words[i - 1] if i else "")
        if value.startswith("/") and i:
            if before in OUT_OPTIONS:
                value = here[OUT_OPTIONS[before]]
            else:
                left.append(value)
        out.append(opt + eq + value)
    return (command if out == words else " ".join(shlex.quote(w) for w in out)), left


def rewrite(record, record_file: Path, root: Path = ROOT) -> tuple[int, list[str]]:
    """Rewrite every ``command`` in ``record`` (any depth) in place, keeping the old one as ``command_as_run``; (the
    count rewritten, the machine paths left)."""
    n, left = 0, []
    if isinstance(record, dict):
        cmd = record.get("command")
        if isinstance(cmd, str):
            new, rest = portable(cmd, record_file, root)
            left += rest
            if new != cmd:
                record["command_as_run"], record["command"] = cmd, new
                n += 1
        for k, v in record.items():
            if k != "command":
                m, rest = rewrite(v, record_file, root)
                n, left = n + m, left + rest
    elif isinstance(record, list):
        for v in record:
            m, rest = rewrite(v, record_file, root)
            n, left = n + m, left + rest
    return n, left


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="results", help="folder of stored results (repository-relative)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a command would be rewritten")
    args = ap.parse_args(argv)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.strip())
    if dirty and not args.check:
        ap.error("the tree has uncommitted changes: commit this tool first, so annotated_by names the code that wrote it")
    stamp = {"git_commit": head, "dirty": False, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "command": "python tools/portable_commands.py " + shlex.join(sys.argv[1:] if argv is None else argv),
             "note": "each 'command' naming a folder outside the repository now names where this record lies; "
                     "the command as run is kept as 'command_as_run'"}
    changed = 0
    for f in sorted((ROOT / args.results).rglob("*.json")):
        rec = json.loads(f.read_text())
        n, left = rewrite(rec, f)
        for p in sorted(set(left)):
            print(f"{f.relative_to(ROOT)}: a machine path left as it is (not an output option): {p}")
        if n:
            changed += 1
            print(f"{f.relative_to(ROOT)}: {n} command(s) {'would be ' if args.check else ''}rewritten")
            if not args.check and isinstance(rec, dict):
                key = "annotated_by_portable_commands" if "annotated_by" in rec else "annotated_by"
                rec = {key: stamp, **rec}
                f.write_text(json.dumps(rec, indent=1))  # as riemannstudy.provenance.save_json writes
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
