"""What only the book needs: the chapters' set-up, their results files and provenance, profiles and Markdown tables.

Every chapter calls :func:`setup` right after its parameters cell.  A chapter's parameters cell declares each
parameter with a type annotation (``steps: list[int] = [16, 32]``); papermill's injected cell then rebinds
values without annotations, so :func:`check_parameters` can check every value against the declared type before
any heavy work, and parse the text papermill's ``-p`` gives for a list (``-p steps "[16, 32]"``).  The
:class:`Chapter` it returns shows the chapter's tables (``ch.show(md)``) and keeps them (``ch.shown``) for the
results JSON.  Nothing here computes an attribution: the library modules do, and the chapters call them.
"""
from __future__ import annotations

import ast
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from . import evaluation as EV
from . import units as U
from .models import resolve_device
# The stored units' numerics, variants, names and writes live in riemannkit.units; the book re-exports them.
from .units import commit_words, numerics, set_numerics, unit_file_name, unit_variant, write_json_atomic  # noqa: F401


# ------------------------------------------------------------------------------- results and provenance
# The repository's results folder, found from this file so that a chapter run from any working directory
# (papermill from the repository root, JupyterLab, the book build) reads and writes the same files.
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "results"


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


def device_name(device: torch.device | str) -> str:
    """The device as stored results name it: the GPU's name, or the CPU with its thread count."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(command: str | None = None, device: torch.device | str | None = None) -> dict:
    """Where a number came from: command, git commit (and whether the tree was dirty), device, versions, date."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    state = code_state(allow_dirty=True)
    prov = {
        "command": command or " ".join(sys.argv),
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


# ------------------------------------------------------------------------------- stored reference units
# Where the reference scripts write: evidence goes to results/reference only when asked by name (--out-dir);
# by default to _build/reference, and a dry run (never evidence) to _build/reference_dry_run, never under results/.
BUILD_DIR = REPO_ROOT / "_build"


def add_unit_arguments(ap) -> None:
    """The options every reference script shares: --out-dir, --overwrite, --allow-tf32, --allow-dirty."""
    ap.add_argument("--out-dir", default=None,
                    help="where the units go (default: _build/reference, a dry run _build/reference_dry_run); "
                         "pass results/reference to store evidence")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace a stored unit made with other settings, code or numerics (or a complete one)")
    ap.add_argument("--allow-tf32", action="store_true",
                    help="on CUDA, let convolutions and matmuls use TF32 (variant 'cuda_tf32'); default strict fp32")
    ap.add_argument("--allow-dirty", action="store_true",
                    help="store from a dirty tree, recording the sha256 of git diff HEAD")


def reference_out_dir(out_dir: str | Path | None, dry_run: bool) -> Path:
    """The folder a reference script writes to: ``out_dir`` as given, else _build/reference (_build/reference_dry_run
    for a dry run); a dry run under the repository's results/ is refused (its units are not evidence)."""
    if out_dir is None:
        return BUILD_DIR / ("reference_dry_run" if dry_run else "reference")
    folder = Path(out_dir).resolve()
    if dry_run and (folder == RESULTS_DIR or RESULTS_DIR in folder.parents):
        raise SystemExit(f"--out-dir {out_dir} is inside results/: a dry run's units are not evidence and never go "
                         f"there; leave --out-dir out (default {BUILD_DIR / 'reference_dry_run'}) or pass another folder")
    return folder


def unit_path(out_dir: str | Path, kind: str, model: str, variant: str, path: str | None = None,
              steps: int | None = None) -> Path:
    """``out_dir``/the unit's file name (units.unit_stem, units.variant_file_name)."""
    return Path(out_dir) / U.variant_file_name(U.unit_stem(kind, model, path, steps), variant)


# A photo-by-photo run stops after the photo that passes this time (seconds since the epoch, in the environment):
# the GPU suite sets it so that a unit longer than a device call's budget comes back partial and resumes next time.
STOP_AT_ENV = "RIEMANNKIT_STOP_AT"


class DeadlineReached(RuntimeError):
    """A photo-by-photo run stopped at its deadline (:data:`STOP_AT_ENV`) after saving what it finished; a rerun resumes it."""


class PhotoRun:
    """A reference unit stored photo by photo in one JSON file (settings['images'] lists the photos, in order).

    It holds the unit's lock (units.lock_unit) from construction to :meth:`finish`, so a second run on the same unit
    is refused.  It resumes a stored unit only when its model, schema, settings, code (``state['code_sha256']`` and,
    for a dirty tree, its diff hashes: see :func:`code_state`) and numerics variant are this run's, after checking
    every stored cell (units.check_unit); any other stored file stops the run with an error naming the difference
    and is kept, unless ``overwrite``.  The file is rewritten atomically after every photo (a killed run keeps what
    it finished) and lists each session's share (commit, command, device, numerics, photos, wall time) under
    provenance.parts.  ``header`` holds the unit's 'benchmark' and 'model' (and what its cells are checked against:
    'methods' and 'metrics', or 'baseline'); the file name must be the unit's (units.unit_file_name)."""

    def __init__(self, file: str | Path, schema: int, settings: dict, state: dict, command: str, device, header: dict,
                 overwrite: bool = False):
        self.file, self.schema, self.settings, self.header = Path(file), schema, settings, header
        part = provenance(command, device)
        part.pop("started_unix")
        self.part, self.variant = {**part, **state}, U.numerics_variant(part["numerics"])
        name = U.unit_file_name({**header, "schema": schema, "settings": settings, "provenance": self.part})
        if self.file.name != name:
            raise ValueError(f"file={str(file)!r}: this unit's file name is {name!r} (units.unit_file_name)")
        self.lock = U.lock_unit(self.file)
        try:
            prev = U.resumable(self.file, {**header, "schema": schema, "settings": settings, "state": state,
                                           "variant": self.variant}, overwrite)
        except BaseException:
            self.lock.release()
            raise
        self.resumed = prev is not None
        self.cells: dict = dict(prev["cells"]) if prev else {}
        self.parts: list = list(prev["provenance"]["parts"]) if prev else []
        self.t0, self.added = time.time(), 0

    def todo(self) -> list[str]:
        """The planned photos not stored yet, in order."""
        return [n for n in self.settings["images"] if n not in self.cells]

    def record(self) -> dict:
        done = [n for n in self.settings["images"] if n in self.cells]
        parts = [*self.parts, {**self.part, "photos_done": len(done), "wall_s": round(time.time() - self.t0, 1)}]
        return {**self.header, "schema": self.schema, "complete": len(done) == len(self.settings["images"]),
                "settings": self.settings, "images": {"evaluated": done, "planned": list(self.settings["images"])},
                "cells": {n: self.cells[n] for n in done},
                "provenance": {**parts[-1], "wall_s": round(sum(p["wall_s"] for p in parts), 1), "parts": parts}}

    def save(self) -> Path:
        return U.write_json_atomic(self.file, self.record())

    def add(self, name: str, cell: dict) -> None:
        """Check one photo's cell (units.check_cell), store it and rewrite the file."""
        self.add_group({name: cell})

    def add_group(self, cells: dict[str, dict]) -> None:
        """Check several photos' cells, store them and rewrite the file once (a unit of 39 photos is megabytes of
        JSON: one write per group of photos computed together, not one per photo)."""
        for name, cell in cells.items():
            U.check_cell({**self.header, "file": self.file.name, "settings": self.settings}, name, cell)
        self.cells.update(cells)
        self.added += len(cells)
        self.save()
        stop_at = os.environ.get(STOP_AT_ENV)
        if stop_at and self.todo() and time.time() >= float(stop_at):
            self.finish()
            raise DeadlineReached(f"{self.file.name}: stopped at the deadline ({STOP_AT_ENV}) with {len(self.cells)} of "
                                  f"{len(self.settings['images'])} photos stored; a rerun with the same settings resumes it")

    def finish(self) -> Path:
        """Write the file unless this session resumed a stored run and added nothing (it stays as it was); release
        the unit's lock."""
        try:
            if self.added or not self.resumed:
                self.save()
        finally:
            self.lock.release()
        return self.file


def record_provenance_line(rec: dict, file: str) -> str:
    """One line naming where a stored chapter record came from: file, commit (dirty tree), device, torch, date, wall time, command."""
    pv = rec.get("provenance", {})
    return (f"`{file}`: {commit_words(pv, 40)}, {pv.get('device')}, "
            f"torch {pv.get('torch')}, {pv.get('date')}, wall time {rec.get('wall_s', rec.get('seconds', '?'))} s; "
            f"command: `{pv.get('command')}`")


def save_json(file: str | Path, record: dict, overwrite: bool = False) -> Path:
    """Write ``record`` as indented JSON (numpy values converted), creating folders; never replaces a file unless ``overwrite``.
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
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(record, indent=1, default=convert))
    return p


def refuse_overwrite(file: Path, overwrite: bool) -> None:
    """Raise FileExistsError when ``file`` exists and ``overwrite`` is not True (stored runs are evidence)."""
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite={overwrite!r} must be True or False")
    if file.exists() and not overwrite:
        raise FileExistsError(
            f"{str(file)!r} exists and would be replaced; pass overwrite=True (papermill: -p overwrite True) "
            f"to replace it, or choose a new file name"
        )


# -------------------------------------------------------------------------------------------- profiles
# The benchmark chapters' profiles.  'quick' (the default) is each chapter's own parameters cell, sized for a
# 2-core CPU; 'full' is the full reproduction, meant for a GPU: all nine offline photos, 16–128 steps
# (8–128 for the sweeps), k = 128, m = 3 calibration photos (disjoint from the 6 evaluated ones) and
# 256 points per pass (a GPU size, not yet measured on one: if it runs out of memory, the error names a smaller
# batch_size).  benchmarks/full_profile.py runs each chapter once per model.
PROFILES = ("quick", "full")
FULL_PROFILE = {
    "riemannopt": {"n_eval": 6, "n_calib": 3, "k": 128, "steps": [16, 32, 64, 128], "batch_size": 256},
    "idgi": {"n_images": 6, "n_calib": 3, "k": 128, "steps": 128, "batch_size": 256},
    "idgi_models": {"n_images": 9, "steps": 128, "batch_size": 256},  # its default models: all three
    "sweeps": {"n_images": 6, "n_calib": 3, "k": 128, "steps": [8, 16, 32, 64, 128], "batch_size": 256,
               "metrics": ["insertion_prob", "insertion_ratio", "deletion", "completeness", "sic_msssim", "aic_msssim"]},
    "stability": {"n_images": 9, "steps": 128, "batch_size": 256},
}


def apply_profile(chapter: str, profile: str, namespace: dict) -> dict:
    """Set ``profile``'s parameters of ``chapter`` in ``namespace`` (a notebook's globals()); returns them.

    'quick' changes nothing; 'full' replaces the parameters listed in FULL_PROFILE[chapter], so a value
    given for one of them with papermill is overridden (use profile='quick' to set them one by one)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile={profile!r}; accepted values: {', '.join(PROFILES)}")
    if chapter not in FULL_PROFILE:
        raise ValueError(f"chapter={chapter!r} has no profiles; accepted values: {', '.join(FULL_PROFILE)}")
    settings = dict(FULL_PROFILE[chapter]) if profile == "full" else {}
    namespace.update(settings)
    return settings


