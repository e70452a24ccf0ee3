"""riemannstudy.units and the loaders that read units (issue 27): names, numerics variants, checks that name the file and
the key, locks, atomic writes, and evidence that never mixes variants or guesses."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from riemannstudy import evidence as EV
from riemannstudy import units as U

ROOT = Path(__file__).resolve().parents[1]
CPU = {"device": "CPU (x86_64, 2 threads)", "git_commit": "abc"}
GPU_OLD = {"device": "NVIDIA H200", "cuda": "13.0", "git_commit": "abc"}  # the 2026-12-04 run: no 'numerics'


def numerics(device_type="cpu", dtype="float32", tf32=False):
    return {"device_type": device_type, "dtype": dtype, "tf32_conv": tf32, "tf32_matmul": False,
            "cudnn_benchmark": False, "deterministic": False, "threads": 2}


def samp_unit(model="efficientnet_lite0", n=12, prov=CPU, steps=16, gap=0.05, seed=0) -> dict:
    """A valid samp_pool unit: SAMP beats every base path by ``gap`` on both metrics."""
    rng = np.random.default_rng(seed)
    names = [f"p{i}" for i in range(n)]
    cells = {}
    for p in names:
        sc = {b: {"deletion": rng.uniform(0.2, 0.3), "insertion_prob": rng.uniform(0.4, 0.5), "completeness": 0.1}
              for b in ("ig", "blurig", "guidedig")}
        sc["samp"] = {"deletion": 0.2 - gap, "insertion_prob": 0.5 + gap, "completeness": 0.1}
        cells[p] = {"target": 1, "p": 0.9, "scores": sc}
    return {"benchmark": "reference_samp", "model": model, "methods": ["ig", "blurig", "guidedig", "samp"],
            "metrics": ["deletion", "insertion_prob", "completeness"], "schema": 1, "complete": True,
            "settings": {"model": model, "images": names, "steps": steps}, "images": {"evaluated": names, "planned": names},
            "cells": cells, "provenance": {**prov, "parts": [prov]}}


def write(folder: Path, rec: dict, name: str | None = None) -> Path:
    f = folder / (name or U.unit_file_name(rec))
    f.write_text(json.dumps(rec))
    return f


# ----------------------------------------------------------------------------------------------- names and variants
def test_variants_follow_the_convention():
    assert U.unit_variant({"provenance": CPU}) == "cpu"
    assert U.unit_variant({"provenance": GPU_OLD}) == "cuda_tf32"  # before 'numerics': PyTorch's cuDNN TF32 default
    assert U.unit_variant({"provenance": {"numerics": numerics("cuda")}}) == "cuda"
    assert U.unit_variant({"provenance": {"numerics": numerics("cuda", tf32=True)}}) == "cuda_tf32"
    assert U.unit_variant({"provenance": {"numerics": {**numerics(), "threads": 64}}}) == "cpu"  # any thread count
    assert U.unit_variant({"provenance": {"numerics": numerics(dtype="float64")}}) == "cpu_fp64"
    mixed = {"provenance": {**CPU, "parts": [CPU, GPU_OLD]}}
    with pytest.raises(U.UnitError, match=r"different numerics variants \['cpu', 'cuda_tf32'\]"):
        U.unit_variant(mixed)
    with pytest.raises(U.UnitError, match="no known variant"):
        U.numerics_variant(numerics("mps"))


def test_numerics_record_the_settings_and_set_numerics_is_strict_fp32_by_default():
    import torch

    num = U.set_numerics("cpu")
    assert num == U.numerics("cpu") and num["device_type"] == "cpu" and num["tf32_conv"] is False
    assert num["threads"] == torch.get_num_threads() and U.numerics_variant(num) == "cpu"
    with pytest.raises(ValueError, match="allow_tf32"):
        U.set_numerics("cpu", allow_tf32="yes")


def test_file_names_carry_kind_model_path_or_steps_and_variant():
    rec = samp_unit()
    assert U.unit_file_name(rec) == "samp_pool_efficientnet_lite0.json"
    assert U.unit_file_name(samp_unit(steps=4)) == "samp_pool_efficientnet_lite0_n4.json"
    assert U.unit_file_name(samp_unit(prov=GPU_OLD)) == "samp_pool_efficientnet_lite0.cuda_tf32.json"
    assert U.variant_file_name(U.unit_stem("riemannopt_table1", "efficientnet_lite0", "ig"), "cuda_tf32") == \
        "riemannopt_table1_efficientnet_lite0_ig.cuda_tf32.json"
    assert U.unit_stem("idgi_study", "efficientnet_lite0", steps=128) == "idgi_study_efficientnet_lite0"
    assert U.unit_stem("idgi_study", "efficientnet_lite0", steps=8) == "idgi_study_efficientnet_lite0_n8"
    with pytest.raises(ValueError, match="variant='gpu'"):
        U.variant_file_name("x", "gpu")


# --------------------------------------------------------------------------------------------------- the loaders
@pytest.mark.parametrize("mutate, what", [
    (lambda r: r["cells"]["p3"]["scores"]["ig"].update(deletion=float("nan")), r"cells\['p3'\]\.scores\['ig'\]\['deletion'\]=nan must be finite"),
    (lambda r: r["cells"]["p3"]["scores"]["samp"].update(insertion_prob="garbage"), r"\['insertion_prob'\]='garbage' must be a number"),
    (lambda r: r["cells"]["p3"]["scores"].pop("blurig"), r"cells\['p3'\]\.scores\['blurig'\] is missing"),
    (lambda r: r["settings"].update(steps="16"), r"settings\.steps='16' must be a positive integer"),
    (lambda r: r["cells"].update(stranger=r["cells"]["p0"]), r"photo 'stranger' is not one of the unit's photos"),
    (lambda r: r.update(model="efficientnet_lite1"), r"model='efficientnet_lite1' but settings\.model='efficientnet_lite0'"),
])
def test_a_bad_unit_is_an_error_naming_the_file_and_the_key(tmp_path, mutate, what):
    rec = samp_unit()
    mutate(rec)
    f = write(tmp_path, rec, "samp_pool_efficientnet_lite0.json")
    with pytest.raises(U.UnitError, match=what) as err:
        EV.load_units("samp_pool_*.json", tmp_path)
    assert str(f) in str(err.value)


def test_the_loaders_refuse_instead_of_guessing(tmp_path):
    with pytest.raises(FileNotFoundError, match="'/typo' does not exist"):
        EV.load_units(folder="/typo")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EV.load_stored("/typo")
    lite1 = samp_unit("efficientnet_lite1")
    write(tmp_path, lite1, "samp_pool_efficientnet_lite0.json")  # a Lite1 unit under Lite0's name
    with pytest.raises(U.UnitError, match="file name disagrees with its record.*'samp_pool_efficientnet_lite1.json'"):
        EV.load_units("samp_pool_*.json", tmp_path)
    (tmp_path / "samp_pool_efficientnet_lite0.json").write_text(json.dumps(samp_unit())[:300])  # truncated
    with pytest.raises(ValueError, match="samp_pool_efficientnet_lite0.json: does not parse as JSON"):
        EV.load_units("samp_pool_*.json", tmp_path)
    (tmp_path / "samp_pool_efficientnet_lite0.json").write_bytes(b"\x89PNG\x00\xff")
    with pytest.raises(ValueError, match="does not parse as JSON"):
        EV.load_stored(tmp_path)
    write(tmp_path, samp_unit())
    dry = samp_unit("efficientnet_lite2")
    dry["settings"]["dry_run"] = True
    write(tmp_path, dry)
    assert [u["file"] for u in EV.load_units("samp_pool_*.json", tmp_path)] == ["samp_pool_efficientnet_lite0.json"]


def test_units_of_other_variants_are_loaded_apart_and_never_judged_together(tmp_path):
    write(tmp_path, samp_unit(seed=1))
    write(tmp_path, samp_unit(prov=GPU_OLD, gap=-0.05, seed=2))  # the GPU unit says the opposite
    assert [u["file"] for u in EV.load_units("samp_pool_*.json", tmp_path)] == ["samp_pool_efficientnet_lite0.json"]
    both = EV.load_units("samp_pool_*.json", tmp_path, variant=None)
    groups = EV.units_by_variant(both)
    assert list(groups) == ["cpu", "cuda_tf32"] and [len(v) for v in groups.values()] == [1, 1]
    assert EV.load_units("samp_pool_*.json", tmp_path, variant="cuda_tf32")[0]["variant"] == "cuda_tf32"
    with pytest.raises(ValueError, match="mix numerics variants"):
        EV.samp_claim_row(both, ["efficientnet_lite0"])
    claims = [{"id": "S1", "judge": "samp_pairs", "args": {"models": ["efficientnet_lite0"]}, "paper": "SAMP",
               "claim": "c", "evidence": "e", "chapter": "samp"}]
    stored = {"samp_pool": both}
    cpu = EV.judge_claims(claims, [], {}, {}, stored)[0]
    gpu = EV.judge_claims(claims, [], {}, {}, stored, variant="cuda_tf32")[0]
    assert (cpu["verdict"], cpu["variant"], cpu["images"]) == ("holds", "cpu", 12)
    assert (gpu["verdict"], gpu["variant"]) == ("does not hold", "cuda_tf32")
    with pytest.raises(ValueError, match="variant='gpu'"):
        EV.load_units("samp_pool_*.json", tmp_path, variant="gpu")


def test_two_units_of_one_identity_are_an_error(tmp_path):
    a = write(tmp_path, samp_unit())
    b = tmp_path / "sub"
    b.mkdir()
    write(b, samp_unit())
    assert len(EV.load_units("samp_pool_*.json", tmp_path)) == 1
    # One folder cannot hold two files of one name: a pattern reaching into a sub-folder finds the second.
    with pytest.raises(U.UnitError, match=r"a second unit of \('samp_pool', 'efficientnet_lite0', 16, 'cpu'\)"):
        EV.load_units("**/samp_pool_*.json", tmp_path)
    assert a.is_file()


def test_table4_says_why_a_model_has_no_pair():
    names = [f"p{i}" for i in range(12)]

    def unit(steps, photos):
        cells = {p: {"scores": {m: {"insertion_prob": 0.5} for m in ("ig", "ig+idgi", "guidedig", "guidedig+idgi",
                                                                     "blurig", "blurig+idgi")}} for p in photos}
        return {"model": "m", "settings": {"steps": steps}, "images": {"evaluated": photos}, "cells": cells,
                "methods": ["ig", "ig+idgi", "guidedig", "guidedig+idgi", "blurig", "blurig+idgi"]}

    claims = [{"id": "I4", "judge": "idgi_steps", "args": {"metrics": ["insertion_prob"], "models": ["m"]},
               "paper": "IDGI study", "claim": "c", "evidence": "e", "chapter": "sweeps"}]
    row = EV.judge_claims(claims, [], {}, {}, {"idgi_study": [unit(128, names), unit(8, names[:1])]})[0]
    assert row["verdict"] == "not judged" and "share 1 photo(s); a paired difference needs 2 or more" in row["ours"]
    row = EV.judge_claims(claims, [], {}, {}, {"idgi_study": [unit(128, names)]})[0]
    assert "no unit at 8 steps stored yet" in row["ours"]


def test_the_committed_units_load_and_each_variant_once():
    units = EV.load_units("*.json", variant=None)
    assert units and len({U.unit_identity(u) for u in units}) == len(units)
    assert {u["variant"] for u in EV.load_units("*.json")} == {"cpu"}


# ------------------------------------------------------------------------------------------------ locks and writes
def test_a_lock_names_its_holder_and_is_dropped_on_release(tmp_path):
    import os

    f = tmp_path / "u.json"
    with U.lock_unit(f):
        assert (tmp_path / "u.json.lock").read_text().strip() == str(os.getpid())
        with pytest.raises(U.UnitLocked, match=rf"another run holds this unit \({f}, pid {os.getpid()}\)"):
            U.lock_unit(f)
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from riemannstudy import units as U; U.lock_unit({str(f)!r})"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert other.returncode != 0 and f"pid {os.getpid()}" in other.stderr
    assert not (tmp_path / "u.json.lock").exists()
    U.lock_unit(f).release()


def test_two_processes_writing_one_file_never_collide_or_tear_it(tmp_path):
    f = tmp_path / "u.json"
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from riemannstudy import units as U\n"
            f"for i in range(150): U.write_json_atomic({str(f)!r}, {{'writer': sys.argv[1], 'i': i, 'pad': 'x' * 20000}})")
    procs = [subprocess.Popen([sys.executable, "-c", code, w], stderr=subprocess.PIPE, text=True) for w in "ab"]
    torn = reads = 0
    while any(p.poll() is None for p in procs):
        try:
            json.loads(f.read_text())
            reads += 1
        except FileNotFoundError:
            pass
        except json.JSONDecodeError:
            torn += 1
    errs = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert torn == 0 and json.loads(f.read_text())["i"] == 149
    assert [p.name for p in tmp_path.iterdir()] == ["u.json"]


def test_resumable_names_every_difference_and_keeps_the_file(tmp_path):
    rec = samp_unit()
    rec["complete"] = False
    rec["provenance"] = {**CPU, "code_sha256": "a", "parts": [CPU]}
    f = write(tmp_path, rec)
    cur = {"benchmark": "reference_samp", "model": "efficientnet_lite0", "schema": 1,
           "settings": copy.deepcopy(rec["settings"]), "state": {"code_sha256": "a"}, "variant": "cpu"}
    assert U.resumable(f, cur)["cells"] == rec["cells"]
    assert U.resumable(f, cur, overwrite=True) is None
    other = {**cur, "settings": {**cur["settings"], "steps": 32}, "state": {"code_sha256": "b"}, "variant": "cuda"}
    with pytest.raises(U.UnitError) as err:
        U.resumable(f, other)
    msg = str(err.value)
    assert "a partial unit" in msg and "settings.steps: stored 16, this run 32" in msg
    assert "code (code_sha256): stored a" in msg and "numerics variant: stored 'cpu', this run 'cuda'" in msg
    assert json.loads(f.read_text()) == rec


def test_a_unit_without_complete_is_complete_and_a_partial_one_says_how_far_it_got():
    assert not U.is_partial({"images": {"evaluated": ["a"]}})
    assert U.photos_state({"complete": True, "images": {"evaluated": ["a"], "planned": ["a"]}}) == "complete"
    partial = {"complete": False, "images": {"evaluated": ["a", "b"], "planned": ["a", "b", "c"]}}
    assert U.is_partial(partial)
    assert U.photos_state(partial) == "partial: 2 of 3 photos stored so far"


def test_a_cpu_device_is_named_with_its_model_so_intel_and_amd_runs_differ(tmp_path):
    from riemannstudy import provenance as PV

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n")
    assert PV.cpu_model(info) == "AMD EPYC 7B13"
    assert PV.cpu_model(tmp_path / "absent") is None
    (tmp_path / "empty").write_text("processor\t: 0\nmodel name\t:\n")
    assert PV.cpu_model(tmp_path / "empty") is None
    name = PV.device_name("cpu")
    assert name.startswith("CPU (") and name.endswith(f"{torch.get_num_threads()} threads)")
    assert U._part_variant({"device": name}) == "cpu"  # old units without 'numerics' still read as CPU runs
