"""Print the tolerance chapter's verdicts per model, and how they moved since an earlier commit, as Markdown.

The claims are the chapter's (riemannstudy.evidence.tolerance_claims on each model's unit with the most photos,
tolerance_unit_per_model over every stored variant, as the page's "Across models" section does).  With ``--since REV``
the stored units of that commit are read from git (``git show REV:results/reference/tolerance_*.json``) and judged by
the same code, so a closing note quotes one command for "what the new photos changed" instead of typing a table.
Everything is computed from stored units; nothing is typed.

    python tools/tolerance_verdicts.py
    python tools/tolerance_verdicts.py --since 9d9be20
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from riemannstudy import evidence as EVD  # noqa: E402
from riemannstudy import stats as ST  # noqa: E402
from riemannstudy.tables import table  # noqa: E402

STORED = "results/reference"


def judged(folder: Path | None = None, seed: int = 0) -> list[dict]:
    """The chapter's tolerance claims on every model's unit with the most photos (stored under ``folder``)."""
    per_model = EVD.tolerance_unit_per_model(EVD.tolerance_units(folder, variant=None))
    return [c | {"variant": u["variant"]} for u in per_model.values() for c in EVD.tolerance_claims(u, seed=seed)]


def units_at(rev: str, into: Path) -> Path:
    """Write the stored tolerance units of commit ``rev`` into ``into`` and return it (git must know ``rev``)."""
    ls = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{rev}:{STORED}"], capture_output=True, text=True)
    if ls.returncode != 0:
        raise SystemExit(f"--since {rev!r}: git cannot list {STORED} there ({ls.stderr.strip()}); pass a commit of this history")
    for name in ls.stdout.split():
        if name.startswith("tolerance_") and name.endswith(".json"):
            blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{STORED}/{name}"], capture_output=True, check=True)
            (into / name).write_bytes(blob.stdout)
    return into


def key(c: dict) -> tuple:
    """What identifies a claim across commits."""
    return c["model"], c["path"], c["tol"], c["kind"]


def cell(c: dict | None) -> str:
    """A claim's photos, estimate [95 % CI] and verdict in one cell ('—' where it was not judged)."""
    if c is None:
        return "—"
    fmt = "{:.2f}" if c["kind"] == "ratio" else "{:+.4f}"
    photos = f"{c['n_images']} photo{'s' if c['n_images'] != 1 else ''}"
    return (f"{photos}: {EVD.claim_estimate_text(c, fmt)}"
            f"{' (lower bound)' if c.get('censored') else ''} **{c['verdict']}**")


def markdown(now: list[dict], before: list[dict] | None = None, rev: str = "") -> str:
    """One row per claim now (the ratio claim's estimate is the ratio, the error claim's is median error − tol), with
    the same claim at ``rev`` beside it when ``before`` is given (and a row for each claim judged only then), and
    the verdict counts of both."""
    then = {key(c): c for c in before or []}
    rows = []
    for c in now:
        row = [EVD.MODEL_LABELS.get(c["model"], c["model"]), f"`{c['variant']}`", EVD.PATH_LABELS.get(c["path"], c["path"]),
               f"{c['tol']:g}", c["kind"]]
        if before is not None:
            b = then.get(key(c))
            row += [cell(b), cell(c), "" if b is None or b["verdict"] == c["verdict"] else "**moved**"]
        else:
            row.append(cell(c))
        rows.append(row)
    if before is not None:  # a claim judged at rev but not now (its unit was removed or lost a path or tol)
        here = {key(c) for c in now}
        for b in before:
            if key(b) not in here:
                rows.append([EVD.MODEL_LABELS.get(b["model"], b["model"]), f"`{b['variant']}`",
                             EVD.PATH_LABELS.get(b["path"], b["path"]), f"{b['tol']:g}", b["kind"], cell(b), cell(None),
                             "**gone**"])
    heads = ["model", "unit", "path", "tol", "claim"] + ([f"at {rev}", "now", ""] if before is not None else ["now"])
    out = [table(heads, rows, align="l" * len(heads)), ""]
    out.append("now: " + counts(now))
    if before is not None:
        out.append(f"at {rev}: " + counts(before))
    return "\n".join(out)


def counts(claims: list[dict]) -> str:
    """The verdict counts, overall and per model."""
    total = ", ".join(f"{k} {v}" for k, v in EVD.verdict_counts(claims).items())
    per = "; ".join(f"{EVD.MODEL_LABELS.get(m, m)} "
                    + "/".join(str(n) for n in EVD.verdict_counts([c for c in claims if c["model"] == m]).values())
                    for m in dict.fromkeys(c["model"] for c in claims))
    return f"{total} (per model, {'/'.join(ST.VERDICTS)}: {per})"


def main(argv: list[str] | None = None) -> None:
    """Print the table (and its movement since ``--since``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--since", help="a commit of this history whose stored units to judge beside today's")
    ap.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (the chapter's default: 0)")
    args = ap.parse_args(argv)
    before = None
    if args.since:  # read the old units first: a bad --since fails before the minutes of bootstrap
        with tempfile.TemporaryDirectory() as tmp:
            before = judged(units_at(args.since, Path(tmp)), seed=args.seed)
    print(markdown(judged(seed=args.seed), before, args.since or ""))


if __name__ == "__main__":
    main()
