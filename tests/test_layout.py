"""The house: the import graph of riemannkit (the library) and riemannstudy (the book's study layer beside it),
module-level and in-function imports alike, has no circle; the ground floor imports nothing above it; the library
never imports the study layer."""
from __future__ import annotations

import ast
from pathlib import Path

import riemannkit
import riemannstudy

PACKAGES = {"riemannkit": Path(riemannkit.__file__).parent, "riemannstudy": Path(riemannstudy.__file__).parent}
PKG = PACKAGES["riemannkit"]
# Ground floor: quadrature rules (and their refinement to a tolerance), blur kernels, data and validation, the
# compression estimates, which every other module may use.
GROUND = {"validate", "blur", "data", "pool", "quadrature", "tolerance", "compression"}


def _imports() -> dict[str, set[str]]:
    """{'package.module': {'package.module', ...}} over both packages (package-level imports count as the package)."""
    graph: dict[str, set[str]] = {}
    for pkg, folder in PACKAGES.items():
        for f in folder.glob("*.py"):
            if f.stem == "__init__":
                continue
            deps: set[str] = set()
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 1:
                    if node.module:  # from .paths import x
                        deps.add(f"{pkg}.{node.module.split('.')[0]}")
                    else:  # from . import paths as P
                        deps.update(f"{pkg}.{a.name}" for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    head, _, rest = node.module.partition(".")
                    deps.update({f"{head}.{rest.split('.')[0]}"} if rest else {f"{head}.{a.name}" for a in node.names})
                elif isinstance(node, ast.Import):
                    deps.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
            graph[f"{pkg}.{f.stem}"] = deps - {f"{pkg}.{f.stem}"}
    return graph


def test_no_import_circle():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            assert state.get(d) != 1, "import circle: " + " -> ".join([*trail, m, d])
            if d not in state:
                visit(d, [*trail, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_ground_floor_imports_nothing_above_it():
    graph = _imports()
    ground = {f"riemannkit.{m}" for m in GROUND}
    for m in ground:
        assert graph[m] <= ground, f"{m} imports {sorted(graph[m] - ground)}"


def test_the_library_never_imports_the_study_layer():
    graph = _imports()
    found = {m: sorted(d for d in deps if d.startswith("riemannstudy")) for m, deps in graph.items() if m.startswith("riemannkit.")}
    assert not any(found.values()), {m: d for m, d in found.items() if d}
    assert graph["riemannkit.integrate"] and "riemannstudy.units" in graph["riemannstudy.runs"]  # the graph is read


def test_every_path_is_in_the_one_registry():
    from riemannkit import paths as P

    assert set(P.PATH_NAMES) == set(P.CLOSED_FORM_PATHS) | set(P.ADAPTIVE_PATHS)
    assert {"ig", "blurig", "guidedig", "samp", "manifold"} <= set(P.PATH_NAMES)


def _public_functions():
    import importlib
    import inspect

    for pkg, folder in PACKAGES.items():
        for f in sorted(folder.glob("*.py")):
            if f.stem.startswith("_"):
                continue
            mod = importlib.import_module(f"{pkg}.{f.stem}")
            for name, obj in vars(mod).items():
                if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                    yield f"{pkg}.{f.stem}.{name}", obj


def test_no_tex_in_public_signatures():
    """The API page renders signatures and docstrings without MathJax: TeX in a default value or a docstring shows
    as raw dollars and backslashes (CI's browser test failed on plot.nodes_over_curve's old ylabel default)."""
    import inspect
    import re

    tex = re.compile(r"\$[^$]*\\[A-Za-z|][^$]*\$")
    found = []
    for qual, fn in _public_functions():
        for p in inspect.signature(fn).parameters.values():
            if isinstance(p.default, str) and tex.search(p.default):
                found.append(f"{qual}({p.name}={p.default!r})")
        if tex.search(inspect.getdoc(fn) or ""):
            found.append(f"{qual} docstring")
    assert not found, "TeX the API page cannot typeset: " + ", ".join(found)


def test_the_study_layers_ground_imports_no_other_study_module():
    graph = _imports()
    for m in ("riemannstudy.units", "riemannstudy.stats", "riemannstudy.tables"):
        above = sorted(d for d in graph[m] if d.startswith("riemannstudy."))
        assert not above, f"{m} imports {above}"
