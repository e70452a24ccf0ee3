"""tools/store_unit.py: a background run's unit is stored only when it is traceable and only adds photos."""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from riemannstudy.units import UnitError, check_unit

ROOT = Path(__file__).parent.parent
spec = importlib.util.spec_from_file_location("store_unit", ROOT / "tools" / "store_unit.py")
SU = importlib.util.module_from_spec(spec)
spec.loader.exec_module(SU)

STORED = ROOT / "results" / "reference" / "tolerance_efficientnet_lite1.json"


@pytest.fixture(scope="module")
def unit() -> dict:
    return check_unit(json.loads(STORED.read_text()))


def without_last(unit: dict) -> tuple[dict, str]:
    """The unit as it was one photo earlier (what the stored file held before the run's last photo)."""
    old = copy.deepcopy(unit)
    last = old["images"]["evaluated"].pop()
    del old["cells"][last]
    old["complete"] = False
    return check_unit(old), last


def always(_commit: str) -> bool:
    return True


def test_adds_the_new_photo_and_says_so(unit):
    old, last = without_last(unit)
    assert SU.added_photos(unit, old, always) == [last]
    message = SU.commit_message(unit, [last], "results/reference", issue=29, note="idle")
    n, planned = len(unit["cells"]), len(unit["settings"]["images"])
    assert f"{n} of {planned} photos" in message and f"this commit adds {last}" in message and "(issue 29)" in message
    assert message.startswith("Tolerance unit of efficientnet_lite1 (cpu)")
    assert f"{last}: {unit['cells'][last]['wall_s']:.1f} s, idle" in message
    assert unit["provenance"]["command"] in message and "/work/" not in message
    assert SU.added_photos(unit, None, always) == list(unit["cells"])
    spanning = copy.deepcopy(unit)  # a run resumed on another machine names both
    SU.provenance_parts(spanning)[0]["device"] = "CPU (AMD EPYC, x86_64, 2 threads)"
    assert "AMD EPYC" in SU.commit_message(spanning, [last], "results/reference")
    assert unit["provenance"]["device"] in SU.commit_message(spanning, [last], "results/reference")


def test_refuses_what_a_reader_could_not_trace(unit):
    old, _ = without_last(unit)
    dirty = copy.deepcopy(unit)
    for part in SU.provenance_parts(dirty):
        part["dirty"] = True
    with pytest.raises(UnitError, match="dirty tree"):
        SU.added_photos(dirty, old, always)
    with pytest.raises(UnitError, match="not in this history"):
        SU.added_photos(unit, old, lambda commit: False)


def test_refuses_to_drop_or_change_stored_photos(unit):
    old, last = without_last(unit)
    with pytest.raises(UnitError, match="lacks"):
        SU.added_photos(old, unit, always)
    changed = copy.deepcopy(unit)
    first = changed["images"]["evaluated"][0]
    changed["cells"][first]["p"] = 0.5 * changed["cells"][first]["p"] + 0.25
    with pytest.raises(UnitError, match=f"photos {first} differ"):
        SU.added_photos(changed, old, always)
    with pytest.raises(UnitError, match="adds no photo"):
        SU.added_photos(unit, unit, always)


def test_main_copies_the_file_and_refuses_with_a_message(unit, tmp_path, capsys, monkeypatch):
    old, last = without_last(unit)
    into = tmp_path / "stored"
    into.mkdir()
    (into / STORED.name).write_text(json.dumps(old))
    run = tmp_path / "run"
    run.mkdir()
    (run / STORED.name).write_bytes(STORED.read_bytes())
    monkeypatch.setattr(SU, "ROOT", tmp_path)
    monkeypatch.setattr(SU, "in_history", always)
    assert SU.main([str(run / STORED.name), "--into", "stored"]) == 0
    assert (into / STORED.name).read_bytes() == STORED.read_bytes()
    assert f"this commit adds {last}" in capsys.readouterr().out
    assert SU.main([str(run / STORED.name), "--into", "stored"]) == 1  # stored now: nothing to add
    assert "adds no photo" in capsys.readouterr().err
