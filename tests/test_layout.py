"""The house: riemannkit's import graph (module-level and in-function imports alike) has no circle, and the
ground floor imports nothing above it."""
from __future__ import annotations

import ast
from pathlib import Path

import riemannkit

PKG = Path(riemannkit.__file__).parent
# Ground floor: quadrature rules (and their refinement to a tolerance), blur kernels, data and validation, the
# compression estimates, which every other module may use.
GROUND = {"validate", "blur", "data", "pool", "quadrature", "tolerance", "compression"}


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for f in PKG.glob("*.py"):
        if f.stem == "__init__":
            continue
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:  # from .paths import x
                    deps.add(node.module.split(".")[0])
                else:  # from . import paths as P
                    deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("riemannkit."):
                deps.add(node.module.split(".")[1])
        graph[f.stem] = deps - {f.stem}
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
    for m in GROUND:
        assert graph[m] <= GROUND, f"{m} imports {sorted(graph[m] - GROUND)}"


def test_every_path_is_in_the_one_registry():
    from riemannkit import paths as P

    assert set(P.PATH_NAMES) == set(P.CLOSED_FORM_PATHS) | set(P.ADAPTIVE_PATHS)
    assert {"ig", "blurig", "guidedig", "samp", "manifold"} <= set(P.PATH_NAMES)


def _public_functions():
    import importlib
    import inspect

    for f in sorted(PKG.glob("*.py")):
        if f.stem.startswith("_"):
            continue
        mod = importlib.import_module(f"riemannkit.{f.stem}")
        for name, obj in vars(mod).items():
            if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                yield f"{f.stem}.{name}", obj


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
