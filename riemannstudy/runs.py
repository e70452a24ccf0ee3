"""A reference script's run: its shared options, the folder it writes to, and the write-once, photo-by-photo unit
(:class:`PhotoRun`) that resumes only the same settings, code and numerics and can span sessions.

Study layer: computes no attribution.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from . import provenance as PV
from . import units as U
from .provenance import BUILD_DIR, REPO_ROOT, RESULTS_DIR


# ------------------------------------------------------------------------------- stored reference units
# Where the reference scripts write: evidence goes to results/reference only when asked by name (--out-dir);
# by default to _build/reference, and a dry run (never evidence) to _build/reference_dry_run, never under results/.


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


def reference_out_dir(out_dir: str | Path | None, dry_run: bool, allow_dirty: bool = False) -> Path:
    """The folder a reference script writes to: ``out_dir`` as given, else _build/reference (_build/reference_dry_run
    for a dry run).  A dry run under the repository's results/ is refused (its units are not evidence); so is a run
    for evidence (neither a dry run nor ``allow_dirty``) outside the repository, whose stored command would name a
    folder of one machine instead of rerunning as is in a clone."""
    if out_dir is None:
        return BUILD_DIR / ("reference_dry_run" if dry_run else "reference")
    folder = Path(out_dir).resolve()
    if dry_run and (folder == RESULTS_DIR or RESULTS_DIR in folder.parents):
        raise SystemExit(f"--out-dir {out_dir} is inside results/: a dry run's units are not evidence and never go "
                         f"there; leave --out-dir out (default {BUILD_DIR / 'reference_dry_run'}) or pass another folder")
    if not (dry_run or allow_dirty) and folder != REPO_ROOT and REPO_ROOT not in folder.parents:
        raise SystemExit(f"--out-dir {out_dir} is outside the repository: a stored unit's command must rerun as is in "
                         f"any clone; pass a folder inside it (_build/... while it runs, results/reference to store "
                         f"evidence), or --dry-run / --allow-dirty for a unit that is not evidence")
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
        part = PV.provenance(command, device)
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