def stored_full_runs(chapter: str, folder: str | Path = RESULTS_DIR) -> list[dict]:
    """The committed full-profile records of ``chapter`` (``<chapter>_full_*.json`` in ``folder``), by name; a file that
    does not parse is a ValueError naming it."""
    runs = []
    for f in sorted(Path(folder).glob(f"{chapter}_full_*.json")):
        try:
            runs.append(json.loads(f.read_text()) | {"file": f.name})
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{f}: does not parse as JSON ({type(err).__name__}: {err}); it may be truncated") from None
    return runs


def render_full_runs(chapter: str, folder: str | Path = RESULTS_DIR) -> int:
    """Display the committed full-profile runs of ``chapter``: provenance, then the tables they showed; returns their number."""
    from IPython.display import Markdown, display

    runs = stored_full_runs(chapter, folder)
    for rec in runs:
        display(Markdown(f"**Full-profile run** {record_provenance_line(rec, rec['file'])}; CUDA {rec.get('provenance', {}).get('cuda')}."))
        for table in rec.get("tables_markdown", []):
            display(Markdown(table))
    if not runs:
        display(Markdown(
            f"*No full-profile run of this chapter is committed yet (`results/{chapter}_full_*.json`): the full "
            "profile is GPU work and no GPU was available to the machines that built this book. "
            "`python benchmarks/full_profile.py --store` makes and stores it.*"
        ))
    return len(runs)


