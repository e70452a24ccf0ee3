"""The chapters' set-up (riemannkit.book.setup): parameters checked against their declared types before any heavy work."""
import json

import numpy as np
import pytest
import torch

from riemannkit import book


def namespace(**values):
    hints = {"steps": list[int], "paths": list[str], "k": int, "sigma": float, "save": bool,
             "model": str, "limit": int | None, "photos": list[str] | None}
    ns = {"steps": [16, 32], "paths": ["ig"], "k": 32, "sigma": 6.0, "save": False, "model": "m",
          "limit": None, "photos": None, "__annotations__": hints}
    ns.update(values)
    return ns


def test_defaults_pass_unchanged():
    ns = namespace()
    params = book.check_parameters(ns)
    assert params == {"steps": [16, 32], "paths": ["ig"], "k": 32, "sigma": 6.0, "save": False, "model": "m",
                      "limit": None, "photos": None}


def test_list_given_as_text_by_papermill_p_is_parsed():
    ns = namespace(steps="[16, 32, 64]", paths="['ig', 'blurig']", photos="['chelsea']")
    book.check_parameters(ns)
    assert ns["steps"] == [16, 32, 64] and ns["paths"] == ["ig", "blurig"] and ns["photos"] == ["chelsea"]


def test_scalar_for_a_list_is_rejected_naming_the_parameter_and_the_yaml_form():
    with pytest.raises(ValueError, match=r"parameter steps=16 .*list\[int\].*-y \"steps: \[16, 32\]\""):
        book.check_parameters(namespace(steps=16))


def test_wrong_element_type_is_rejected_with_its_index():
    with pytest.raises(ValueError, match=r"steps\[1\]='x'"):
        book.check_parameters(namespace(steps=[16, "x"]))


def test_scalars_are_coerced_or_rejected():
    ns = namespace(k="64", sigma=4, save="True", limit="500")
    book.check_parameters(ns)
    assert ns["k"] == 64 and ns["sigma"] == 4.0 and isinstance(ns["sigma"], float) and ns["save"] is True
    assert ns["limit"] == 500
    for bad in ({"k": 2.5}, {"k": True}, {"save": 1}, {"model": 3}, {"sigma": "wide"}, {"limit": "all"}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=f"parameter {name}="):
            book.check_parameters(namespace(**bad))


def test_setup_seeds_resolves_device_and_records_the_rerun_command():
    ns = namespace(seed=3, device="cpu")
    ch = book.setup("riemannopt_test", ns)
    assert ch.device == torch.device("cpu")
    first = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(first, torch.rand(1))
    cmd = ch.provenance["command"]
    assert cmd.startswith("papermill notebooks/riemannopt_test.ipynb") and '"steps": [16, 32]' in cmd


def test_setup_applies_the_full_profile_and_checks_its_values():
    ns = namespace(profile="full", device="cpu")
    ns["__annotations__"] = {**ns["__annotations__"], "profile": str}
    ch = book.setup("riemannopt", ns)
    assert ch.full_settings and ns["steps"] == [16, 32, 64, 128] and ch.params["steps"] == [16, 32, 64, 128]
    with pytest.raises(ValueError, match="profile"):
        book.setup("riemannopt", {**namespace(profile="fast"), "__annotations__": {"profile": str}})


def test_code_state_and_code_sha256_name_the_code_that_ran():
    state = book.code_state(allow_dirty=True)
    assert len(state["git_commit"]) == 40
    assert (state["dirty"] is True) == ("git_diff_sha256" in state) == ("untracked_sha256" in state)
    if state["dirty"]:
        with pytest.raises(SystemExit, match="--allow-dirty"):
            book.code_state(allow_dirty=False)
    files = ["riemannkit/stats.py", "riemannkit/validate.py"]
    h = book.code_sha256(files)
    assert h == book.code_sha256(files) and len(h) == 64
    assert h != book.code_sha256(files[:1]) and h != book.code_sha256(files[::-1])
    with pytest.raises(FileNotFoundError, match="neither committed"):
        book.code_sha256(["riemannkit/no_such_module.py"])


def test_provenance_names_versions_and_dirty_state_and_save_json_adds_wall_time(tmp_path):
    prov = book.provenance(command="x", device="cpu")
    for key in ("git_commit", "dirty", "device", "torch", "numpy", "scipy", "pillow", "date", "started_unix"):
        assert key in prov, key
    assert prov["numpy"] == np.__version__
    assert (prov["dirty"] is True) == ("git_diff_sha256" in prov)  # a dirty tree's code is named by its diff's hash
    prov["started_unix"] -= 5.0
    out = book.save_json(tmp_path / "r.json", {"provenance": prov, "values": np.arange(2)})
    rec = json.loads(out.read_text())
    assert 5.0 <= rec["wall_s"] < 600 and rec["values"] == [0, 1]
    kept = book.save_json(tmp_path / "s.json", {"provenance": prov, "wall_s": 1.5})  # a record's own wall time stays
    assert json.loads(kept.read_text())["wall_s"] == 1.5
    with pytest.raises(FileExistsError, match="overwrite=True"):
        book.save_json(out, {"provenance": prov})


def test_photo_run_resumes_only_the_same_settings_and_code(tmp_path):
    f = tmp_path / "u.json"
    state = {**book.code_state(allow_dirty=True), "code_sha256": "a"}  # as the reference scripts build it
    run = book.PhotoRun(f, 1, {"images": ["p1", "p2"]}, state, "cmd", "cpu", {"benchmark": "t"})
    assert run.todo() == ["p1", "p2"] and not run.resumed
    run.add("p1", {"v": 1})
    rec = json.loads(f.read_text())
    assert not rec["complete"] and rec["images"] == {"evaluated": ["p1"], "planned": ["p1", "p2"]}
    assert rec["benchmark"] == "t" and rec["provenance"]["command"] == "cmd" and rec["provenance"]["photos_done"] == 1
    again = book.PhotoRun(f, 1, {"images": ["p1", "p2"]}, state, "cmd", "cpu", {"benchmark": "t"})
    assert again.resumed and again.todo() == ["p2"]
    again.add("p2", {"v": 2})
    rec = json.loads(again.finish().read_text())
    assert rec["complete"] and list(rec["cells"]) == ["p1", "p2"] and len(rec["provenance"]["parts"]) == 2
    for other in ({"images": ["p1"]}, ):  # other settings, other code, other schema: start afresh
        assert not book.PhotoRun(f, 1, other, state, "cmd", "cpu", {}).resumed
    assert not book.PhotoRun(f, 1, {"images": ["p1", "p2"]}, {**state, "code_sha256": "b"}, "cmd", "cpu", {}).resumed
    assert not book.PhotoRun(f, 2, {"images": ["p1", "p2"]}, state, "cmd", "cpu", {}).resumed
    done = book.PhotoRun(f, 1, {"images": ["p1", "p2"]}, state, "cmd", "cpu", {"benchmark": "t"})
    before = f.read_text()
    done.finish()  # a complete run resumed with nothing to add stays as it was
    assert f.read_text() == before
