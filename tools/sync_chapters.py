"""Writes notebooks/<name>.ipynb from each chapter's text source chapters/<name>.md (MyST markdown, jupytext).

The .md file is the one people edit and review; the .ipynb is what papermill, nbval, the book and Colab run.
    python tools/sync_chapters.py            # regenerate every notebook from its source
    python tools/sync_chapters.py --check    # fail if a committed notebook differs from its source
The check compares each cell's type, source and tags (not cell ids or outputs) and requires the committed
notebooks to carry no outputs. JupyterLab keeps the pair in sync itself through jupytext.toml.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCES, NOTEBOOKS = ROOT / "chapters", ROOT / "notebooks"
METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def notebook_from_source(md: Path) -> nbformat.NotebookNode:
    """The notebook a chapter source gives: its cells, without outputs, with ids numbered in order."""
    nb = jupytext.read(md, fmt="md:myst")
    nb.metadata = nbformat.from_dict(METADATA)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{md.stem}-{i:02d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.validate(nb)
    return nb


def cell_summary(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    """What the check compares: (type, source, tags) of every cell."""
    return [(c.cell_type, c.source.rstrip("\n"), tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


def differences(md: Path, ipynb: Path) -> list[str]:
    """Why ``ipynb`` is not what ``md`` gives (empty when they agree)."""
    if not ipynb.is_file():
        return [f"{ipynb.relative_to(ROOT)} is missing"]
    want, have = notebook_from_source(md), nbformat.read(ipynb, as_version=4)
    problems = []
    a, b = cell_summary(want), cell_summary(have)
    if len(a) != len(b):
        problems.append(f"{len(b)} cells, its source gives {len(a)}")
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            what = "type" if x[0] != y[0] else "source" if x[1] != y[1] else "tags"
            problems.append(f"cell {i} differs in {what}: {y[1][:60]!r}")
            break
    if any(c.get("outputs") for c in have.cells if c.cell_type == "code"):
        problems.append("it carries outputs (commit notebooks without outputs)")
    return [f"{ipynb.relative_to(ROOT)}: {p}" for p in problems]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    args = ap.parse_args(argv)
    sources = sorted(SOURCES.glob("*.md"))
    if not sources:
        print(f"no chapter sources in {SOURCES}", file=sys.stderr)
        return 1
    problems = []
    names = {md.stem for md in sources}
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        if nb.stem not in names:
            problems.append(f"{nb.relative_to(ROOT)} has no source chapters/{nb.stem}.md")
    for md in sources:
        ipynb = NOTEBOOKS / f"{md.stem}.ipynb"
        if args.check:
            problems += differences(md, ipynb)
        else:
            ipynb.write_text(nbformat.writes(notebook_from_source(md)) + "\n")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        if args.check:
            print("run: python tools/sync_chapters.py  (or save the chapter in JupyterLab) and commit both files",
                  file=sys.stderr)
        return 1
    print(f"{len(sources)} chapters {'agree with their notebooks' if args.check else 'written to notebooks/'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