# ----------------------------------------------------------------------------------- chapter set-up
_TRUE, _FALSE = ("True", "true", "1", "yes"), ("False", "false", "0", "no")


def _type_name(hint) -> str:
    """How a type hint reads in an error message."""
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _example(name: str, hint) -> str:
    """A papermill option that passes a valid value of ``hint`` for ``name``."""
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint) or (str,)
        return f'-y "{name}: [16, 32]"' if item in (int, float) else f'-y "{name}: [a, b]"'
    if origin is typing.Literal:
        return f"-p {name} {typing.get_args(hint)[0]}"
    return f"-p {name} VALUE"


def _coerce(name: str, value, hint):
    """``value`` as the type ``hint`` declares, or ValueError naming the parameter and the accepted form."""
    bad = ValueError(
        f"parameter {name}={value!r} ({type(value).__name__}) must be {_type_name(hint)}; "
        f"with papermill pass it as {_example(name, hint)}"
    )
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None or value == "None":
            if type(None) in options:
                return None
            raise bad
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(name, value, option)
            except ValueError:
                pass
        raise bad
    if origin is typing.Literal:
        accepted = typing.get_args(hint)
        if value not in accepted:
            raise ValueError(f"parameter {name}={value!r}: accepted values: {', '.join(map(repr, accepted))}")
        return value
    if origin is list or hint is list:
        if isinstance(value, str):  # papermill's -p gives a list as its text
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise bad from None
        if not isinstance(value, (list, tuple)):
            raise bad
        (item,) = typing.get_args(hint) or (None,)
        return [v if item is None else _coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in _TRUE + _FALSE:
            return value in _TRUE
        raise bad
    if hint in (int, float):
        # an int is a float's value too; a bool is neither; papermill's strings are parsed
        accepted = int if hint is int else (int, float)
        if isinstance(value, accepted) and not isinstance(value, bool):
            return hint(value)
        if isinstance(value, str):
            try:
                return hint(value)
            except ValueError:
                raise bad from None
        raise bad
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad
    return value  # a hint this checker does not know: left as given


# Integer parameters are counts (photos, steps, epochs, grid points, pass sizes, ...): at least 1.  These may be 0.
NONNEGATIVE_PARAMETERS = ("seed", "seeds")


def _check_count(name: str, value) -> None:
    """An integer parameter (or an integer list's items) is >= 1, a seed >= 0: else ValueError naming it."""
    minimum = 0 if name in NONNEGATIVE_PARAMETERS else 1
    items = value if isinstance(value, list) else [value]
    for i, v in enumerate(items):
        if isinstance(v, int) and not isinstance(v, bool) and v < minimum:
            at = f"{name}[{i}]" if isinstance(value, list) else name
            raise ValueError(f"parameter {at}={v!r} must be >= {minimum} "
                             f"({'a seed' if minimum == 0 else 'a count: photos, steps, points, epochs, ...'})")


def check_parameters(namespace: dict) -> dict:
    """Check and coerce every annotated parameter in ``namespace`` (a notebook's globals()); returns them by name.
    Integers are counts, refused below 1 (a seed below 0: :data:`NONNEGATIVE_PARAMETERS`)."""
    hints = namespace.get("__annotations__", {})
    params = {}
    for name, hint in hints.items():
        if name not in namespace:
            continue
        params[name] = namespace[name] = _coerce(name, namespace[name], hint)
        _check_count(name, params[name])
    return params


def injected_parameters(namespace: dict) -> list[str]:
    """The names papermill's injected-parameters cell assigned in this kernel, read from IPython's input history
    (``In``: papermill's cell starts with the comment '# Parameters'); [] outside papermill."""
    history = namespace.get("In") or namespace.get("_ih") or []
    for src in reversed(list(history)):
        if isinstance(src, str) and src.lstrip().startswith("# Parameters\n"):
            try:
                tree = ast.parse(src)
            except SyntaxError:
                return []
            return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)]
    return []


