"""Where a stored number came from: the repository's results folder, the code state (commit, dirty-tree hashes,
code_sha256 over the files that shape a run), the device, versions and date; write-once JSON records.

Study layer: computes no attribution.  Imports torch, numpy and :mod:`riemannstudy.units`.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .units import commit_words, numerics, write_json_atomic


# ------------------------------------------------------------------------------- results and provenance
# The repository's results folder, found from this file so that a chapter run from any working directory
# (papermill from the repository root, JupyterLab, the book build) reads and writes the same files.
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "results"
# Where the reference scripts write unless told to store evidence (runs.reference_out_dir).
BUILD_DIR = REPO_ROOT / "_build"


def results_path(name: str | Path) -> Path:
    """Absolute path of ``name`` inside the repository's ``results/`` folder (refuses paths outside it)."""
    if not isinstance(name, (str, Path)) or str(name).strip() == "":
        raise ValueError(f"results file name={name!r} must be a non-empty file name inside results/, e.g. 'idgi_quick.json'")
    rel = Path(name)
    # Older papermill commands passed '../results/x.json' (relative to notebooks/): accept that spelling.
    parts = rel.parts
    for prefix in (("..", "results"), ("results",)):
        if parts[: len(prefix)] == prefix:
            rel = Path(*parts[len(prefix):]) if len(parts) > len(prefix) else Path()
            break
    p = (RESULTS_DIR / rel).resolve() if not rel.is_absolute() else rel.resolve()
    if p == RESULTS_DIR or RESULTS_DIR not in p.parents:
        raise ValueError(
            f"results file name={str(name)!r} resolves to {str(p)!r}, outside the repository's results folder "
            f"{str(RESULTS_DIR)!r}; pass a file name inside it, e.g. 'idgi_quick.json'"
        )
    return p


def _git(*args: str) -> bytes | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, cwd=Path(__file__).parent, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def in_history(commit: str) -> bool:
    """Whether ``commit`` names a commit of this repository's history (a stored record may cite it)."""
    return _git("cat-file", "-e", f"{commit}^{{commit}}") is not None


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def code_state(allow_dirty: bool = True) -> dict:
    """The commit that holds the running code: {'git_commit', 'dirty'} and, for a dirty tree, the sha256 of `git diff HEAD`
    and of the untracked files (path and content); raises SystemExit on a dirty tree unless ``allow_dirty``."""
    import hashlib

    commit = (_git("rev-parse", "HEAD") or b"").decode().strip() or None
    status = _git("status", "--porcelain")
    dirty = None if status is None else bool(status.strip())
    state = {"git_commit": commit, "dirty": dirty}
    if not dirty:
        return state
    if not allow_dirty:
        raise SystemExit("refusing to store results from a dirty git tree (git status --porcelain is not empty); commit "
                         "first, or pass --allow-dirty to record the sha256 of `git diff HEAD` instead")
    state["git_diff_sha256"] = hashlib.sha256(_git("diff", "HEAD") or b"").hexdigest()
    # `git diff HEAD` omits untracked files: hash them too (path and content, in sorted order).
    root = Path((_git("rev-parse", "--show-toplevel") or b".").decode().strip())
    # From the top level: run inside riemannkit/, ls-files would list only that folder's files, relative to it.
    untracked = sorted((_git("-C", str(root), "ls-files", "--others", "--exclude-standard", "-z") or b"").decode().split("\0")[:-1])
    state["untracked_files"] = untracked
    state["untracked_sha256"] = files_sha256(root, untracked)
    state["note"] = ("run from a dirty tree: the code is git_commit plus the uncommitted changes whose sha256 is "
                     "git_diff_sha256 (git diff HEAD) and untracked_sha256 (the untracked files listed)")
    return state


def files_sha256(root: Path, names: Sequence[str]) -> str:
    """sha256 over the names and contents of ``names`` (paths under ``root``), in the given order: what
    code_state records for the untracked files of a dirty tree."""
    import hashlib

    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0" + (Path(root) / name).read_bytes() + b"\0")
    return h.hexdigest()


