"""Resume a stored photo-by-photo unit where its run stopped: in a clean worktree at the unit's commit, storing each photo.

A long reference run (benchmarks/reference_tolerance.py and the other photo-by-photo benchmarks) must finish under
the code that started it: its resume check compares the hash of its ``code_files`` and refuses newer code, and a
stored result must name the commit holding that code.  So a session that goes on with such a run needs a clean
worktree at the commit of the unit's provenance, the stored unit copied into the run's ``--out-dir`` there, the
unit's own command, and tools/store_unit.py after every photo.  This tool does those steps from the unit alone
(commit, command and ``--out-dir`` come from its provenance; nothing is typed), so a machine that was reset between
sessions resumes with one command:

    python tools/resume_unit.py results/reference/tolerance_efficientnet_lite0.json --worktree ../wt-tol0
    nohup python tools/resume_unit.py results/reference/tolerance_efficientnet_lite0.json --worktree ../wt-tol0 \\
        --run --issue 29 --note "on a machine otherwise idle" --until 16:20 > logs/resume_lite0.log 2>&1 &

Without ``--run`` it prepares the worktree and prints the command it would run.  With ``--run`` it runs that command
(``nice -n 5``, this interpreter) in the worktree and, every ``--poll-s`` seconds and when the run ends, stores and
commits the unit in this checkout when it has gained photos (tools/store_unit.py --commit, which checks that the
unit is traceable and keeps every stored photo unchanged).  ``--until HH:MM`` (UTC) stops the run at the first photo
stored after that time, so a session keeps its end for the checks; the photo under way is lost, never half-stored.

A unit not stored yet is begun the same way, at this checkout's commit (HEAD; the worktree is clean whatever this
checkout holds), with its command named once; from its first stored photo on it resumes as above:

    nohup python tools/resume_unit.py results/reference/tolerance_efficientnet_lite2.json --worktree ../wt-tol2 \\
        --start "python benchmarks/reference_tolerance.py --model efficientnet_lite2 --device cpu --out-dir _build/ref-tol" \\
        --run --issue 29 --note "on a machine otherwise idle" > logs/start_lite2.log 2>&1 &
"""
from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import store_unit  # noqa: E402

from riemannstudy.provenance import cpu_model  # noqa: E402
from riemannstudy.units import UnitError, read_unit  # noqa: E402


def command_plan(command: str, commit: str, where: str) -> dict:
    """The plan (commit, argv after ``python``, out-dir) that runs ``command`` at ``commit``, or a UnitError that
    names ``where`` the command came from."""
    argv = shlex.split(command)
    if len(argv) < 2 or argv[0] != "python":
        raise UnitError(f"{where}: the command {command!r} is not 'python <script> ...'; run it by hand")
    if "--out-dir" not in argv[:-1]:
        raise UnitError(f"{where}: the command names no --out-dir, so the run would not find the unit to resume from")
    return {"commit": commit, "argv": argv[1:], "out_dir": argv[argv.index("--out-dir") + 1]}


def plan(unit: dict) -> dict:
    """The commit, argv (after ``python``) and out-dir that resume ``unit``, from its provenance, or a UnitError."""
    parts = store_unit.provenance_parts(unit)
    last = parts[-1]
    commit = str(last.get("git_commit") or "")
    if not commit or any(p.get("dirty", True) for p in parts):
        raise UnitError(f"{unit.get('file', 'the unit')}: its provenance names no clean commit; only a unit run from a "
                        "clean tree can be resumed (rerun it instead)")
    return command_plan(str(last.get("command") or ""), commit, f"{unit.get('file', 'the unit')}'s provenance")


def start_plan(stored: Path, command: str) -> dict:
    """The plan that begins the unit ``stored`` (not stored yet) with ``command`` at this checkout's HEAD."""
    if stored.exists():
        raise UnitError(f"--start: {stored.name} is stored already; it resumes from its own provenance (drop --start)")
    head = _git("rev-parse", "HEAD").stdout.strip()
    if not head:
        raise UnitError("--start: this checkout has no commit to run at")
    return command_plan(command, head, "--start")


def _git(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)


def prepare(stored: Path, worktree: Path, start: str | None = None) -> tuple[dict, Path]:
    """Make ``worktree`` a clean checkout at the unit's commit holding the stored unit (with ``start``, the command
    that begins a unit not stored yet, at HEAD); return the plan and the worktree's unit file.  A worktree unit with
    at least the stored unit's photos (a run's progress) is kept."""
    if start is None and not stored.exists():
        raise UnitError(f"{stored.name} is not stored; begin it with --start \"python <script> ... --out-dir DIR\"")
    unit = read_unit(stored) if start is None else {"cells": {}}
    p = plan(unit) if start is None else start_plan(stored, start)
    if not worktree.exists():
        _git("worktree", "prune")
        r = _git("worktree", "add", "--detach", str(worktree), p["commit"])
        if r.returncode != 0:
            raise UnitError(f"--worktree {worktree}: git worktree add at {p['commit'][:10]} failed ({r.stderr.strip()})")
    head = _git("rev-parse", "HEAD", cwd=worktree).stdout.strip()
    if head != p["commit"]:
        raise UnitError(f"--worktree {worktree}: it is at {head[:10] or '(not a git checkout)'}, the unit's commit is "
                        f"{p['commit'][:10]}; name another folder or remove this worktree")
    if _git("status", "--porcelain", "--untracked-files=no", cwd=worktree).stdout.strip():
        raise UnitError(f"--worktree {worktree}: it has uncommitted changes; a stored result must come from a clean tree")
    dst = worktree / p["out_dir"] / stored.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    have = len(read_unit(dst)["cells"]) if dst.exists() else -1
    if have > len(unit["cells"]):
        print(f"resume_unit: keeping {dst} ({have} photos, the stored unit has {len(unit['cells'])}): the run's "
              "progress, stored after its next photo", file=sys.stderr)
    elif start is None and have < len(unit["cells"]):  # equal: leave it, a run may be replacing it right now
        shutil.copyfile(stored, dst)
    elif start is not None and have > 0:
        print(f"resume_unit: {dst} holds {have} photos of an earlier start; the run resumes from them if its code is "
              "unchanged (the benchmark checks) and they are stored with its next photo", file=sys.stderr)
    return p, dst


