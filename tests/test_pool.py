"""The photo pool: manifest, checksums, human labels, loader (models run on one photo only)."""
from __future__ import annotations

import csv
import shutil

import pytest
import torch

from riemannkit import data as D
from riemannkit import pool as P
from riemannkit.models import imagenet_classes

MANIFEST = P.manifest()
PHOTOS = MANIFEST["photos"]


@pytest.fixture
def pool_copy(tmp_path, monkeypatch):
    """A private copy of photos/ that a test may damage; RIEMANNKIT_PHOTOS points the loader at it."""
    dst = tmp_path / "photos"
    shutil.copytree(P.photos_dir(), dst)
    monkeypatch.setenv("RIEMANNKIT_PHOTOS", str(dst))
    yield dst
    P._manifest.cache_clear()


def test_manifest_well_formed():
    classes = imagenet_classes()
    names = [e["name"] for e in PHOTOS]
    assert len(names) == len(set(names)) >= 24
    prov = MANIFEST["provenance"]
    assert len(prov["commit"]) == 40 and prov["dirty"] is False
    assert prov["command"].startswith("python tools/make_pool_manifest.py") and prov["date"]
    assert {"torch", "numpy", "pillow"} <= set(prov["versions"])
    for e in PHOTOS:
        assert 0 <= e["label"] < 1000 and e["label_name"] == classes[e["label"]]
        assert len(e["sha256"]) == 64 and e["licence"] and e["copyright"]
        assert e["source"]["package"] and e["source"]["version"] and len(e["source"]["sha256"]) == 64
        assert e["accepted"] == sorted(P.accepted_classes(e["label"], e["synonyms"]))
        assert set(e["models"]) == set(P.LITE)
        for m in e["models"].values():
            assert m["top1_name"] == classes[m["top1"]] and 0 < m["top1_prob"] <= 1
            # "correct" is the rule in code, not a hand-set flag
            assert m["correct"] == P.is_correct(m["top1"], e["label"], e["synonyms"])
        assert e["in_pool"] == any(m["correct"] for m in e["models"].values())
    counts = MANIFEST["counts"]
    assert counts["photos"] == len(PHOTOS) and counts["bytes"] == sum(e["bytes"] for e in PHOTOS)
    assert counts["correct"] == {m: sum(e["models"][m]["correct"] for e in PHOTOS) for m in P.LITE}


def test_manifest_matches_hand_written_sources():
    with open(P.photos_dir() / "sources.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [e["name"] for e in PHOTOS]
    for r, e in zip(rows, PHOTOS):
        assert int(r["label"]) == e["label"] and (r["synonyms"] or None) == e["synonyms"]
        assert r["licence"] == e["licence"] and r["package"] == e["source"]["package"]


def test_enough_correct_photos_per_model():
    assert len(P.pool_names("efficientnet_lite0")) >= 24
    for m in P.LITE:
        assert set(P.pool_names(m)) <= set(P.pool_names())
    # photos that no model gets right stay listed but out of the pool
    flagged = [e["name"] for e in PHOTOS if not e["in_pool"]]
    assert set(P.all_names()) == set(P.pool_names()) | set(flagged)


def test_all_files_present_with_matching_sha256():
    for e in PHOTOS:
        path = P.photo_path(e["name"])
        assert P.sha256_file(path) == e["sha256"] and path.stat().st_size == e["bytes"]


def test_names_order_fixed_and_labels_aligned():
    order = [e["name"] for e in PHOTOS if e["in_pool"]]
    assert list(P.pool_names()) == order and D.pool_names() == P.pool_names()
    lite0 = P.pool_names("efficientnet-lite0")
    assert list(lite0) == [n for n in order if n in set(lite0)]
    labels = {e["name"]: e["label"] for e in PHOTOS}
    assert D.pool_labels() == [labels[n] for n in order]
    assert D.pool_labels(["zebra", "orange"]) == [340, 950]


def test_load_pool_shapes_and_range():
    x, names = D.load_images("pool", size=40, limit=3)
    assert names == list(P.pool_names()[:3]) and x.shape == (3, 3, 40, 40) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and float(x.std()) > 0.05
    y, names = D.load_images("pool", size=24, names=["zebra", "dragonfly"])  # a flagged photo loads by name
    assert names == ["zebra", "dragonfly"] and y.shape == (2, 3, 24, 24)


def test_cut_outs_composited_on_white():
    import numpy as np
    from PIL import Image

    path = P.photo_path("zebra")
    alpha = np.asarray(Image.open(path).convert("RGBA"))[..., 3]
    rgb = np.asarray(P.open_photo("zebra"))
    assert (alpha == 0).any() and (rgb[alpha == 0] == 255).all()


def test_bad_arguments_rejected():
    with pytest.raises(ValueError, match=r"names.*accepted values:.*zebra"):
        D.load_images("pool", names=["zebra", "unicorn"])
    with pytest.raises(ValueError, match="names must be a list"):
        D.load_images("pool", names="zebra")
    with pytest.raises(ValueError, match=r"model=.*accepted values: efficientnet_lite0"):
        D.pool_names("resnet50")
    with pytest.raises(ValueError, match="names"):
        D.pool_labels(["unicorn"])
    with pytest.raises(ValueError, match="limit"):
        D.load_images("pool", limit=0)
    with pytest.raises(ValueError, match="synonyms"):
        P.accepted_classes(281, "cats")


def test_synonym_rule():
    assert P.is_correct(285, 281, "tabby_cat") and P.is_correct(281, 281, None)
    assert not P.is_correct(283, 281, "tabby_cat")  # a Persian is not a tabby
    assert P.accepted_classes(22) == frozenset({22})


def test_wrong_checksum_names_file_and_fix(pool_copy):
    entry = next(e for e in PHOTOS if e["name"] == "orange")
    (pool_copy / entry["file"]).write_bytes(b"not the photo")
    with pytest.raises(ValueError, match=r"orange\.jpg has sha256 .*git checkout -- photos.*apt-get download opencv-doc"):
        D.load_images("pool", names=["orange"])


def test_missing_file_names_file_and_fix(pool_copy):
    entry = next(e for e in PHOTOS if e["name"] == "zebra")
    (pool_copy / entry["file"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"zebra\.png is missing.*tuxpaint-stamps-default"):
        D.load_images("pool", names=["zebra"])


def test_lite0_reproduces_manifest_on_one_photo():
    from riemannkit.models import load_model

    model, size, _ = load_model("efficientnet_lite0", device="cpu")
    x, _ = D.load_images("pool", size=size, names=["orange"])
    with torch.no_grad():
        p = model(x).softmax(-1)[0]
    want = next(e for e in PHOTOS if e["name"] == "orange")["models"]["efficientnet_lite0"]
    assert int(p.argmax()) == want["top1"]
    assert abs(float(p.max()) - want["top1_prob"]) < 1e-3
