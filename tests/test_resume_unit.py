"""tools/resume_unit.py: a stored unit is resumed only at its own clean commit, with its own command, storing photos."""
from __future__ import annotations

import copy
import datetime as dt
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from test_store_unit import without_last

from riemannstudy.provenance import in_history
from riemannstudy.units import UnitError, check_unit

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "tools"))
spec = importlib.util.spec_from_file_location("resume_unit", ROOT / "tools" / "resume_unit.py")
RU = importlib.util.module_from_spec(spec)
spec.loader.exec_module(RU)

STORED = ROOT / "results" / "reference" / "tolerance_efficientnet_lite1.json"


@pytest.fixture(scope="module")
def unit() -> dict:
    return check_unit(json.loads(STORED.read_text()))


def test_the_plan_comes_from_the_units_last_provenance_part(unit):
    p = RU.plan(unit)
    last = RU.store_unit.provenance_parts(unit)[-1]
    assert p["commit"] == last["git_commit"]
    assert p["argv"][0] == "benchmarks/reference_tolerance.py" and p["out_dir"] == "_build/ref-tol"
    assert "python " + " ".join(p["argv"]) == last["command"]


@pytest.mark.parametrize("change, words", [
    (lambda pv: pv.update(dirty=True), "no clean commit"),
    (lambda pv: pv.update(command="bash run.sh --out-dir x"), "is not 'python <script> ...'"),
    (lambda pv: pv.update(command="python benchmarks/reference_tolerance.py --model m"), "names no --out-dir"),
])
def test_a_unit_that_cannot_be_resumed_as_it_ran_is_refused(unit, change, words):
    bad = copy.deepcopy(unit)
    for part in RU.store_unit.provenance_parts(bad):
        change(part)
    with pytest.raises(UnitError, match=re.escape(words)):
        RU.plan(bad)


def test_a_worktree_that_is_not_at_the_units_commit_is_refused(tmp_path, capsys):
    rc = RU.main([str(STORED), "--worktree", str(tmp_path)])  # exists, and is no git checkout
    assert rc == 1 and "--worktree" in capsys.readouterr().err


def test_until_is_the_next_such_utc_time_and_bad_text_names_the_option():
    now = dt.datetime(2026, 12, 7, 15, 0, tzinfo=dt.timezone.utc)
    assert RU.until_time("16:20", now) == now.replace(hour=16, minute=20)
    assert RU.until_time("14:00", now) == now.replace(day=8, hour=14)  # passed today: tomorrow's
    with pytest.raises(ValueError, match="--until 'soon'"):
        RU.until_time("soon", now)


def test_the_cpu_model_is_added_to_the_note_only_where_the_device_lacks_it(unit, monkeypatch):
    monkeypatch.setattr(RU, "cpu_model", lambda: "Some CPU 9000")
    old = copy.deepcopy(unit)
    RU.store_unit.provenance_parts(old)[-1]["device"] = "CPU (x86_64, 2 threads)"
    assert RU.note_with_cpu("idle", old) == "idle; CPU (/proc/cpuinfo): Some CPU 9000"
    RU.store_unit.provenance_parts(old)[-1]["device"] = "CPU (Some CPU 9000, 2 threads)"
    assert RU.note_with_cpu("idle", old) == "idle"


def test_a_grown_unit_is_stored_once(unit, tmp_path):
    if not all(in_history(p["git_commit"]) for p in RU.store_unit.provenance_parts(unit)):
        pytest.skip("needs the git history that holds the unit's commits (not a shallow clone)")
    older, _ = without_last(unit)
    stored = tmp_path / "stored" / STORED.name
    stored.parent.mkdir()
    stored.write_text(json.dumps(older))
    work = tmp_path / "work" / STORED.name
    work.parent.mkdir()
    work.write_text(STORED.read_text())
    assert RU.store_if_grown(work, stored, 29, "test", commit=False)
    assert json.loads(stored.read_text())["cells"].keys() == unit["cells"].keys()
    assert not RU.store_if_grown(work, stored, 29, "test", commit=False)  # nothing new the second time


