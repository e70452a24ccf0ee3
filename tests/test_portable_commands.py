"""Stored commands rerun as is in any clone: no folder of one machine in a stored command (tools/portable_commands.py,
riemannstudy.provenance.portable_command, riemannstudy.runs.reference_out_dir)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from riemannstudy import provenance as PV, runs as RN

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("portable_commands", ROOT / "tools" / "portable_commands.py")
PC = importlib.util.module_from_spec(spec)
spec.loader.exec_module(PC)


def test_an_output_folder_of_one_machine_becomes_where_the_record_lies(tmp_path):
    f = tmp_path / "results" / "reference" / "u.json"
    cmd = "python benchmarks/reference_idgi.py --model efficientnet_lite0 --steps 64 --device cpu --out-dir /work/ref-out4"
    new, left = PC.portable(cmd, f, root=tmp_path)
    assert new == "python benchmarks/reference_idgi.py --model efficientnet_lite0 --steps 64 --device cpu --out-dir results/reference"
    assert left == []
    new, _ = PC.portable("python benchmarks/blur_path.py --out=/x/y.json --steps 16", tmp_path / "results" / "b.json", root=tmp_path)
    assert new == "python benchmarks/blur_path.py --out=results/b.json --steps 16"
    # another absolute path is reported, not guessed at
    same, left = PC.portable("python s.py --units-dir /work/u --out-dir results/reference", f, root=tmp_path)
    assert same == "python s.py --units-dir /work/u --out-dir results/reference" and left == ["/work/u"]


def test_rewrite_keeps_the_command_as_run_at_any_depth(tmp_path):
    f = tmp_path / "results" / "u.json"
    rec = {"provenance": {"command": "python a.py --out-dir /m/o", "parts": [{"command": "python a.py --out-dir /m/o"}]}}
    n, left = PC.rewrite(rec, f, root=tmp_path)
    assert n == 2 and left == []
    assert rec["provenance"]["command"] == "python a.py --out-dir results"
    assert rec["provenance"]["command_as_run"] == "python a.py --out-dir /m/o"
    assert rec["provenance"]["parts"][0]["command_as_run"] == "python a.py --out-dir /m/o"
    assert PC.rewrite(rec, f, root=tmp_path) == (0, [])  # a second pass changes nothing


def test_every_stored_command_reruns_in_a_clone():
    assert PC.main(["--check"]) == 0, "run python tools/portable_commands.py from a clean tree"


def test_provenance_writes_paths_inside_the_repository_relative_to_it():
    root = str(PV.REPO_ROOT)
    assert PV.portable_command(f"python {root}/benchmarks/x.py --out-dir {root}/results/reference --n 4") == \
        "python benchmarks/x.py --out-dir results/reference --n 4"
    assert PV.portable_command(f"python x.py --out={root}/_build/a.json") == "python x.py --out=_build/a.json"
    assert PV.portable_command("python x.py --out-dir _build/reference") == "python x.py --out-dir _build/reference"
    assert PV.provenance(command=f"python x.py --out-dir {root}/_build")["command"] == "python x.py --out-dir _build"


def test_a_unit_for_evidence_outside_the_repository_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="outside the repository"):
        RN.reference_out_dir(tmp_path, dry_run=False)
    assert RN.reference_out_dir(tmp_path, dry_run=True) == tmp_path.resolve()
    assert RN.reference_out_dir(tmp_path, dry_run=False, allow_dirty=True) == tmp_path.resolve()
    assert RN.reference_out_dir("_build/x", dry_run=False) == (Path.cwd() / "_build/x").resolve()