def code_sha256(files: Sequence[str]) -> str:
    """sha256 over the working copies of ``files`` (paths relative to the repository root): the code that runs; in a
    clean tree these are HEAD's committed contents, so a clean run's hash is its commit's."""
    import hashlib

    root = Path((_git("rev-parse", "--show-toplevel") or b"").decode().strip() or REPO_ROOT)
    h = hashlib.sha256()
    for f in files:
        # The working copy, not `git show HEAD:f`: in a dirty tree (or a checkout whose .git is stale) HEAD's blob is
        # not the code that ran, and a resume must compare the code that ran.
        if not (root / f).is_file():
            raise FileNotFoundError(f"{f} is not in the working tree")
        h.update(f.encode() + b"\0" + (root / f).read_bytes() + b"\0")
    return h.hexdigest()


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name as the OS reports it (Linux's /proc/cpuinfo), or None where it is not readable."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return None


def device_name(device: torch.device | str) -> str:
    """The device as stored results name it: the GPU's name, or the CPU with its model and thread count (float32
    results on an Intel and an AMD CPU may differ in their last bits: the model is part of the evidence)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    model = cpu_model()
    arch = platform.processor() or platform.machine()
    return f"CPU ({model + ', ' if model else ''}{arch}, {torch.get_num_threads()} threads)"


def portable_command(command: str) -> str:
    """``command`` with every absolute path inside the repository (``/x/repo/results/y`` or ``--out=/x/repo/y``) written
    relative to its root, so that a stored command reruns as is in any clone; other words are kept as they are."""
    root = str(REPO_ROOT)

    def word(w: str) -> str:
        key, eq, value = w.partition("=") if w.startswith("-") and "=" in w else ("", "", w)
        if value == root:
            value = "."
        elif value.startswith(root + os.sep):
            value = value[len(root) + 1:]
        return key + eq + value

    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: keep the command as it was written
        return command
    portable = [word(w) for w in words]
    return command if portable == words else " ".join(shlex.quote(w) for w in portable)


def provenance(command: str | None = None, device: torch.device | str | None = None) -> dict:
    """Where a number came from: command, git commit (and whether the tree was dirty), device, versions, date."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    state = code_state(allow_dirty=True)
    prov = {
        "command": portable_command(command or " ".join(sys.argv)),
        "git_commit": state.pop("git_commit"),
        "dirty": state.pop("dirty"),
        "device": device_name(dev),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if dev.type == "cuda" else None,
        "numerics": numerics(dev),  # TF32, threads, determinism: what moves float results (units.unit_variant reads it)
        # the versions that shape stored numbers: pillow's codecs drive the JPEG study and PIC
        **{m: _version(m) for m in ("numpy", "scipy", "pillow", "captum")},
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "started_unix": round(time.time(), 1),  # save_json turns it into the record's wall_s
        **state,  # a dirty tree's diff and untracked-file hashes, with a note
    }
    return prov



def record_provenance_line(rec: dict, file: str) -> str:
    """One line naming where a stored chapter record came from: file, commit (dirty tree), device, torch, date, wall time, command."""
    pv = rec.get("provenance", {})
    return (f"`{file}`: {commit_words(pv, 40)}, {pv.get('device')}, "
            f"torch {pv.get('torch')}, {pv.get('date')}, wall time {rec.get('wall_s', rec.get('seconds', '?'))} s; "
            f"command: `{pv.get('command')}`")


def save_json(file: str | Path, record: dict, overwrite: bool = False) -> Path:
    """Write ``record`` as indented JSON (numpy values converted; atomically), creating folders; never replaces a file unless ``overwrite``.
    A record whose provenance came from :func:`provenance` gets its ``wall_s`` (seconds since then) if it has none."""
    def convert(o):
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        if isinstance(o, (np.ndarray, torch.Tensor)):
            return o.tolist()
        raise TypeError(f"cannot store {type(o).__name__} in JSON")

    p = Path(file)
    refuse_overwrite(p, overwrite)
    prov = record.get("provenance") if isinstance(record, dict) else None
    if isinstance(prov, dict) and "started_unix" in prov and "wall_s" not in record:
        record = {**record, "wall_s": round(time.time() - prov["started_unix"], 1)}
    return write_json_atomic(p, record, default=convert)  # a reader (or a kill) never meets a torn file


def refuse_overwrite(file: Path, overwrite: bool) -> None:
    """Raise FileExistsError when ``file`` exists and ``overwrite`` is not True (stored runs are evidence)."""
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite={overwrite!r} must be True or False")
    if file.exists() and not overwrite:
        raise FileExistsError(
            f"{str(file)!r} exists and would be replaced; pass overwrite=True (papermill: -p overwrite True) "
            f"to replace it, or choose a new file name"
        )

