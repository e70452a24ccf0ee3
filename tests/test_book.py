"""The chapters' set-up (riemannstudy.chapter.setup): parameters checked against their declared types before any heavy work."""
import json

import numpy as np
import pytest
import torch

from riemannstudy import chapter as CH, provenance as PV, runs as RN, units as U


def namespace(**values):
    hints = {"steps": list[int], "paths": list[str], "k": int, "sigma": float, "save": bool,
             "model": str, "limit": int | None, "photos": list[str] | None}
    ns = {"steps": [16, 32], "paths": ["ig"], "k": 32, "sigma": 6.0, "save": False, "model": "m",
          "limit": None, "photos": None, "__annotations__": hints}
    ns.update(values)
    return ns


def test_defaults_pass_unchanged():
    ns = namespace()
    params = CH.check_parameters(ns)
    assert params == {"steps": [16, 32], "paths": ["ig"], "k": 32, "sigma": 6.0, "save": False, "model": "m",
                      "limit": None, "photos": None}


def test_list_given_as_text_by_papermill_p_is_parsed():
    ns = namespace(steps="[16, 32, 64]", paths="['ig', 'blurig']", photos="['chelsea']")
    CH.check_parameters(ns)
    assert ns["steps"] == [16, 32, 64] and ns["paths"] == ["ig", "blurig"] and ns["photos"] == ["chelsea"]


def test_scalar_for_a_list_is_rejected_naming_the_parameter_and_the_yaml_form():
    with pytest.raises(ValueError, match=r"parameter steps=16 .*list\[int\].*-y \"steps: \[16, 32\]\""):
        CH.check_parameters(namespace(steps=16))


def test_wrong_element_type_is_rejected_with_its_index():
    with pytest.raises(ValueError, match=r"steps\[1\]='x'"):
        CH.check_parameters(namespace(steps=[16, "x"]))


def test_scalars_are_coerced_or_rejected():
    ns = namespace(k="64", sigma=4, save="True", limit="500")
    CH.check_parameters(ns)
    assert ns["k"] == 64 and ns["sigma"] == 4.0 and isinstance(ns["sigma"], float) and ns["save"] is True
    assert ns["limit"] == 500
    for bad in ({"k": 2.5}, {"k": True}, {"save": 1}, {"model": 3}, {"sigma": "wide"}, {"limit": "all"}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=f"parameter {name}="):
            CH.check_parameters(namespace(**bad))


def test_setup_seeds_resolves_device_and_records_the_rerun_command():
    ns = namespace(seed=3, device="cpu")
    ch = CH.setup("riemannopt_test", ns)
    assert ch.device == torch.device("cpu")
    first = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(first, torch.rand(1))
    cmd = ch.provenance["command"]
    assert cmd.startswith("papermill notebooks/riemannopt_test.ipynb") and '"steps": [16, 32]' in cmd


def test_setup_applies_the_full_profile_and_checks_its_values():
    ns = namespace(profile="full", device="cpu")
    ns["__annotations__"] = {**ns["__annotations__"], "profile": str}
    ch = CH.setup("riemannopt", ns)
    assert ch.full_settings and ns["steps"] == [16, 32, 64, 128] and ch.params["steps"] == [16, 32, 64, 128]
    with pytest.raises(ValueError, match="profile"):
        CH.setup("riemannopt", {**namespace(profile="fast"), "__annotations__": {"profile": str}})