def check_unknown_parameters(chapter: str, namespace: dict) -> None:
    """Refuse a parameter papermill injected that the chapter does not declare (a misspelling would be ignored)."""
    import difflib

    declared = list(namespace.get("__annotations__", {}))
    unknown = [n for n in injected_parameters(namespace) if n not in declared and not n.startswith("PAPERMILL_")]
    if unknown:
        hints = {n: difflib.get_close_matches(n, declared, 1) for n in unknown}
        near = "; ".join(f"{n}: did you mean {h[0]}?" for n, h in hints.items() if h)
        raise ValueError(f"unknown parameter(s) {unknown} for the {chapter} chapter{' (' + near + ')' if near else ''}; "
                         f"accepted parameters: {', '.join(declared)}")


def check_choices(namespace: dict) -> None:
    """The parameters named after a registry hold its names, checked before any work: ``paths`` (riemannkit.paths),
    ``methods`` (a path or its '+idgi' twin) and ``metrics`` (evaluation.METRICS), each a non-empty list."""
    from .paths import PATH_NAMES

    registries = {"paths": PATH_NAMES, "methods": EV.METHODS, "metrics": EV.METRICS}
    for name, accepted in registries.items():
        if name not in namespace.get("__annotations__", {}) or name not in namespace:
            continue
        values = namespace[name]
        if not isinstance(values, list) or not values:
            raise ValueError(f"parameter {name}={values!r} must be a non-empty list; accepted values: {', '.join(accepted)}")
        unknown = [v for v in values if v not in accepted]
        if unknown:
            raise ValueError(f"parameter {name} holds {unknown}; accepted values: {', '.join(accepted)}")


