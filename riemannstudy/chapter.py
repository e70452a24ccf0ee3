"""A chapter's set-up: its parameters checked before any work, its profile, device and provenance, the tables it
shows, and its committed full-profile runs.

Every chapter calls :func:`setup` right after its parameters cell.  A chapter's parameters cell declares each
parameter with a type annotation (``steps: list[int] = [16, 32]``); papermill's injected cell then rebinds
values without annotations, so :func:`check_parameters` can check every value against the declared type before
any heavy work, and parse the text papermill's ``-p`` gives for a list (``-p steps "[16, 32]"``).  The
:class:`Chapter` it returns shows the chapter's tables (``ch.show(md)``) and keeps them (``ch.shown``) for the
results JSON.  Nothing here computes an attribution: the library modules do, and the chapters call them.
"""
from __future__ import annotations

import ast
import json
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch

from riemannkit import evaluation as EV
from riemannkit.models import resolve_device

from . import provenance as PV
from .provenance import RESULTS_DIR, record_provenance_line, refuse_overwrite, results_path


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
    from riemannkit.paths import PATH_NAMES

    registries = {"paths": PATH_NAMES, "methods": EV.METHOD_NAMES, "metrics": EV.METRICS}
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
    prov = PV.provenance(command=rerun_command(chapter, params), device=dev)
    return Chapter(chapter, params, dev, prov, full_settings, wall_start)