def test_code_state_and_code_sha256_name_the_code_that_ran():
    state = PV.code_state(allow_dirty=True)
    assert len(state["git_commit"]) == 40
    assert (state["dirty"] is True) == ("git_diff_sha256" in state) == ("untracked_sha256" in state)
    if state["dirty"]:
        with pytest.raises(SystemExit, match="--allow-dirty"):
            PV.code_state(allow_dirty=False)
    files = ["riemannstudy/stats.py", "riemannkit/validate.py"]
    h = PV.code_sha256(files)
    assert h == PV.code_sha256(files) and len(h) == 64
    assert h != PV.code_sha256(files[:1]) and h != PV.code_sha256(files[::-1])
    with pytest.raises(FileNotFoundError, match="not in the working tree"):
        PV.code_sha256(["riemannkit/no_such_module.py"])
    # the working copy is what is hashed (the code that runs), so a clean tree's hash is its commit's
    import hashlib
    import subprocess

    blob = subprocess.run(["git", "show", "HEAD:riemannstudy/stats.py"], cwd=PV.REPO_ROOT, capture_output=True).stdout
    if not state["dirty"] and blob:
        want = hashlib.sha256(b"riemannstudy/stats.py\0" + blob + b"\0").hexdigest()
        assert PV.code_sha256(["riemannstudy/stats.py"]) == want


def test_provenance_names_versions_and_dirty_state_and_save_json_adds_wall_time(tmp_path):
    prov = PV.provenance(command="x", device="cpu")
    for key in ("git_commit", "dirty", "device", "torch", "numpy", "scipy", "pillow", "date", "started_unix"):
        assert key in prov, key
    assert prov["numpy"] == np.__version__
    assert (prov["dirty"] is True) == ("git_diff_sha256" in prov)  # a dirty tree's code is named by its diff's hash
    prov["started_unix"] -= 5.0
    out = PV.save_json(tmp_path / "r.json", {"provenance": prov, "values": np.arange(2)})
    rec = json.loads(out.read_text())
    assert 5.0 <= rec["wall_s"] < 600 and rec["values"] == [0, 1]
    kept = PV.save_json(tmp_path / "s.json", {"provenance": prov, "wall_s": 1.5})  # a record's own wall time stays
    assert json.loads(kept.read_text())["wall_s"] == 1.5
    with pytest.raises(FileExistsError, match="overwrite=True"):
        PV.save_json(out, {"provenance": prov})


HEADER = {"benchmark": "reference_samp", "model": "m", "methods": ["ig"], "metrics": ["deletion"]}


def _settings(images=("p1", "p2"), **extra):
    return {"model": "m", "images": list(images), "steps": 16, **extra}


def _cell(v=0.1):
    return {"target": 1, "p": 0.5, "scores": {"ig": {"deletion": v}}}


def test_photo_run_resumes_only_the_same_settings_and_code(tmp_path):
    f = tmp_path / "samp_pool_m.json"
    state = {**PV.code_state(allow_dirty=True), "code_sha256": "a"}  # as the reference scripts build it
    run = RN.PhotoRun(f, 1, _settings(), state, "cmd", "cpu", HEADER)
    assert run.todo() == ["p1", "p2"] and not run.resumed
    run.add("p1", _cell())
    rec = json.loads(f.read_text())
    assert not rec["complete"] and rec["images"] == {"evaluated": ["p1"], "planned": ["p1", "p2"]}
    assert rec["benchmark"] == "reference_samp" and rec["provenance"]["command"] == "cmd" and rec["provenance"]["photos_done"] == 1
    assert rec["provenance"]["numerics"]["device_type"] == "cpu" and U.unit_variant(rec) == "cpu"
    run.lock.release()  # as a killed run's lock goes with its process
    again = RN.PhotoRun(f, 1, _settings(), state, "cmd", "cpu", HEADER)
    assert again.resumed and again.todo() == ["p2"]
    again.add("p2", _cell(0.2))
    rec = json.loads(again.finish().read_text())
    assert rec["complete"] and list(rec["cells"]) == ["p1", "p2"] and len(rec["provenance"]["parts"]) == 2
    before = f.read_text()
    # Other settings, other code, other schema: the run stops, names the difference and keeps the file.
    for settings, st, schema, what in ((_settings(["p1"]), state, 1, "settings.images"),
                                       (_settings(), {**state, "code_sha256": "b"}, 1, r"code \(code_sha256\)"),
                                       (_settings(), state, 2, "schema")):
        with pytest.raises(U.UnitError, match=what) as err:
            RN.PhotoRun(f, schema, settings, st, "cmd", "cpu", HEADER)
        assert "--overwrite" in str(err.value) and str(f) in str(err.value)
        assert f.read_text() == before
    done = RN.PhotoRun(f, 1, _settings(), state, "cmd", "cpu", HEADER)
    done.finish()  # a complete run resumed with nothing to add stays as it was
    assert f.read_text() == before
    fresh = RN.PhotoRun(f, 1, _settings(["p1"]), state, "cmd", "cpu", HEADER, overwrite=True)  # asked by name
    assert not fresh.resumed and fresh.todo() == ["p1"]
    fresh.lock.release()
    with pytest.raises(ValueError, match="file name is 'samp_pool_m.json'"):
        RN.PhotoRun(tmp_path / "samp_pool_other.json", 1, _settings(), state, "cmd", "cpu", HEADER)


