"""Stored reference units (``results/reference/*.json``): their names, numerics variants, checks, locks and writes.

A unit is the JSON record one reference script (benchmarks/reference_*.py) writes for one (kind, model, path or step
count, numerics variant).  Units are evidence that took hours of CPU, so everything here refuses instead of guessing:

* **names** — :func:`unit_file_name` is the one file name of a record: the 'cpu' variant keeps the plain name
  (``idgi_study_efficientnet_lite0_n8.json``), any other variant appends ``.<variant>`` before ``.json``
  (``riemannopt_table1_efficientnet_lite0_ig.cuda_tf32.json``); loaders check that a file's name is its record's.
* **variants** — :func:`unit_variant`: 'cpu' (CPU float32, any thread count), 'cpu_fp64', 'cuda' (CUDA strict fp32,
  TF32 off) or 'cuda_tf32', read from ``provenance['numerics']`` (:func:`numerics`); a unit older than that field is
  'cpu' on a CPU and 'cuda_tf32' on a GPU (PyTorch's default cuDNN TF32 was on in the 2026-12-04 GPU run).
* **checks** — :func:`check_unit` and :func:`check_cell`: the keys a kind needs, numbers that are numbers and finite
  (SIC/AIC may be NaN: PIC leaves a photo out), photos that belong to the unit; errors name the file and the key.
* **writes** — :func:`write_json_atomic` (a temporary file unique to the process, then ``os.replace``), and
  :func:`lock_unit` (an exclusive ``fcntl.flock`` on ``<unit>.lock``): a second run on the same unit is refused
  with the holder's pid instead of interleaving its saves.
* **resuming** — :func:`resumable`: a stored unit is resumed only when its model, schema, settings, code digest and
  variant are this run's; otherwise the run stops and names the difference (the file is kept), unless
  ``overwrite``.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

VARIANTS = ("cpu", "cpu_fp64", "cuda", "cuda_tf32")
# The kinds of unit, by the benchmark that writes them ('reference_riemannopt' writes two kinds).
KINDS = ("riemannopt_table1", "riemannopt_points", "riemannopt_insertion", "idgi_study", "samp_pool", "tolerance",
         "numerical_floor")
BENCHMARKS = {"reference_riemannopt": ("riemannopt_table1", "riemannopt_points"),
              "reference_insertion": ("riemannopt_insertion",), "reference_idgi": ("idgi_study",),
              "reference_samp": ("samp_pool",), "reference_tolerance": ("tolerance",),
              "numerical_floor": ("numerical_floor",)}
# The step count a kind's plain name stands for; other step counts are named ``_n<steps>``.
DEFAULT_STEPS = {"idgi_study": 128, "samp_pool": 16}
PATHS = ("ig", "blurig", "guidedig")


class UnitError(ValueError):
    """A stored unit that cannot be used as it is: the message names the file and the key."""


class UnitLocked(RuntimeError):
    """Another run holds the unit's lock."""


# ------------------------------------------------------------------------------------------ numerics
def numerics(device, dtype: str = "float32") -> dict:
    """The global settings that change float results on ``device``: device type, dtype, TF32 for convolutions
    (cuDNN; False on a CPU) and matmuls, cuDNN benchmark mode, deterministic algorithms, CPU threads."""
    import torch

    dev = torch.device(device)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype={dtype!r}; accepted values: float32, float64")
    cuda = dev.type == "cuda"
    return {"device_type": dev.type, "dtype": dtype,
            "tf32_conv": bool(torch.backends.cudnn.allow_tf32) if cuda else False,
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
            "threads": int(torch.get_num_threads())}


def set_numerics(device, allow_tf32: bool = False) -> dict:
    """Set the numerics a reference run uses on ``device`` and return them (:func:`numerics`): on CUDA strict fp32
    (TF32 off for convolutions and matmuls) unless ``allow_tf32``; nothing changes on a CPU."""
    import torch

    if not isinstance(allow_tf32, bool):
        raise ValueError(f"allow_tf32={allow_tf32!r} must be True or False")
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.allow_tf32 = allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    return numerics(device)


