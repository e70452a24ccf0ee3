"""Rebuild photos/ from the Debian and PyPI packages named in photos/sources.csv.

    python tools/fetch_pool_photos.py [--debs DIR]   # Debian: apt-get download + dpkg-deb -x (no install)

Debian packages are downloaded (not installed) into a temporary folder and unpacked there; PyPI photos
are read from the installed packages.  A source file is copied byte for byte when it is small
(short side <= DERIVED_SHORT px, or long side <= MAX_SIDE px and <= MAX_BYTES); a larger one is stored as a derivative (short side
DERIVED_SHORT px, Lanczos, JPEG quality 92, no chroma subsampling) so the folder stays small; the models
see 224-260 px crops either way.  Writes photos/NAME.EXT and photos/fetched.json (package version,
source path and sha256, transform, file sha256).  Then run tools/make_pool_manifest.py.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "photos"
MAX_SIDE, MAX_BYTES, DERIVED_SHORT = 1400, 400_000, 512
PYPI = {"scikit-image": "skimage", "scikit-learn": "sklearn", "matplotlib": "matplotlib"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def debian_files(packages: set[str], work: Path) -> dict[str, tuple[Path, str]]:
    """{package: (unpacked root, version)} for each Debian package, downloaded with apt-get."""
    out = {}
    for pkg in sorted(packages):
        if not any(work.glob(f"{pkg}_*.deb")):
            subprocess.run(["apt-get", "download", "-qq", pkg], cwd=work, check=True)
        deb = max(work.glob(f"{pkg}_*.deb"))
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        root = work / "unpacked" / pkg
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        out[pkg] = (root, version)
    return out


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--debs", help="folder that keeps the downloaded .deb files (default: a temporary one)")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(PHOTOS / "sources.csv", newline="")))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.debs) if args.debs else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        deb = debian_files({r["package"] for r in rows if r["package"] not in PYPI}, work)
        fetched = {}
        for r in rows:
            pkg = r["package"]
            if pkg in PYPI:
                spec = importlib.util.find_spec(PYPI[pkg])
                src = Path(spec.origin).parent.parent / r["path"]
                version, kind = importlib.metadata.version(pkg), "pypi"
            else:
                root, version = deb[pkg]
                src, kind = root / r["path"].lstrip("/"), "debian"
            img = Image.open(src)
            w, h = img.size
            small_enough = max(w, h) <= MAX_SIDE and src.stat().st_size <= MAX_BYTES
            if min(w, h) <= DERIVED_SHORT or small_enough:
                dest = PHOTOS / f"{r['name']}{src.suffix.lower()}"
                shutil.copyfile(src, dest)
                transform = "copy"
            else:
                s = DERIVED_SHORT / min(w, h)
                small = img.convert("RGB").resize((round(w * s), round(h * s)), Image.LANCZOS)
                dest = PHOTOS / f"{r['name']}.jpg"
                small.save(dest, quality=92, subsampling=0, optimize=True)
                transform = f"short side {min(w, h)} -> {DERIVED_SHORT} px (Lanczos), JPEG q92 4:4:4, Pillow {Image.__version__}"
            fetched[r["name"]] = {
                "source": {"kind": kind, "package": pkg, "version": version, "path": r["path"],
                           "sha256": sha256(src), "bytes": src.stat().st_size, "size": [w, h]},
                "transform": transform,
                "file": dest.name,
                "sha256": sha256(dest),
                "bytes": dest.stat().st_size,
            }
            print(f"{r['name']:16s} {transform[:40]:40s} {dest.stat().st_size:8d} B  {pkg} {version}")
    keep = {v["file"] for v in fetched.values()} | {"sources.csv", "fetched.json", "manifest.json", "README.md"}
    stale = [p.name for p in PHOTOS.iterdir() if p.name not in keep]
    if stale:
        print("files in photos/ not named by sources.csv (remove them):", stale, file=sys.stderr)
    (PHOTOS / "fetched.json").write_text(json.dumps(fetched, indent=1) + "\n")
    print(f"{len(fetched)} photos, {sum(v['bytes'] for v in fetched.values())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