def _partial(tmp_path, state, cells):
    f = tmp_path / "samp_pool_m.json"
    run = RN.PhotoRun(f, 1, _settings(), state, "cmd", "cpu", HEADER)
    run.add("p1", _cell())
    run.lock.release()
    rec = json.loads(f.read_text())
    rec["cells"] = cells
    rec["images"]["evaluated"] = list(cells)
    f.write_text(json.dumps(rec))
    return f


@pytest.mark.parametrize("cells, what", [
    ({"p1": {**_cell(), "scores": {"ig": {"deletion": float("nan")}}}}, r"cells\['p1'\]\.scores\['ig'\]\['deletion'\]=nan must be finite"),
    ({"p1": {**_cell(), "scores": {"ig": {"deletion": "garbage"}}}}, r"\['deletion'\]='garbage' must be a number"),
    ({"p1": _cell(), "x9": _cell()}, r"photo 'x9' is not one of the unit's photos"),
    ({"p1": {"target": 1, "p": 0.5}}, r"cells\['p1'\]\.scores is missing"),
])
def test_photo_run_refuses_to_resume_a_bad_cell(tmp_path, cells, what):
    state = {**PV.code_state(allow_dirty=True), "code_sha256": "a"}
    f = _partial(tmp_path, state, cells)
    before = f.read_text()
    with pytest.raises(U.UnitError, match=what):
        RN.PhotoRun(f, 1, _settings(), state, "cmd", "cpu", HEADER)
    assert f.read_text() == before  # kept for a person to look at


def test_photo_run_refuses_a_truncated_unit_and_a_bad_new_cell(tmp_path):
    state = {**PV.code_state(allow_dirty=True), "code_sha256": "a"}
    f = _partial(tmp_path, state, {"p1": _cell()})
    f.write_text(f.read_text()[:200])
    with pytest.raises(U.UnitError, match=f"{f}: the stored unit does not parse.*truncated"):
        RN.PhotoRun(f, 1, _settings(), state, "cmd", "cpu", HEADER)
    run = RN.PhotoRun(f, 1, _settings(), state, "cmd", "cpu", HEADER, overwrite=True)
    with pytest.raises(U.UnitError, match="must be finite"):
        run.add("p1", _cell(float("inf")))
    run.finish()


def test_photo_run_holds_its_unit_against_a_second_run(tmp_path):
    import os

    state = {**PV.code_state(allow_dirty=True), "code_sha256": "a"}
    f = tmp_path / "samp_pool_m.json"
    first = RN.PhotoRun(f, 1, _settings(), state, "cmd", "cpu", HEADER)
    with pytest.raises(U.UnitLocked, match=rf"another run holds this unit \({f}, pid {os.getpid()}\)"):
        RN.PhotoRun(f, 1, _settings(), state, "cmd", "cpu", HEADER)
    first.add("p1", _cell())
    first.finish()
    assert not (tmp_path / "samp_pool_m.json.lock").exists()
    second = RN.PhotoRun(f, 1, _settings(), state, "cmd", "cpu", HEADER)
    assert second.resumed and second.todo() == ["p2"]
    second.finish()