def check_results_file(namespace: dict) -> Path | None:
    """Where a chapter with ``save_results`` will write (``results_file`` inside results/), checked before any work:
    a bad name, or an existing file without ``overwrite``, stops the chapter now instead of after its computation."""
    if "results_file" not in namespace:
        return None
    path = results_path(namespace["results_file"])
    if namespace.get("save_results"):
        refuse_overwrite(path, namespace.get("overwrite", False))
    return path


def rerun_command(chapter: str, params: dict) -> str:
    """The papermill command that reruns ``chapter`` with ``params`` (from the repository root)."""
    yaml = json.dumps(params, separators=(", ", ": "), default=str)  # JSON is YAML
    return f"papermill notebooks/{chapter}.ipynb {chapter}_out.ipynb -y '{yaml}'"


@dataclass
class Chapter:
    """What :func:`setup` found: the checked parameters, the device, provenance and the start time; it
    collects the tables the chapter shows (:meth:`show`, :attr:`shown`) for its results JSON."""

    name: str
    params: dict
    device: torch.device
    provenance: dict
    full_settings: dict = field(default_factory=dict)
    wall_start: float = field(default_factory=time.time)
    shown: list[str] = field(default_factory=list)  # the Markdown :meth:`show` displayed, for the results JSON

    def show(self, markdown) -> None:
        """Display Markdown (text or an IPython Markdown object) and keep its text in :attr:`shown`."""
        from IPython.display import Markdown, display

        text = getattr(markdown, "data", markdown)
        self.shown.append(text)
        display(Markdown(text))


def setup(chapter: str, namespace: dict) -> Chapter:
    """Check the parameters before any work (unknown names papermill injected, types, counts >= 1, the results
    file), apply ``profile`` where the chapter has profiles, seed torch and resolve the device."""
    wall_start = time.time()
    check_unknown_parameters(chapter, namespace)
    params = check_parameters(namespace)
    full_settings = {}
    if "profile" in namespace and chapter in FULL_PROFILE:
        full_settings = apply_profile(chapter, namespace["profile"], namespace)  # profile="full" sets these
        if full_settings:
            params.update(check_parameters({**namespace, "__annotations__": {
                k: v for k, v in namespace.get("__annotations__", {}).items() if k in full_settings}}))
            print("profile full:", full_settings)
    check_choices(namespace)
    check_results_file(namespace)
    torch.manual_seed(int(namespace.get("seed", 0)))
    dev = resolve_device(namespace.get("device", "auto"))
    prov = provenance(command=rerun_command(chapter, params), device=dev)
    return Chapter(chapter, params, dev, prov, full_settings, wall_start)


