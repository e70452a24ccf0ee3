"""benchmarks/gpu_suite.py --unpack: only complete, checked units, under their variant's name, inside --to/reference;
and the suite's time options refuse NaN, infinities and negative values (issue 27)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_benchmark
from test_units import GPU_OLD, samp_unit

ROOT = Path(__file__).resolve().parents[1]


def bundle(folder: Path, records: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reference.json").write_text(json.dumps({"stage": "reference", "records": records}))
    return folder


def test_unpack_writes_complete_units_under_their_variants_name(tmp_path):
    suite = load_benchmark("gpu_suite")
    gpu = samp_unit(prov=GPU_OLD)
    partial = samp_unit("efficientnet_lite1", prov=GPU_OLD)
    partial["complete"], partial["cells"] = False, {"p0": partial["cells"]["p0"]}
    partial["images"]["evaluated"] = ["p0"]
    dry = samp_unit("efficientnet_lite2", prov=GPU_OLD)
    dry["settings"]["dry_run"] = True
    src = bundle(tmp_path / "suite", {"samp_pool_efficientnet_lite0.json": gpu,  # an old suite's name, no variant
                                       "samp_pool_efficientnet_lite1.json": partial, "samp_pool_efficientnet_lite2.json": dry})
    written, skipped = suite.unpack_reference(src, tmp_path / "results")
    assert [p.name for p in written] == ["samp_pool_efficientnet_lite0.cuda_tf32.json"]
    assert json.loads(written[0].read_text()) == gpu
    assert any("a partial record (1 of 12 photos)" in s for s in skipped) and any("dry run" in s for s in skipped)
    again, skipped = suite.unpack_reference(src, tmp_path / "results")
    assert again == [] and any("already stored" in s for s in skipped)
    written, _ = suite.unpack_reference(src, tmp_path / "results", include_partial=True)
    assert [p.name for p in written] == ["samp_pool_efficientnet_lite1.cuda_tf32.json"]


@pytest.mark.parametrize("key, what", [
    ("../../x.json", "not a plain file name"), ("/tmp/x.json", "not a plain file name"), ("a/b.json", "not a plain file name"),
    ("samp_pool_efficientnet_lite1.json", "the record is the unit 'samp_pool_efficientnet_lite0.cuda_tf32.json'"),
])
def test_unpack_refuses_unsafe_or_wrong_names_and_writes_nothing(tmp_path, key, what):
    suite = load_benchmark("gpu_suite")
    src = bundle(tmp_path / "suite", {"samp_pool_efficientnet_lite0.json": samp_unit(prov=GPU_OLD, seed=3),
                                       key: samp_unit(prov=GPU_OLD)})
    with pytest.raises(SystemExit, match=what):
        suite.unpack_reference(src, tmp_path / "results")
    assert not (tmp_path / "results").exists() and not (tmp_path / "x.json").exists()


def test_unpack_never_replaces_a_complete_unit_without_overwrite_nor_by_a_partial_record(tmp_path):
    suite = load_benchmark("gpu_suite")
    dest = tmp_path / "results" / "reference"
    dest.mkdir(parents=True)
    stored = samp_unit(prov=GPU_OLD, seed=1)
    (dest / "samp_pool_efficientnet_lite0.cuda_tf32.json").write_text(json.dumps(stored))
    other = samp_unit(prov=GPU_OLD, seed=2)
    src = bundle(tmp_path / "a", {"samp_pool_efficientnet_lite0.cuda_tf32.json": other})
    with pytest.raises(SystemExit, match=r"exists \(a complete unit\); pass --overwrite"):
        suite.unpack_reference(src, tmp_path / "results")
    partial = samp_unit(prov=GPU_OLD, seed=2)
    partial["complete"] = False
    src2 = bundle(tmp_path / "b", {"samp_pool_efficientnet_lite0.json": partial})
    with pytest.raises(SystemExit, match="a partial record would replace the complete unit"):
        suite.unpack_reference(src2, tmp_path / "results", overwrite=True, include_partial=True)
    assert json.loads((dest / "samp_pool_efficientnet_lite0.cuda_tf32.json").read_text()) == stored
    bad = samp_unit(prov=GPU_OLD)
    bad["cells"]["p1"]["scores"]["ig"]["deletion"] = float("nan")
    with pytest.raises(SystemExit, match=r"cells\['p1'\]\.scores\['ig'\]\['deletion'\]=nan must be finite"):
        suite.unpack_reference(bundle(tmp_path / "c", {"samp_pool_efficientnet_lite0.json": bad}), tmp_path / "results")
    written, _ = suite.unpack_reference(src, tmp_path / "results", overwrite=True)
    assert json.loads(written[0].read_text()) == other


@pytest.mark.parametrize("args, what", [
    (["--budget-s", "nan"], "--budget-s must be a finite number of seconds > 0, got nan"),
    (["--budget-s", "inf"], "--budget-s must be a finite number of seconds > 0, got inf"),
    (["--budget-s=-5"], "--budget-s must be a finite number of seconds > 0, got -5"),
    (["--margin-s", "nan"], "--margin-s must be a finite number"),
    (["--unpack", "x"], "--unpack needs --to"),
])
def test_the_suite_refuses_unbounded_times_and_an_unnamed_unpack_target(tmp_path, args, what):
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--out", str(tmp_path), *args],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and what in res.stderr


def test_unpack_reads_the_suites_gzip_bundle_of_unit_files(tmp_path):
    """The suite bundles its unit files as reference_units.json.gz ({file name: record}); unpack reads it first."""
    import gzip

    suite = load_benchmark("gpu_suite")
    gpu = samp_unit(prov=GPU_OLD)
    src = tmp_path / "suite"
    src.mkdir()
    (src / suite.UNITS_BUNDLE).write_bytes(gzip.compress(json.dumps({"samp_pool_efficientnet_lite0.cuda_tf32.json": gpu}).encode()))
    (src / "reference.json").write_text(json.dumps({"stage": "reference", "runs": []}))  # no 'records': the bundle holds them
    written, _ = suite.unpack_reference(src, tmp_path / "results")
    assert [p.name for p in written] == ["samp_pool_efficientnet_lite0.cuda_tf32.json"]
    (src / suite.UNITS_BUNDLE).write_bytes(b"not gzip")
    with pytest.raises(SystemExit, match="does not parse"):
        suite.unpack_reference(src, tmp_path / "results2")


def test_bundle_units_writes_every_unit_file(tmp_path):
    import gzip

    suite = load_benchmark("gpu_suite")
    units = tmp_path / "units"
    units.mkdir()
    (units / "a.json").write_text(json.dumps({"x": 1}))
    (units / "b.json").write_text("{truncated")
    box = suite.Outbox(tmp_path / "out")
    assert suite.bundle_units(units, box) == ["a.json", "b.json"]
    got = json.loads(gzip.decompress((tmp_path / "out" / suite.UNITS_BUNDLE).read_bytes()))
    assert got["a.json"] == {"x": 1} and "unreadable" in got["b.json"]


def test_reference_jobs_put_the_gpu_target_first_and_scale_estimates():
    suite = load_benchmark("gpu_suite")
    jobs = suite.reference_jobs(["efficientnet_lite0", "efficientnet_lite1"])
    assert jobs[0]["unit"] == "idgi n=128 efficientnet_lite0" and jobs[1]["unit"] == "idgi n=128 efficientnet_lite1"
    kinds = [j["kind"] for j in jobs]
    assert kinds.index("table1") < kinds.index("samp") and kinds[-1] == "samp" and {j["steps"] for j in jobs if j["kind"] == "idgi"} == {8, 16, 32, 64, 128}
    j8, j128 = (next(j for j in jobs if j["unit"] == f"idgi n={s} efficientnet_lite0") for s in (8, 128))
    assert suite.job_estimate(j8, {}) < suite.job_estimate(j128, {})
    assert suite.job_estimate(j128, {"idgi": 0.5}) == pytest.approx(0.5 * suite.job_estimate(j128, {}))
    dry = suite.reference_jobs(["efficientnet_lite0", "efficientnet_lite1"], dry_run=True)
    assert all("--dry-run" in j["argv"] and j["model"] == "efficientnet_lite0" for j in dry)


def test_attest_code_commit_names_the_commit_whose_files_ran_only_when_the_hashes_prove_it():
    """A device checkout with a stale .git records git_commit = its HEAD plus the diff hashes of the files it really
    ran; attest_code_commit names the commit whose files give those hashes, and refuses one that does not."""
    import subprocess

    suite = load_benchmark("gpu_suite")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=suite.ROOT, capture_output=True, text=True).stdout.strip()
    parent = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD~1"], cwd=suite.ROOT, capture_output=True, text=True).stdout.strip()
    if not head or not parent:
        pytest.skip("needs a git checkout with history")
    clean = {"provenance": {"git_commit": head, "dirty": False}}
    assert suite.attest_code_commit(clean, head) == head and "clean" in clean["provenance"]["code_commit_check"]
    diff, untracked = suite.dirty_tree_hashes(parent, head)
    stale = {"provenance": {"git_commit": parent, "dirty": True, "git_diff_sha256": diff, "untracked_sha256": untracked}}
    assert suite.attest_code_commit(stale, head) == head and "reproduced" in stale["provenance"]["code_commit_check"]
    other = {"provenance": {"git_commit": parent, "dirty": True, "git_diff_sha256": "0" * 64, "untracked_sha256": untracked}}
    with pytest.raises(SystemExit, match="ran other code"):
        suite.attest_code_commit(other, head)
    with pytest.raises(SystemExit, match="not a commit"):
        suite.attest_code_commit(clean, "no-such-commit")


def test_a_job_whose_units_are_stored_complete_is_skipped_on_a_fresh_device(tmp_path):
    """stored_complete names a job's unit files when the folder holds each complete in the variant, else []."""
    suite = load_benchmark("gpu_suite")
    jobs = {j["unit"]: j for j in suite.reference_jobs(["efficientnet_lite0"])}
    for name, complete in (("idgi_study_efficientnet_lite0.cuda.json", True), ("tolerance_efficientnet_lite0.cuda.json", False),
                           ("riemannopt_table1_efficientnet_lite0_ig.cuda.json", True),
                           ("riemannopt_table1_efficientnet_lite0_blurig.cuda.json", True),
                           ("samp_pool_efficientnet_lite0.json", True)):
        (tmp_path / name).write_text(json.dumps({"complete": complete}))
    assert suite.stored_complete(jobs["idgi n=128 efficientnet_lite0"], folder=tmp_path) == ["idgi_study_efficientnet_lite0.cuda.json"]
    assert suite.stored_complete(jobs["idgi n=8 efficientnet_lite0"], folder=tmp_path) == []
    assert suite.stored_complete(jobs["tolerance efficientnet_lite0"], folder=tmp_path) == []  # partial: run (resumes nothing)
    assert suite.stored_complete(jobs["table1 efficientnet_lite0"], folder=tmp_path) == []  # Guided IG's unit is missing
    (tmp_path / "riemannopt_table1_efficientnet_lite0_guidedig.cuda.json").write_text(json.dumps({"complete": True}))
    assert len(suite.stored_complete(jobs["table1 efficientnet_lite0"], folder=tmp_path)) == 3
    assert suite.stored_complete(jobs["samp efficientnet_lite0"], folder=tmp_path) == []  # only the cpu unit is there
    assert suite.stored_complete(jobs["samp efficientnet_lite0"], variant="cpu", folder=tmp_path) == ["samp_pool_efficientnet_lite0.json"]


def test_a_photo_by_photo_job_starts_with_a_few_photos_time_left():
    suite = load_benchmark("gpu_suite")
    tol = next(j for j in suite.reference_jobs(["efficientnet_lite0"]) if j["kind"] == "tolerance")
    assert "tolerance" in suite.PHOTO_KINDS and "idgi" not in suite.PHOTO_KINDS  # IDGI runs all photos as one group on a GPU
    assert suite.photo_job_need(tol, 590.0, 200.0) == 200.0  # starts, stops at the deadline
    assert suite.photo_job_need(tol, 590.0, 30.0) == 590.0  # not even a few photos fit: skipped
    assert suite.photo_job_need(tol, 20.0, 30.0) == 20.0  # the whole unit fits