def test_reference_out_dir_keeps_dry_runs_out_of_results(tmp_path):
    assert RN.reference_out_dir(None, False) == PV.BUILD_DIR / "reference"
    assert RN.reference_out_dir(None, True) == PV.BUILD_DIR / "reference_dry_run"
    assert RN.reference_out_dir(tmp_path, True) == tmp_path.resolve()
    assert RN.reference_out_dir(PV.RESULTS_DIR / "reference", False) == PV.RESULTS_DIR / "reference"
    with pytest.raises(SystemExit, match="not evidence"):
        RN.reference_out_dir(PV.RESULTS_DIR / "reference", True)


def test_counts_below_one_are_refused_and_seeds_below_zero():
    for bad, what in (({"k": -1}, r"parameter k=-1 must be >= 1"), ({"k": 0}, r"parameter k=0 must be >= 1"),
                      ({"steps": [16, 0]}, r"parameter steps\[1\]=0 must be >= 1"), ({"limit": "-2"}, "limit=-2")):
        with pytest.raises(ValueError, match=what):
            CH.check_parameters(namespace(**bad))
    ns = {**namespace(seed=0), "__annotations__": {**namespace()["__annotations__"], "seed": int}}
    assert CH.check_parameters(ns)["seed"] == 0
    with pytest.raises(ValueError, match="parameter seed=-1 must be >= 0"):
        CH.check_parameters({**ns, "seed": -1})


def test_setup_refuses_a_parameter_papermill_injected_that_the_chapter_does_not_declare():
    injected = "# Parameters\nn_evl = 3\nk = 8\n"
    ns = namespace(In=["", "k: int = 32", injected, "from riemannstudy import chapter as CH"], device="cpu")
    assert CH.injected_parameters(ns) == ["n_evl", "k"]
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['n_evl'\] for the t chapter.*accepted parameters: steps"):
        CH.setup("t", ns)
    ns = namespace(In=["", "# Parameters\nk = 8\nPAPERMILL_INPUT_PATH = 'x'\n"], device="cpu")
    assert CH.setup("t", ns).params["k"] == 32  # declared names (and papermill's own) pass
    assert CH.injected_parameters(namespace(In=["x = 1"])) == []  # not run by papermill


def test_setup_checks_the_results_file_before_any_work(tmp_path):
    hints = {**namespace()["__annotations__"], "save_results": bool, "results_file": str, "overwrite": bool}
    ns = {**namespace(device="cpu"), "__annotations__": hints, "save_results": True, "overwrite": False}
    with pytest.raises(ValueError, match="outside the repository's results folder"):
        CH.setup("t", {**ns, "results_file": "/tmp/x.json"})
    with pytest.raises(FileExistsError, match="overwrite=True"):
        CH.setup("t", {**ns, "results_file": "reference/samp_pool_efficientnet_lite0.json"})
    assert CH.setup("t", {**ns, "results_file": "reference/samp_pool_efficientnet_lite0.json", "save_results": False})


@pytest.mark.slow  # starts a Jupyter kernel through papermill
def test_papermill_run_refuses_a_misspelt_parameter_and_a_negative_count(tmp_path):
    import os
    import subprocess
    import sys

    import nbformat

    root = str(PV.REPO_ROOT)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("n_eval: int = 2  # photos")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {root!r})\n"
                                                  "from riemannstudy import chapter as CH\nch = CH.setup('t', globals())")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "t.ipynb"
    nbformat.write(nb, src)
    env = {**os.environ, "PYTHONPATH": root}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "papermill", str(src), str(tmp_path / "out.ipynb"), *args],
                              capture_output=True, text=True, env=env, timeout=300)

    bad = run("-p", "n_evl", "3")
    assert bad.returncode != 0 and "unknown parameter(s) ['n_evl']" in bad.stderr + bad.stdout
    assert "did you mean n_eval" in bad.stderr + bad.stdout
    neg = run("-p", "n_eval", "-1")
    assert neg.returncode != 0 and "parameter n_eval=-1 must be >= 1" in neg.stderr + neg.stdout
    assert run("-p", "n_eval", "3").returncode == 0