# ------------------------------------------------------------------------------------------ tables
# The one table formatter (values[row][column]), the narrowing of a stored table for the page, and two per-image
# layouts of {method: values (B,)}.
def fold_constant_columns(md: str) -> str:
    """A Markdown table narrowed to fit the page: a one-row table becomes a column of names and values; otherwise the
    columns with one value in every row go into a line above it.  Model keys become their short labels.  Text that is
    not a single pipe table is returned as it is."""
    from .models import MODEL_LABELS

    lines = [ln for ln in md.strip().splitlines() if ln.strip()]
    if len(lines) < 3 or not all(ln.lstrip().startswith("|") for ln in lines) or "---" not in lines[1]:
        return md
    split = lambda ln: [c.strip() for c in ln.strip().strip("|").split("|")]  # noqa: E731
    head, rows = split(lines[0]), [[MODEL_LABELS.get(c, c) for c in split(ln)] for ln in lines[2:]]
    if any(len(r) != len(head) for r in rows):
        return md
    if len(rows) == 1:
        return "\n".join(["| | |", "|---|---:|"] + [f"| {h} | {v} |" for h, v in zip(head, rows[0])])
    const = [j for j in range(len(head)) if len({r[j] for r in rows}) == 1]
    keep = [j for j in range(len(head)) if j not in const] or list(range(len(head)))
    align = split(lines[1])
    out = ["*In every row: " + "; ".join(f"{head[j]} {rows[0][j]}" for j in const) + ".*", ""] if const and keep != list(range(len(head))) else []
    out += ["| " + " | ".join(head[j] for j in keep) + " |", "|" + "|".join(align[j] for j in keep) + "|"]
    out += ["| " + " | ".join(r[j] for j in keep) + " |" for r in rows]
    return "\n".join(out)


def markdown_table(
    values: Mapping[str, Mapping],
    rows: Sequence[str],
    columns: Sequence,
    labels: Mapping[str, str] | None = None,
    higher_is_better: bool = True,
    bold: str = "pair",
    fmt: str = "{:.3f}",
    column_names: Mapping | None = None,
) -> str:
    """Markdown table of values[row][column] (NaN or missing: 'n/a'); bold the better of each method
    and its '+idgi' twin (``bold='pair'``), the best of each column ('column') or nothing ('none')."""
    if bold not in ("pair", "column", "none"):
        raise ValueError(f"unknown bold={bold!r}; accepted values: pair, column, none")
    labels = labels or EV.LABELS
    column_names = column_names or {}

    def get(r, c) -> float:
        v = values.get(r, {}).get(c, math.nan)
        return float(v) if v is not None else math.nan

    def better(a: float, b: float) -> bool:
        return a > b if higher_is_better else a < b

    head = "| method | " + " | ".join(str(column_names.get(c, c)) for c in columns) + " |\n|---|" + "---:|" * len(columns)
    lines = [head]
    for r in rows:
        cells = []
        for c in columns:
            v = get(r, c)
            if math.isnan(v):
                cells.append("n/a")
                continue
            s = fmt.format(v)
            if bold == "column":
                others = [get(o, c) for o in rows if not math.isnan(get(o, c))]
                win = all(not better(o, v) for o in others)
            elif bold == "pair":
                twin = r[: -len("+idgi")] if r.endswith("+idgi") else r + "+idgi"
                w = get(twin, c) if twin in rows else math.nan
                win = not math.isnan(w) and better(v, w)
            else:
                win = False
            cells.append(f"**{s}**" if win else s)
        lines.append(f"| {labels.get(r, r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_spread_table(rows: dict[str, torch.Tensor], header: str, fmt: str = "{:.2f}", best: str = "max") -> str:
    """Markdown table 'method | header': mean ± sample std over images per row, the best mean bold."""
    if best not in ("max", "min"):
        raise ValueError(f"unknown best={best!r}; accepted values: max, min")
    stats = {}
    for k, v in rows.items():
        v = torch.as_tensor(v, dtype=torch.float64).flatten()
        stats[k] = (float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0)
    pick = (max if best == "max" else min)(m for m, _ in stats.values())
    lines = [f"| method | {header} |", "|---|---:|"]
    for k, (m, s) in stats.items():
        cell = f"{fmt.format(m)} ± {fmt.format(s)}"
        lines.append(f"| {k} | {'**' + cell + '**' if m == pick else cell} |")
    return "\n".join(lines)


def per_image_markdown(rows: dict[str, torch.Tensor], names: list[str], fmt: str = "{:.1e}") -> str:
    """Markdown table: one row per method, one column per image, then the mean over the images."""
    for k, v in rows.items():
        if torch.as_tensor(v).numel() != len(names):
            raise ValueError(f"rows[{k!r}] has {torch.as_tensor(v).numel()} values for {len(names)} names")
    lines = ["| method | " + " | ".join(names) + " | mean |", "|---|" + "---:|" * (len(names) + 1)]
    for k, v in rows.items():
        v = torch.as_tensor(v, dtype=torch.float64).flatten()
        lines.append(f"| {k} | " + " | ".join(fmt.format(float(e)) for e in v) + f" | {fmt.format(float(v.mean()))} |")
    return "\n".join(lines)
