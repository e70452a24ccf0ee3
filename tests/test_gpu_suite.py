"""The GPU suite's dry run (benchmarks/gpu_suite.py --dry-run): the same code paths on the CPU at tiny sizes,
so the suite's own bugs show here before a GPU minute is spent.  Checks files, limits and provenance, not speed."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.py"


def _suite_module():
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# End-to-end script runs (a minute or more): make test runs them once; .ci/run's extra thread/kernel runs skip them.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu_suite")
    res = subprocess.run([sys.executable, str(SUITE), "--dry-run", "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out


def test_dry_run_files_respect_the_device_limits(dry_run):
    files = sorted(dry_run.iterdir())
    names = {f.name for f in files}
    assert {"suite.json", "smoke.json", "throughput.json", "reference.json", "reference_units.json.gz", "suite.log"} <= names
    assert len(files) <= 8
    for f in files:
        assert f.is_file() and re.fullmatch(r"[A-Za-z0-9._-]+", f.name) and not f.name.endswith(".tmp")
        assert f.stat().st_size <= 16 * 2**20


def test_dry_run_records_provenance_and_every_stage(dry_run):
    suite = json.loads((dry_run / "suite.json").read_text())
    prov = suite["provenance"]
    for key in ("command", "git_commit", "device", "torch", "torchvision", "cuda", "cudnn", "date", "python", "numpy"):
        assert key in prov, key
    assert "--dry-run" in prov["command"] and prov["device"].startswith("CPU")
    assert set(suite["stages"]) == {"smoke", "throughput", "reference"}
    for stage, info in suite["stages"].items():
        assert info["status"] == "ok", (stage, info)
        assert info["wall_s"] >= 0
    for stage in suite["stages"]:
        rec = json.loads((dry_run / f"{stage}.json").read_text())
        assert rec["provenance"]["git_commit"] == prov["git_commit"]


def test_dry_run_smoke_covers_every_code_path(dry_run):
    smoke = json.loads((dry_run / "smoke.json").read_text())
    checks = {c["name"]: c for c in smoke["checks"]}
    expected = [f"{p}/{r}" for p in ("ig", "blurig") for r in ("left", "right", "midpoint", "trapezoid", "gausslegendre")]
    expected += ["guidedig/left", "samp/left", "manifold/left", "idgi/ig", "idgi/blurig", "idgi/guidedig", "idgi/samp",
                 "ig/schedule/left", "ig/schedule/trapezoid", "batch_size=auto", "amp/bf16", "amp/fp16", "channels_last",
                 "compile", "insertion_deletion", "pic"]
    for name in expected:
        assert name in checks, name
    failed = {k: c.get("error") for k, c in checks.items() if c["status"] == "error"}
    assert not failed, failed
    assert checks["compile"]["status"] == "skipped" and "CPU" in checks["compile"]["reason"]
    # The dry run's "device" is the CPU: device and CPU attributions are the same computation.
    for name, c in checks.items():
        if "rel_l2_vs_cpu" in c:
            assert c["rel_l2_vs_cpu"] < 1e-6, name


def test_dry_run_throughput_has_both_models_dtypes_and_the_cost_of_idgi_and_blurig(dry_run):
    tp = json.loads((dry_run / "throughput.json").read_text())
    ok = [r for r in tp["rows"] if "rk_images_per_s" in r]
    # the dry run times bf16 on the first model only (CPU bf16 is slow without bf16 instructions)
    assert {(r["model"], r["dtype"]) for r in ok} == {("efficientnet_lite0", "fp32"), ("efficientnet_lite0", "bf16"), ("resnet50", "fp32")}
    assert {r["layout"] for r in ok} == {"contiguous", "channels_last"}
    if tp["captum_available"]:
        assert all(r["captum_images_per_s"] > 0 and r["captum_attr_rel_l2"] < 1e-4 for r in ok if r["dtype"] == "fp32")
        # Captum with its convergence delta (equal work) beside plain Captum, at every pass size
        assert all(r["captum_delta_images_per_s"] > 0 and r["captum_delta_attr_rel_l2"] < 1e-4 for r in ok if r["dtype"] == "fp32")
    assert {lim["best_mode"] for lim in tp["limits"]} <= {"eager", "channels_last"}
    # the limit over several pass sizes, riemannkit and Captum at several (each at its best in the summary)
    assert {lim["batch_size"] for lim in tp["limits"]} == set(tp["config"]["limit_batches"])
    assert len({r["batch_size"] for r in ok}) > 1 and all("rk_batch_size" in r for r in tp["summary"])
    # the profile: riemannkit's forwards are its passes, and it syncs the host at most once per call
    prof = tp["profile"][0]
    assert prof["summary"]["rk_forwards"] == prof["summary"]["rk_passes_expected"] and prof["summary"]["rk_syncs"] <= 1
    assert [c["dtype"] for c in tp["cost"]] == ["fp32", "bf16"]
    assert set(tp["cost"][0]["relative_to_ig"]) == {"ig", "ig+idgi", "blurig", "blurig+idgi"}
    assert any(s["unit"] == "compile" for s in tp["skipped"])
    assert len(tp["summary"]) == len({(r["model"], r["dtype"], r["n"]) for r in ok})


def test_dry_run_renders_its_tables(dry_run):
    tables = _suite_module().gpu_tables(dry_run)
    assert {"stages", "throughput", "cost", "parity", "reference", "profile"} <= set(tables)
    assert "efficientnet_lite0" in tables["throughput"] and "| ig/left | ok |" in tables["parity"]


def test_a_short_budget_skips_the_stages_and_says_why(tmp_path):
    res = subprocess.run([sys.executable, str(SUITE), "--device", "cpu", "--budget-s", "1", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    suite = json.loads((tmp_path / "suite.json").read_text())
    assert suite["stages"] == {}
    assert [s["stage"] for s in suite["skipped"]] == ["smoke", "throughput", "reference"]
    assert all("left of the budget" in s["reason"] for s in suite["skipped"])


def test_outbox_refuses_a_ninth_file_and_odd_names(tmp_path):
    box = _suite_module().Outbox(tmp_path)  # suite.log is the first file
    for i in range(7):
        box.json(f"f{i}.json", {"i": i})
    box.json("f0.json", {"i": "rewritten"})  # rewriting a file does not count twice
    with pytest.raises(RuntimeError, match="more than 8 output files"):
        box.json("f7.json", {})
    with pytest.raises(ValueError, match="letters, digits"):
        _suite_module().Outbox(tmp_path / "b").json("a b.json", {})
    assert json.loads((tmp_path / "f0.json").read_text()) == {"i": "rewritten"}


def test_dry_run_runs_each_reference_script_in_process_and_bundles_its_units(dry_run):
    """Each reference script's own --dry-run, called in the suite's process with a repository-relative --out-dir (so the
    stored command reruns as is), and every unit file bundled for --unpack."""
    import gzip

    ref = json.loads((dry_run / "reference.json").read_text())
    assert [r["status"] for r in ref["runs"]] == ["ok"] * len(ref["runs"]) and len(ref["runs"]) >= 3, ref["runs"]
    assert all("--out-dir _build/gpu_units_dry_run" in r["command"] for r in ref["runs"])
    units = json.loads(gzip.decompress((dry_run / "reference_units.json.gz").read_bytes()))
    assert set(units) == set(ref["files"]) and any(n.startswith("idgi_study_") for n in units)
    for name, rec in units.items():
        assert rec["settings"]["dry_run"] is True and "/work/" not in rec["provenance"]["command"], name