def test_setup_checks_paths_methods_and_metrics_against_their_registries():
    with pytest.raises(ValueError, match=r"parameter paths holds \['igg'\]; accepted values: ig, "):
        CH.setup("t", namespace(paths=["ig", "igg"], device="cpu"))
    with pytest.raises(ValueError, match=r"parameter paths=\[\] must be a non-empty list"):
        CH.setup("t", namespace(paths=[], device="cpu"))
    hints = {**namespace()["__annotations__"], "methods": list[str], "metrics": list[str]}
    ns = {**namespace(device="cpu"), "__annotations__": hints, "methods": ["ig+idgi"], "metrics": ["deletion"]}
    assert CH.setup("t", ns).params["methods"] == ["ig+idgi"]
    with pytest.raises(ValueError, match=r"parameter metrics holds \['sic'\]"):
        CH.setup("t", {**ns, "metrics": ["sic"]})


def test_a_photo_run_stops_at_its_deadline_saved_and_resumable(tmp_path, monkeypatch):
    """With RIEMANNKIT_STOP_AT in the past, PhotoRun.add saves the photo, releases the lock and raises DeadlineReached;
    a rerun resumes from the saved photo and finishes."""
    import json

    settings = {"model": "m", "images": ["a", "b", "c"], "steps": 16}
    header = {"benchmark": "reference_samp", "model": "m", "methods": ["ig"], "metrics": ["deletion"]}
    state = {**PV.code_state(allow_dirty=True), "code_sha256": "x"}
    cell = {"target": 1, "p": 0.5, "scores": {"ig": {"deletion": 0.1}}}
    f = tmp_path / "samp_pool_m.json"
    monkeypatch.setenv(RN.STOP_AT_ENV, "0")
    run = RN.PhotoRun(f, 1, settings, state, "cmd", "cpu", header)
    with pytest.raises(RN.DeadlineReached, match="1 of 3 photos stored"):
        run.add("a", cell)
    assert json.loads(f.read_text())["images"]["evaluated"] == ["a"]
    monkeypatch.delenv(RN.STOP_AT_ENV)
    again = RN.PhotoRun(f, 1, settings, state, "cmd", "cpu", header)  # the lock was released: a rerun may start
    assert again.resumed and again.todo() == ["b", "c"]
    for name in again.todo():
        again.add(name, cell)
    again.finish()
    assert json.loads(f.read_text())["complete"]


def test_fold_constant_columns_narrows_tables_without_losing_a_value():
    from riemannstudy.tables import fold_constant_columns

    one = "| model | n | img/s |\n|---|---:|---:|\n| efficientnet_lite0 | 16 | 0.24 |"
    assert fold_constant_columns(one).splitlines() == ["|  |  |", "|---|---:|", "| model | Lite0 |", "| n | 16 |", "| img/s | 0.24 |"]
    many = "| model | dtype | n | img/s |\n|---|---|---:|---:|\n| efficientnet_lite0 | bf16 | 16 | 262 |\n| efficientnet_lite0 | bf16 | 64 | 96 |"
    folded = fold_constant_columns(many).splitlines()
    assert folded[0] == "*In every row: model Lite0; dtype bf16.*"
    assert folded[2:] == ["| n | img/s |", "|---:|---:|", "| 16 | 262 |", "| 64 | 96 |"]
    assert fold_constant_columns("not a table") == "not a table"
    # a '|' inside a cell (escaped by table()) stays one cell through the narrowing
    from riemannstudy.tables import table
    piped = table(["rule", "model", "error"], [["√|g′| density", "efficientnet_lite0", "0.1"], ["left", "efficientnet_lite0", "0.2"]], "lcr")
    assert fold_constant_columns(piped).splitlines() == ["*In every row: model Lite0.*", "", "| rule | error |", "|---|---:|",
                                                         "| √\\|g′\\| density | 0.1 |", "| left | 0.2 |"]
