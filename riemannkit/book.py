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
from .models import resolve_device


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
    untracked = sorted((_git("ls-files", "--others", "--exclude-standard", "-z") or b"").decode().split("\0")[:-1])
    h = hashlib.sha256()
    for name in untracked:
        h.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    state["untracked_files"] = untracked
    state["untracked_sha256"] = h.hexdigest()
    state["note"] = ("run from a dirty tree: the code is git_commit plus the uncommitted changes whose sha256 is "
                     "git_diff_sha256 (git diff HEAD) and untracked_sha256 (the untracked files listed)")
    return state


def code_sha256(files: Sequence[str]) -> str:
    """sha256 over the committed contents (at HEAD) of ``files``, paths relative to the repository root (a file not yet committed: its working copy)."""
    import hashlib

    h = hashlib.sha256()
    for f in files:
        blob = _git("show", f"HEAD:{f}")
        if blob is None:
            # Not committed yet (a dirty tree, whose diff hashes code_state records): its working copy.
            root = Path((_git("rev-parse", "--show-toplevel") or b".").decode().strip())
            if not (root / f).is_file():
                raise FileNotFoundError(f"{f} is neither committed at HEAD nor in the working tree")
            blob = b"uncommitted\0" + (root / f).read_bytes()
        h.update(f.encode() + b"\0" + blob + b"\0")
    return h.hexdigest()


def device_name(device: torch.device | str) -> str:
    """The device as stored results name it: the GPU's name, or the CPU with its thread count."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def same_code(prov: dict, state: dict) -> bool:
    """Whether a stored run's provenance names the same code as ``state`` (code_sha256 and any dirty-tree hashes)."""
    return all(prov.get(k) == state.get(k) for k in ("code_sha256", "git_diff_sha256", "untracked_sha256"))


def write_json_atomic(file: str | Path, record: dict) -> Path:
    """Write ``record`` as indented JSON through a temporary file, so a killed run never leaves a half-written file."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(file)
    return file


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
        # the versions that shape stored numbers: pillow's codecs drive the JPEG study and PIC
        **{m: _version(m) for m in ("numpy", "scipy", "pillow", "captum")},
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "started_unix": round(time.time(), 1),  # save_json turns it into the record's wall_s
        **state,  # a dirty tree's diff and untracked-file hashes, with a note
    }
    return prov


class PhotoRun:
    """A reference run stored photo by photo in one JSON file (settings['images'] lists the photos, in order).

    It resumes a file made with the same schema, settings and code (``state['code_sha256']`` and, for a dirty tree,
    its diff hashes: see :func:`code_state`), rewrites the file atomically after every photo, so a killed run keeps
    what it finished, and lists each session's share (commit, command, device, versions, photos, wall time) under
    provenance.parts."""

    def __init__(self, file: str | Path, schema: int, settings: dict, state: dict, command: str, device, header: dict):
        self.file, self.schema, self.settings, self.header = Path(file), schema, settings, header
        prev = self._stored(state)
        self.resumed = prev is not None
        self.cells: dict = dict(prev["cells"]) if prev else {}
        self.parts: list = list(prev["provenance"]["parts"]) if prev else []
        part = provenance(command, device)
        part.pop("started_unix")
        self.part, self.t0, self.added = {**part, **state}, time.time(), 0

    def _stored(self, state: dict) -> dict | None:
        if not self.file.is_file():
            return None
        try:
            rec = json.loads(self.file.read_text())
        except json.JSONDecodeError:
            return None
        ok = same_code(rec.get("provenance", {}), state)
        return rec if ok and rec.get("schema") == self.schema and rec.get("settings") == self.settings else None

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
        return write_json_atomic(self.file, self.record())

    def add(self, name: str, cell: dict) -> None:
        """Store one photo's cell and rewrite the file."""
        self.cells[name] = cell
        self.added += 1
        self.save()

    def finish(self) -> Path:
        """Write the file unless this session resumed a stored run and added nothing (it stays as it was)."""
        if self.added or not self.resumed:
            self.save()
        return self.file


def record_provenance_line(rec: dict, file: str) -> str:
    """One line naming where a stored chapter record came from: file, commit (dirty tree), device, torch, date, wall time, command."""
    pv = rec.get("provenance", {})
    return (f"`{file}`: commit {pv.get('git_commit')}{' (dirty tree)' if pv.get('dirty') else ''}, {pv.get('device')}, "
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
    """The committed full-profile records of ``chapter`` (``<chapter>_full_*.json`` in ``folder``), by name."""
    return [json.loads(f.read_text()) | {"file": f.name} for f in sorted(Path(folder).glob(f"{chapter}_full_*.json"))]


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
            "`python benchmarks/full_profile.py` makes and stores it.*"
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


def check_parameters(namespace: dict) -> dict:
    """Check and coerce every annotated parameter in ``namespace`` (a notebook's globals()); returns them by name."""
    hints = namespace.get("__annotations__", {})
    params = {}
    for name, hint in hints.items():
        if name not in namespace:
            continue
        params[name] = namespace[name] = _coerce(name, namespace[name], hint)
    return params


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
    """Check the parameters, apply ``profile`` where the chapter has profiles, seed torch and resolve the device."""
    wall_start = time.time()
    params = check_parameters(namespace)
    full_settings = {}
    if "profile" in namespace and chapter in FULL_PROFILE:
        full_settings = apply_profile(chapter, namespace["profile"], namespace)  # profile="full" sets these
        if full_settings:
            params.update(check_parameters({**namespace, "__annotations__": {
                k: v for k, v in namespace.get("__annotations__", {}).items() if k in full_settings}}))
            print("profile full:", full_settings)
    torch.manual_seed(int(namespace.get("seed", 0)))
    dev = resolve_device(namespace.get("device", "auto"))
    prov = provenance(command=rerun_command(chapter, params), device=dev)
    return Chapter(chapter, params, dev, prov, full_settings, wall_start)


# ------------------------------------------------------------------------------------------ tables
# The one table formatter (values[row][column]) and two per-image layouts of {method: values (B,)}.
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