def numerics_variant(num: dict) -> str:
    """The variant (:data:`VARIANTS`) of a :func:`numerics` record."""
    if not isinstance(num, dict):
        raise UnitError(f"numerics={num!r} must be a dict (riemannstudy.units.numerics)")
    kind, dtype = num.get("device_type"), num.get("dtype", "float32")
    if kind == "cpu" and dtype in ("float32", "float64"):
        return "cpu" if dtype == "float32" else "cpu_fp64"
    if kind == "cuda" and dtype == "float32":
        return "cuda_tf32" if num.get("tf32_conv") or num.get("tf32_matmul") else "cuda"
    raise UnitError(f"numerics {num!r} name no known variant; accepted: CPU float32/float64, CUDA float32 "
                    f"with or without TF32 ({', '.join(VARIANTS)})")


def _part_variant(prov: dict) -> str:
    if prov.get("numerics") is not None:
        return numerics_variant(prov["numerics"])
    device = str(prov.get("device") or "")
    if device.startswith("CPU"):
        return "cpu"
    if prov.get("cuda") or device.startswith(("NVIDIA", "Tesla", "Quadro")):
        return "cuda_tf32"  # before provenance['numerics'], GPU runs kept PyTorch's default cuDNN TF32 (on)
    raise UnitError(f"provenance names no numerics and device={device!r}, which is neither a CPU nor a CUDA GPU")


def unit_variant(record: dict) -> str:
    """The numerics variant of a stored unit: 'cpu', 'cpu_fp64', 'cuda' or 'cuda_tf32' (module docstring); a unit
    whose sessions (provenance.parts) ran under different variants is an error."""
    prov = record.get("provenance") if isinstance(record, dict) else None
    if not isinstance(prov, dict):
        raise UnitError(f"{_where(record)}: provenance is missing or not a dict")
    parts = prov.get("parts") if isinstance(prov.get("parts"), list) and prov.get("parts") else []
    found = {_part_variant(p) for p in (prov, *parts) if isinstance(p, dict)}
    if len(found) != 1:
        raise UnitError(f"{_where(record)}: provenance.parts ran under different numerics variants {sorted(found)}; "
                        "a unit must come from one variant")
    return found.pop()


# --------------------------------------------------------------------------------------------- names
def unit_kind(record: dict) -> str:
    """The kind (:data:`KINDS`) of a stored unit, from its 'benchmark' (and 'points_only')."""
    bench = record.get("benchmark") if isinstance(record, dict) else None
    if bench not in BENCHMARKS:
        raise UnitError(f"{_where(record)}: benchmark={bench!r} is not a reference unit's; accepted: {', '.join(BENCHMARKS)}")
    if bench == "reference_riemannopt":
        settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
        return "riemannopt_points" if settings.get("points_only") else "riemannopt_table1"
    return BENCHMARKS[bench][0]


def unit_stem(kind: str, model: str, path: str | None = None, steps: int | None = None) -> str:
    """The file name of a 'cpu' unit without '.json': ``<kind>_<model>[_<path>][_n<steps>]``."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; accepted values: {', '.join(KINDS)}")
    if not isinstance(model, str) or not model or not all(c.isalnum() or c == "_" for c in model):
        raise ValueError(f"model={model!r} must be a name of letters, digits and '_'")
    if kind in ("riemannopt_table1", "riemannopt_points"):
        if path not in PATHS:
            raise ValueError(f"path={path!r}; accepted values: {', '.join(PATHS)}")
        return f"{kind}_{model}_{path}"
    if kind == "numerical_floor":  # IG's record keeps the plain name, as the floor chapter reads it
        if path not in PATHS:
            raise ValueError(f"path={path!r}; accepted values: {', '.join(PATHS)}")
        return f"{kind}_{model}" + ("" if path == "ig" else f"_{path}")
    if kind in DEFAULT_STEPS:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps={steps!r} must be a positive integer")
        return f"{kind}_{model}" + ("" if steps == DEFAULT_STEPS[kind] else f"_n{steps}")
    return f"{kind}_{model}"


def variant_file_name(stem: str, variant: str) -> str:
    """``<stem>.json`` for the 'cpu' variant, ``<stem>.<variant>.json`` for the others."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}; accepted values: {', '.join(VARIANTS)}")
    return f"{stem}.json" if variant == "cpu" else f"{stem}.{variant}.json"