def note_with_cpu(note: str, unit: dict) -> str:
    """``note``, plus this machine's CPU model where the unit's device string does not name it (older provenance)."""
    model = cpu_model()
    device = str(store_unit.provenance_parts(unit)[-1].get("device", ""))
    extra = f"CPU (/proc/cpuinfo): {model}" if model and model not in device else ""
    return "; ".join(s for s in (note, extra) if s)


def until_time(text: str, now: dt.datetime) -> dt.datetime:
    """The next UTC time ``HH:MM`` at or after ``now`` (an ISO date-time is taken as is), or a ValueError naming
    --until."""
    try:
        if len(text) <= 5:
            h, m = (int(x) for x in text.split(":"))
            t = now.replace(hour=h, minute=m, second=0, microsecond=0)
            return t if t >= now else t + dt.timedelta(days=1)
        t = dt.datetime.fromisoformat(text)
        return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ValueError(f"--until {text!r}: expected HH:MM (UTC) or an ISO date-time") from None


def store_if_grown(work_unit: Path, stored: Path, issue: int | None, note: str, commit: bool = True) -> bool:
    """Store (and commit) the worktree's unit when it has more photos than the stored one; whether it did."""
    if not work_unit.exists():  # a begun unit before its first photo
        return False
    try:
        new = read_unit(work_unit)
        old = read_unit(stored) if stored.exists() else {"cells": {}}
    except UnitError as err:  # never a half-written file (the run writes atomically): say why and try again later
        print(f"resume_unit: not stored yet: {err}", file=sys.stderr, flush=True)
        return False
    if len(new["cells"]) <= len(old["cells"]):
        return False
    into = stored.parent.relative_to(ROOT) if stored.parent.is_relative_to(ROOT) else stored.parent
    args = [str(work_unit), "--into", str(into), "--note", note_with_cpu(note, new)]
    args += (["--commit"] if commit else []) + (["--issue", str(issue)] if issue else [])
    return store_unit.main(args) == 0


def main(argv: list[str] | None = None) -> int:
    """Prepare the worktree, print the command, and with --run run it, storing each photo; the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("unit", help="the stored unit to resume (results/reference/...json), or to begin with --start")
    ap.add_argument("--worktree", required=True, help="a folder for the clean worktree at the unit's commit")
    ap.add_argument("--start", metavar="COMMAND", help="begin a unit not stored yet: its run's command "
                    "('python <script> ... --out-dir DIR', repository-relative), run at this checkout's HEAD")
    ap.add_argument("--run", action="store_true", help="run the unit's command there and store each photo")
    ap.add_argument("--issue", type=int, help="the issue the run serves, named in each commit message")
    ap.add_argument("--note", default="", help="what else ran on the machine beside the run (in each message)")
    ap.add_argument("--until", help="HH:MM (UTC): stop at the first photo stored after this time")
    ap.add_argument("--poll-s", type=float, default=60.0, help="seconds between checks for a new photo")
    args = ap.parse_args(argv)
    stored = (Path.cwd() / args.unit).resolve()
    try:
        stop = until_time(args.until, dt.datetime.now(dt.timezone.utc)) if args.until else None
        p, work_unit = prepare(stored, Path(args.worktree).resolve(), args.start)
    except (UnitError, ValueError) as err:
        print(f"resume_unit: {err}", file=sys.stderr)
        return 1
    command = ["nice", "-n", "5", sys.executable, *p["argv"]]
    print(f"resume_unit: in {Path(args.worktree).resolve()} (clean, at {p['commit'][:10]}): {shlex.join(command)}")
    if not args.run:
        return 0
    run = subprocess.Popen(command, cwd=Path(args.worktree).resolve())
    rc = follow(run, lambda: store_if_grown(work_unit, stored, args.issue, args.note), stop, args.poll_s)
    if not stored.exists():  # e.g. the command writes another file name than the unit named here
        print(f"resume_unit: nothing was stored: the run wrote no photo to {work_unit}", file=sys.stderr)
    return rc


def follow(run, store: Callable[[], bool], stop: dt.datetime | None, poll_s: float,
           now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> int:
    """Call ``store`` every ``poll_s`` seconds while ``run`` (a Popen) lives and once after it ends; stop the run at the
    first photo stored at or after ``stop``.  Returns the run's exit status (0 when stopped that way)."""
    while True:
        ended = run.poll() is not None  # polled before storing: a photo written just before the end is still stored
        if store() and stop is not None and now() >= stop and not ended:
            print(f"resume_unit: a photo was stored after {stop:%H:%M} UTC (--until); stopping the run", flush=True)
            run.terminate()
            run.wait()
            return 0
        if ended:
            print(f"resume_unit: the run ended with rc {run.returncode}", flush=True)
            return run.returncode
        time.sleep(poll_s)


if __name__ == "__main__":
    sys.exit(main())
