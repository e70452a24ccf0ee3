"""Each notebook is what its text source gives (tools/sync_chapters.py --check), and the check notices a change."""
import importlib.util
import shutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("sync_chapters", ROOT / "tools" / "sync_chapters.py")
sync = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync)


def test_committed_notebooks_agree_with_their_sources():
    assert sync.main(["--check"]) == 0


def test_every_chapter_opens_with_its_title_and_hides_its_plumbing():
    for md in sorted((ROOT / "chapters").glob("*.md")):
        nb = sync.notebook_from_source(md)
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), md.name
        tags = {i: c.metadata.get("tags", []) for i, c in enumerate(nb.cells)}
        params = [i for i, t in tags.items() if "parameters" in t]
        assert len(params) == 1 and "hide-cell" in tags[params[0]], md.name
        setup = nb.cells[params[0] + 1]
        assert "CH.setup(" in setup.source and "hide-input" in tags[params[0] + 1], md.name


def test_check_reports_an_edited_notebook(tmp_path, monkeypatch):
    for d in ("chapters", "notebooks"):
        shutil.copytree(ROOT / d, tmp_path / d)
    monkeypatch.setattr(sync, "ROOT", tmp_path)
    monkeypatch.setattr(sync, "SOURCES", tmp_path / "chapters")
    monkeypatch.setattr(sync, "NOTEBOOKS", tmp_path / "notebooks")
    assert sync.main(["--check"]) == 0
    f = tmp_path / "notebooks" / "riemannopt.ipynb"
    nb = nbformat.read(f, as_version=4)
    nb.cells[0].source += "\nan edit made in the notebook only"
    nbformat.write(nb, f)
    assert sync.main(["--check"]) == 1
    assert sync.main([]) == 0 and sync.main(["--check"]) == 0  # regenerating restores the pair


def test_papermill_sees_every_declared_parameter_and_nothing_is_declared_elsewhere():
    """`papermill --help-notebook` lists exactly the annotated names of the parameters cell (a second '=' on a line,
    or an annotation such as `int | None`, hides a parameter from it), and no other cell declares one."""
    import ast
    import warnings

    from papermill.translators import PythonTranslator

    for md in sorted((ROOT / "chapters").glob("*.md")):
        nb = sync.notebook_from_source(md)
        code = [c for c in nb.cells if c.cell_type == "code"]
        (cell,) = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        tree = ast.parse(cell.source)
        declared = [n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)]
        assert not [n for n in tree.body if isinstance(n, ast.Assign)], f"{md.name}: a parameter without a type"
        seen = [p.name for p in PythonTranslator.inspect(cell)]
        assert seen == declared, f"{md.name}: papermill sees {seen}, the cell declares {declared}"
        for other in code:
            if other is not cell:
                try:
                    with warnings.catch_warnings():  # a chapter's regex strings are not this test's business
                        warnings.simplefilter("ignore")
                        body = ast.parse(other.source).body
                except SyntaxError:  # IPython magics
                    continue
                assert not [n for n in body if isinstance(n, ast.AnnAssign)], f"{md.name}: a parameter outside its cell"