def unit_identity(record: dict) -> tuple:
    """(kind, model, path or step count, variant): what no two stored units may share."""
    kind = unit_kind(record)
    model = record.get("model")
    if not isinstance(model, str):
        raise UnitError(f"{_where(record)}: model={model!r} must be a model name")
    settings = record.get("settings")
    if not isinstance(settings, dict):
        raise UnitError(f"{_where(record)}: settings is missing or not a dict")
    if settings.get("model", model) != model:
        raise UnitError(f"{_where(record)}: model={model!r} but settings.model={settings.get('model')!r}")
    if kind in ("riemannopt_table1", "riemannopt_points", "numerical_floor"):
        what = record.get("path")
        if what not in PATHS:
            raise UnitError(f"{_where(record)}: path={what!r}; accepted values: {', '.join(PATHS)}")
    elif kind in DEFAULT_STEPS:
        what = settings.get("steps")
        if isinstance(what, bool) or not isinstance(what, int) or what < 1:
            raise UnitError(f"{_where(record)}: settings.steps={what!r} must be a positive integer")
    else:
        what = None
    return kind, model, what, unit_variant(record)


def unit_file_name(record: dict) -> str:
    """The one file name of a stored unit (module docstring): its kind, model, path or steps, and variant."""
    kind, model, what, variant = unit_identity(record)
    path = what if kind in ("riemannopt_table1", "riemannopt_points", "numerical_floor") else None
    return variant_file_name(unit_stem(kind, model, path, what if kind in DEFAULT_STEPS else None), variant)


# ------------------------------------------------------------------------------------------- checks
def _where(record) -> str:
    return str(record.get("file", "unit")) if isinstance(record, dict) else "unit"