class FakeRun:
    """A Popen stand-in that lives for ``polls`` polls and then exits with ``rc``."""

    def __init__(self, polls: int, rc: int = 0):
        self.left, self.rc, self.returncode, self.terminated = polls, rc, None, False

    def poll(self):
        self.left -= 1
        if self.left < 0:
            self.returncode = self.rc
        return self.returncode

    def terminate(self):
        self.terminated, self.returncode = True, -15

    def wait(self):
        return self.returncode


def test_the_run_is_stopped_at_the_first_photo_stored_after_until():
    clock = iter(dt.datetime(2026, 12, 7, 16, m, tzinfo=dt.timezone.utc) for m in (10, 19, 25))
    stores = iter([True, False, True, True])  # photos at 16:10 and 16:19 (before --until), then one at 16:25
    run = FakeRun(polls=10)
    rc = RU.follow(run, lambda: next(stores), dt.datetime(2026, 12, 7, 16, 20, tzinfo=dt.timezone.utc), 0,
                   now=lambda: next(clock))
    assert rc == 0 and run.terminated and run.left == 10 - 4


def test_a_run_that_ends_is_stored_once_more_and_its_status_returned():
    calls = []
    run = FakeRun(polls=2, rc=3)
    rc = RU.follow(run, lambda: calls.append(1) or False, None, 0)
    assert rc == 3 and not run.terminated and len(calls) == 3  # two polls while alive, one after the end


def test_a_unit_not_stored_is_begun_only_with_start_and_a_stored_one_only_resumed(tmp_path, capsys):
    missing = tmp_path / "tolerance_efficientnet_lite2.json"
    assert RU.main([str(missing), "--worktree", str(tmp_path / "wt")]) == 1
    assert "--start" in capsys.readouterr().err
    with pytest.raises(UnitError, match="is stored already"):
        RU.start_plan(STORED, "python benchmarks/reference_tolerance.py --out-dir _build/ref-tol")


def test_start_runs_its_command_at_this_checkouts_head():
    head = RU._git("rev-parse", "HEAD").stdout.strip()
    p = RU.start_plan(Path("/nonexistent/tolerance_x.json"),
                      "python benchmarks/reference_tolerance.py --model efficientnet_lite2 --out-dir _build/ref-tol")
    assert p == {"commit": head, "argv": ["benchmarks/reference_tolerance.py", "--model", "efficientnet_lite2",
                                          "--out-dir", "_build/ref-tol"], "out_dir": "_build/ref-tol"}
    with pytest.raises(UnitError, match="--start: the command names no --out-dir"):
        RU.start_plan(Path("/nonexistent/tolerance_x.json"), "python benchmarks/reference_tolerance.py")


def test_a_begun_unit_is_stored_at_its_first_photo_and_not_before(unit, tmp_path):
    if not all(in_history(p["git_commit"]) for p in RU.store_unit.provenance_parts(unit)):
        pytest.skip("needs the git history that holds the unit's commits (not a shallow clone)")
    stored = tmp_path / "stored" / STORED.name
    stored.parent.mkdir()
    work = tmp_path / "work" / STORED.name
    work.parent.mkdir()
    assert not RU.store_if_grown(work, stored, 29, "test", commit=False)  # the run has written nothing yet
    work.write_text(STORED.read_text())
    assert RU.store_if_grown(work, stored, 29, "test", commit=False)
    assert json.loads(stored.read_text())["cells"].keys() == unit["cells"].keys()


def test_start_prepares_a_clean_worktree_at_head_and_copies_nothing(tmp_path):
    wt = tmp_path / "wt"
    stored = tmp_path / "tolerance_efficientnet_lite2.json"  # not stored: the run's first photo will be
    try:
        p, dst = RU.prepare(stored, wt, "python benchmarks/reference_tolerance.py --model efficientnet_lite2 "
                                        "--out-dir _build/ref-tol")
        head = RU._git("rev-parse", "HEAD").stdout.strip()
        assert p["commit"] == head == RU._git("rev-parse", "HEAD", cwd=wt).stdout.strip()
        assert dst == wt / "_build" / "ref-tol" / stored.name and not dst.exists() and dst.parent.is_dir()
    finally:
        RU._git("worktree", "remove", "--force", str(wt))