def _number(value, where: str, allow_nan: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnitError(f"{where}={value!r} must be a number")
    if not math.isfinite(value) and not (allow_nan and math.isnan(value)):
        raise UnitError(f"{where}={value!r} must be finite")
    return float(value)


def _numbers(values, where: str, length: int | None = None, allow_nan: bool = False) -> None:
    if not isinstance(values, list):
        raise UnitError(f"{where} must be a list of numbers, got {type(values).__name__}")
    if length is not None and len(values) != length:
        raise UnitError(f"{where} has {len(values)} values, expected {length}")
    for i, v in enumerate(values):
        if isinstance(v, list):
            _numbers(v, f"{where}[{i}]", allow_nan=allow_nan)
        else:
            _number(v, f"{where}[{i}]", allow_nan)


def _dict(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise UnitError(f"{where} is missing or not a dict (got {type(value).__name__})")
    return value


def _names(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise UnitError(f"{where} must be a list of photo names, got {value!r}"[:300])
    return value


def _int(value, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UnitError(f"{where}={value!r} must be an integer >= {minimum}")
    return value


def check_cell(record: dict, name: str, cell) -> None:
    """Check one photo's cell of a photo-by-photo unit (idgi_study, samp_pool, riemannopt_insertion, tolerance,
    numerical_floor) against the
    unit's header: the photo is one of its planned photos, the keys are there, every number is a finite number
    (SIC/AIC may be NaN: PIC leaves the photo out).  Raises UnitError naming the file, photo and key."""
    kind = unit_kind(record)
    at = f"{_where(record)}: cells[{name!r}]"
    planned = _names(_dict(record.get("settings"), f"{_where(record)}: settings").get("images"),
                     f"{_where(record)}: settings.images")
    if name not in planned:
        raise UnitError(f"{at}: photo {name!r} is not one of the unit's photos (settings.images)")
    cell = _dict(cell, at)
    if kind in ("idgi_study", "samp_pool"):
        methods, metrics = record.get("methods"), record.get("metrics")
        if not isinstance(methods, list) or not isinstance(metrics, list):
            raise UnitError(f"{_where(record)}: methods and metrics must be lists")
        _int(cell.get("target"), f"{at}.target")
        _number(cell.get("p"), f"{at}.p")
        scores = _dict(cell.get("scores"), f"{at}.scores")
        expected = {m: metrics for m in methods}
        if kind == "idgi_study":
            expected["random"] = [k for k in metrics if k != "completeness"]
            _number(cell.get("p_jpeg"), f"{at}.p_jpeg")
        for m, keys in expected.items():
            row = _dict(scores.get(m), f"{at}.scores[{m!r}]")
            for k in keys:
                _number(row.get(k), f"{at}.scores[{m!r}][{k!r}]", allow_nan=k.startswith(("sic_", "aic_")))
        if kind == "idgi_study":
            jpeg = _dict(cell.get("jpeg"), f"{at}.jpeg")
            for m in methods:
                row = _dict(jpeg.get(m), f"{at}.jpeg[{m!r}]")
                for k in ("mse", "neg_log_mse"):
                    _number(row.get(k), f"{at}.jpeg[{m!r}][{k!r}]")
            pic = _dict(cell.get("pic"), f"{at}.pic")
            for m in expected:
                for k in (k for k in metrics if k.startswith(("sic_", "aic_"))):
                    pts = _dict(_dict(pic.get(m), f"{at}.pic[{m!r}]").get(k), f"{at}.pic[{m!r}][{k!r}]")
                    for key in ("info", "score"):
                        _numbers(pts.get(key), f"{at}.pic[{m!r}][{k!r}][{key!r}]", allow_nan=True)
    elif kind == "riemannopt_insertion":
        settings = record["settings"]
        baseline = _dict(record.get("baseline"), f"{_where(record)}: baseline")
        for path in settings.get("paths", []):
            per_n = _dict(cell.get(path), f"{at}[{path!r}]")
            for n, recipes in per_n.items():
                for recipe in (baseline.get(path), "riemannopt"):
                    v = _dict(_dict(recipes, f"{at}[{path!r}][{n!r}]").get(recipe), f"{at}[{path!r}][{n!r}][{recipe!r}]")
                    for k in ("insertion_prob", "insertion_ratio", "rel_error"):
                        _number(v.get(k), f"{at}[{path!r}][{n!r}][{recipe!r}][{k!r}]")
    elif kind == "numerical_floor":
        _int(cell.get("target"), f"{at}.target")
        for v, per in _dict(cell.get("variants"), f"{at}.variants").items():
            _dict(per, f"{at}.variants[{v!r}]")
        _dict(cell.get("spread"), f"{at}.spread")
    elif kind == "tolerance":
        settings = record["settings"]
        _int(cell.get("target"), f"{at}.target")
        paths = _dict(cell.get("paths"), f"{at}.paths")
        for path in settings.get("paths", []):
            row, here = _dict(paths.get(path), f"{at}.paths[{path!r}]"), f"{at}.paths[{path!r}]"
            for k in ("f_input", "f_baseline"):
                _number(row.get(k), f"{here}.{k}")
            parts = {"adaptive": [str(t) for t in settings.get("tols", [])],
                     "left": [str(2 ** j) for j in range(2, int(settings.get("left_max", 4)).bit_length())],
                     "riemannopt": [str(n) for n in settings.get("ro_steps", [])]}
            for part, keys in parts.items():
                block = _dict(row.get(part), f"{here}.{part}")
                for key in keys:
                    v = _dict(block.get(key), f"{here}.{part}[{key!r}]")
                    for k in ("map_error", "completeness") + (("gradients", "estimate") if part == "adaptive" else ()):
                        _number(v.get(k), f"{here}.{part}[{key!r}][{k!r}]")
    else:
        raise UnitError(f"{_where(record)}: a {kind} unit has no photo cells")


def is_partial(record: dict) -> bool:
    """Whether a stored unit is a run still under way (``complete`` false); a unit without the key is complete."""
    return not record.get("complete", True)


def photos_state(record: dict) -> str:
    """'complete', or 'partial: e of p photos stored so far' for a unit still under way (the chapters' source lines)."""
    if not is_partial(record):
        return "complete"
    images = record["images"]
    return f"partial: {len(images['evaluated'])} of {len(images.get('planned', images['evaluated']))} photos stored so far"


def check_unit(record, file: str | Path | None = None) -> dict:
    """Check a stored unit as a loader reads it: its kind, identity, file name (when ``file`` is given), and every
    number a judgement reads.  Returns the record; raises UnitError naming the file and the key."""
    where = str(file) if file is not None else _where(record)
    if not isinstance(record, dict):
        raise UnitError(f"{where}: a unit is a JSON object, got {type(record).__name__}")
    checked, record = record, {**record, "file": where}  # messages name the whole path
    kind = unit_kind(record)
    unit_identity(record)
    if file is not None and Path(file).name != unit_file_name(record):
        raise UnitError(f"{where}: the file name disagrees with its record, which is a {kind} unit of "
                        f"{record.get('model')} named {unit_file_name(record)!r} (its model, path or steps and "
                        "numerics variant); rename it, or check it is the unit you meant")
    _int(record.get("schema"), f"{where}: schema", 1)
    if not isinstance(record.get("complete", True), bool):  # is_partial reads a missing key as complete
        raise UnitError(f"{where}: complete={record.get('complete')!r} must be true or false")
    images = _dict(record.get("images"), f"{where}: images")
    settings = record["settings"]
    if kind in ("riemannopt_table1", "riemannopt_points"):
        steps = settings.get("steps")
        if not isinstance(steps, list) or not steps:
            raise UnitError(f"{where}: settings.steps={steps!r} must be a non-empty list of positive integers")
        for i, n in enumerate(steps):
            _int(n, f"{where}: settings.steps[{i}]", 1)
        evaluated = _names(images.get("evaluated"), f"{where}: images.evaluated")
        cal = _dict(record.get("calibration"), f"{where}: calibration")
        for k in ("grid", "mean_gprime", "released_grid", "released_profile", "per_image_gprime"):
            _numbers(cal.get(k), f"{where}: calibration.{k}")
        for row, per_n in _dict(record.get("points", {}), f"{where}: points").items():
            for n, pts in _dict(per_n, f"{where}: points[{row!r}]").items():
                _numbers(pts, f"{where}: points[{row!r}][{n!r}]")
        for row, per_n in _dict(record.get("results", {}), f"{where}: results").items():
            for n, cell in _dict(per_n, f"{where}: results[{row!r}]").items():
                if not n.isdigit() or int(n) not in steps:
                    raise UnitError(f"{where}: results[{row!r}] has n={n!r}, not one of settings.steps {steps}")
                cell = _dict(cell, f"{where}: results[{row!r}][{n!r}]")
                _numbers(cell.get("rel_error"), f"{where}: results[{row!r}][{n!r}].rel_error", len(evaluated))
    else:
        planned = _names(settings.get("images"), f"{where}: settings.images")
        evaluated = _names(images.get("evaluated"), f"{where}: images.evaluated")
        cells = _dict(record.get("cells"), f"{where}: cells")
        foreign = [n for n in cells if n not in planned]
        if foreign:
            raise UnitError(f"{where}: cells[{foreign[0]!r}]: photo {foreign[0]!r} is not one of the unit's photos "
                            "(settings.images)")
        if sorted(evaluated) != sorted(cells):
            raise UnitError(f"{where}: images.evaluated lists {len(evaluated)} photos but cells holds {len(cells)} "
                            f"(differences: {sorted(set(evaluated) ^ set(cells))[:5]})")
        if evaluated != [n for n in planned if n in cells]:
            raise UnitError(f"{where}: images.evaluated is not the stored photos in settings.images' order")
        if record.get("complete") and len(evaluated) != len(planned):
            raise UnitError(f"{where}: complete is true but {len(planned) - len(evaluated)} planned photos have no cell")
        for name in evaluated:
            check_cell(record, name, cells[name])
    return {**checked, "file": Path(file).name} if file is not None else checked


def read_unit(file: str | Path) -> dict:
    """A stored unit read from ``file`` and checked (:func:`check_unit`), with its file name under 'file'."""
    file = Path(file)
    try:
        record = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UnitError(f"{file}: not a readable JSON unit ({type(err).__name__}: {err}); it may be truncated or "
                        "not a unit at all") from None
    return check_unit(record, file)


# ------------------------------------------------------------------------------------------ resuming
CODE_KEYS = ("code_sha256", "git_diff_sha256", "untracked_sha256")


def differences(stored: dict, current: dict) -> list[str]:
    """What differs between a stored unit and the unit a run would write (``current``: its header with 'schema',
    'settings', 'model', the run's code state under 'state' and its 'variant')."""
    out = []
    for key in ("benchmark", "model", "schema"):
        if stored.get(key) != current.get(key):
            out.append(f"{key}: stored {stored.get(key)!r}, this run {current.get(key)!r}")
    s, c = stored.get("settings") or {}, current.get("settings") or {}
    for key in sorted(set(s) | set(c), key=str):
        if s.get(key) != c.get(key):
            a, b = repr(s.get(key)), repr(c.get(key))
            out.append(f"settings.{key}: stored {a[:80]}, this run {b[:80]}")
    prov = stored.get("provenance") or {}
    for key in CODE_KEYS:
        if prov.get(key) != current["state"].get(key):
            out.append(f"code ({key}): stored {str(prov.get(key))[:12]}, this run {str(current['state'].get(key))[:12]}"
                       + (f" (the stored unit's commit is {str(prov.get('git_commit'))[:10]})" if key == "code_sha256" else ""))
    try:
        variant = unit_variant(stored)
    except UnitError as err:
        variant = f"unknown ({err})"
    if variant != current["variant"]:
        out.append(f"numerics variant: stored {variant!r}, this run {current['variant']!r}")
    return out


def resumable(file: str | Path, current: dict, overwrite: bool = False) -> dict | None:
    """The unit stored in ``file`` that this run continues (complete or partial), or None when there is none or
    ``overwrite`` discards it.  A file that does not parse, or a unit made with another model, schema, settings,
    code or variant, stops the run with an error naming the file and the differences (the file is kept)."""
    file = Path(file)
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite={overwrite!r} must be True or False")
    if not file.exists() or overwrite:
        return None
    hint = ("pass --overwrite to replace it, or --out-dir another folder; to finish a partial unit begun at another "
            "commit, run from a worktree at that commit (book/reproducing.md)")
    try:
        stored = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UnitError(f"{file}: the stored unit does not parse ({type(err).__name__}: {err}); it may be truncated. "
                        f"It is kept as it is: {hint}") from None
    if not isinstance(stored, dict):
        raise UnitError(f"{file}: the stored file is not a unit (a JSON {type(stored).__name__}); it is kept: {hint}")
    diff = differences(stored, current)
    if diff:
        state = "partial" if is_partial(stored) else "complete"
        raise UnitError(f"{file}: a {state} unit made with other settings, code or numerics is stored there and is "
                        f"kept; it differs in: " + "; ".join(diff) + f". {hint}")
    try:
        check_unit(stored, file)
    except UnitError as err:
        raise UnitError(f"cannot resume: {err}. The file is kept: {hint}") from None
    return stored


# ------------------------------------------------------------------------------------- atomic writes
def write_json_atomic(file: str | Path, record: dict, **dumps) -> Path:
    """Write ``record`` as indented JSON through a temporary file unique to this process in the same folder, synced
    and renamed over ``file``: a reader sees the old file or the new one, never a torn one, and two processes never
    share a temporary name."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1, **dumps)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, file)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return file


class UnitLock:
    """An exclusive lock on one unit file, held through ``<file>.lock`` (:func:`lock_unit`); :meth:`release` ends it
    (so does the holder's death: the kernel drops a flock with its last descriptor)."""

    def __init__(self, file: Path, fd: int, lock_file: Path):
        self.file, self.fd, self.lock_file = file, fd, lock_file

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.lock_file)  # while still holding it: a waiting run re-checks the inode (lock_unit)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "UnitLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # a run that raised without releasing: drop the lock with the object
        try:
            self.release()
        except Exception:
            pass


def lock_unit(file: str | Path) -> UnitLock:
    """Take the exclusive lock of the unit ``file`` (``<file>.lock``, fcntl.flock), or raise UnitLocked naming the
    file and the pid of the run that holds it.  Stale temporary files of the unit (a killed run's) are removed."""
    import fcntl

    file = Path(file)
    lock_file = file.with_name(file.name + ".lock")
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            os.close(fd)
            raise UnitLocked(f"another run holds this unit ({file}, pid {holder[0] if holder else '?'}): wait for it "
                             f"to finish, or write elsewhere (--out-dir)") from None
        try:
            same = os.stat(lock_file).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder released (and removed) the file between our open and flock: try again
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    for stale in file.parent.glob(f".{file.name}.*.tmp"):
        try:
            stale.unlink()
        except FileNotFoundError:
            pass
    return UnitLock(file, fd, lock_file)


def commit_words(pv: dict, short: int = 10) -> str:
    """The code a record's provenance names, in words: its commit (dirty tree), the commit a device run's hashes proved
    (``code_commit``), or, where tools/mark_lost_commits.py found the named commit gone from this history, that."""
    base = f"commit {str(pv.get('git_commit', pv.get('git_commit_lost', '?')))[:short]}{' (dirty tree)' if pv.get('dirty') else ''}"
    if pv.get("code_commit"):
        return f"code of commit {str(pv['code_commit'])[:short]} (run as {str(pv.get('git_commit'))[:short]} + diff, hashes checked)"
    if pv.get("code_commit_lost"):
        return (f"{base} + uncommitted changes; the commit that held them, {str(pv['code_commit_lost'])[:short]}, is not in this "
                "history (its submission did not land), so this code cannot be checked out")
    if pv.get("git_commit_lost"):
        return (f"commit {str(pv['git_commit_lost'])[:short]}, which is not in this history (its submission did not land), "
                "so this code cannot be checked out")
    return base
