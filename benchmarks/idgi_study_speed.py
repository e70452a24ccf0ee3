"""The IDGI study's cost per photo: benchmarks/reference_idgi.py's cells computed a group of photos at a time, and where
the time goes (attributions, insertion/deletion, PIC's model passes, WebP, MS-SSIM).

For each --group-sizes G the photos go through the script's photo_cells G at a time (a tree without photo_cells, such
as 7aa0c9e, runs its photo_cell photo by photo: copy this file into it for the 'before' of a comparison); the table
gives wall seconds per photo and, with --profile, cProfile's cumulative seconds of the stages (their sum can exceed the
wall time where WebP encodes overlap the device's work).  --compare checks every group size's cells against the first
one's (put 1 first: the photo-by-photo cells) and against --reference cells that --save-cells wrote in another tree,
and reports the largest differences per metric.

    python benchmarks/idgi_study_speed.py --names chelsea coffee --steps 8 --group-sizes 1 2 --profile --device cpu
    python benchmarks/idgi_study_speed.py --images pool --photos 39 --steps 128 --group-sizes 39 --device cuda
    python benchmarks/idgi_study_speed.py --dry-run --out /tmp/speed.json   # 1 shipped photo at 161 px, 2 steps (a CPU test)

The second line is issue 25's target: a 39-photo EfficientNet-Lite0 unit at 128 steps in at most 30 s on an H200.
"""
from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import math
import pstats
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from riemannstudy import provenance as PV  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannkit import evaluation as EV  # noqa: E402
from riemannkit import models as MO  # noqa: E402

DRY_RUN = {"names": ["chelsea"], "size": 161, "steps": 2, "insertion_steps": 4, "group_sizes": [1]}
CUDA_BATCH = 256  # the GPU suite's reference batch
# cProfile's stages: (label, functions whose cumulative time it is, only when called from these callers (None: any)).
STAGES = (
    ("attributions", ("jpeg_stability_table",), None),
    ("insertion/deletion", ("insertion_deletion",), None),
    ("PIC passes", ("_target_probs",), ("pic_curves", "pic_curves_axes")),
    ("WebP wait", ("webp_bytes", "webp_sizes", "prefetch"), ("pic_curves", "pic_curves_axes", "prefetch_webp_bytes")),
    ("MS-SSIM", ("ms_ssim",), None),
)


def reference_script():
    """benchmarks/reference_idgi.py of this tree, as a module."""
    spec = importlib.util.spec_from_file_location("reference_idgi", ROOT / "benchmarks" / "reference_idgi.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def study_settings(steps: int, insertion_steps: int) -> dict:
    """The settings photo_cell(s) read, as reference_idgi.py sets them (the study's)."""
    return {"steps": steps, "rule": "left", "path_kwargs": EV.STUDY_PATH_KWARGS, "insertion_steps": insertion_steps,
            "insertion_start": "black", "pic_start": "blur", "reduce": "sum", "min_pred_value": 0.3, "jpeg_quality": 75,
            "seed": 0}


def children_cpu_s() -> float | None:
    """CPU seconds of this process's live child processes (the WebP pool's workers), from /proc; None off Linux."""
    import os

    me, total = str(os.getpid()), 0.0
    try:
        tick = os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:  # ppid
                total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    except (OSError, ValueError, AttributeError):
        return None
    return total


def compute_cells(ref, net, x, names, settings, group: int, batch_size: int, metric_batch_size: int | None) -> list[dict]:
    """The cells of all photos, ``group`` at a time (photo by photo where the script has no photo_cells)."""
    cells = []
    for g0 in range(0, len(names), group):
        xs, ns = x[g0 : g0 + group], names[g0 : g0 + group]
        if hasattr(ref, "photo_cells"):
            cells += ref.photo_cells(net, xs, ns, settings, batch_size, metric_batch_size)
        else:
            cells += [ref.photo_cell(net, xs[i : i + 1], n, settings, batch_size) for i, n in enumerate(ns)]
    return cells


def stage_seconds(prof: cProfile.Profile) -> dict[str, float]:
    """Cumulative seconds per stage of :data:`STAGES` from a profile of one run."""
    stats = pstats.Stats(prof).stats
    out = {}
    for label, funcs, callers in STAGES:
        total = 0.0
        for (file, _, fn), (_, _, _, ct, by) in stats.items():
            if fn not in funcs or "riemannkit" not in file:
                continue
            if callers is None:
                total += ct
            else:
                total += sum(c[3] for (_, _, caller), c in by.items() if caller in callers)
        out[label] = round(total, 2)
    return out


def differences(new, old, where: tuple = (), out: dict | None = None) -> dict:
    """{(section, metric[, key]): {'abs', 'rel', 'count', 'mismatch'}}: the largest differences between two cells."""
    out = {} if out is None else out
    if isinstance(old, dict):
        for k in old:
            differences(new.get(k) if isinstance(new, dict) else None, old[k], where + (k,), out)
        return out
    if isinstance(old, list):
        for i, v in enumerate(old):
            differences(new[i] if isinstance(new, list) and i < len(new) else None, v, where, out)
        return out
    # cell → section (scores/pic/curves/jpeg/...), method, metric[, point key]
    key = "/".join(str(p) for p in ((where[0], *where[2:4]) if where and where[0] in ("scores", "pic", "curves", "jpeg") else where))
    row = out.setdefault(key, {"abs": 0.0, "rel": 0.0, "count": 0, "mismatch": 0})
    row["count"] += 1
    if isinstance(old, float) and isinstance(new, float):
        if math.isnan(old) or math.isnan(new):
            row["mismatch"] += math.isnan(old) != math.isnan(new)
            return out
        d = abs(new - old)
        row["abs"] = max(row["abs"], d)
        row["rel"] = max(row["rel"], d / abs(old) if old else (0.0 if d == 0 else math.inf))
    elif new != old or type(new) is not type(old):
        row["mismatch"] += 1
    return out


def compare(cells: dict, ref_cells: dict) -> dict:
    """Largest differences over the photos both hold (wall_s left out)."""
    diff: dict = {}
    common = [n for n in ref_cells if n in cells]
    for n in common:
        differences({k: v for k, v in cells[n].items() if k != "wall_s"}, {k: v for k, v in ref_cells[n].items() if k != "wall_s"}, (), diff)
    return {"photos": common, "by_metric": diff,
            "max_rel": max((r["rel"] for r in diff.values()), default=0.0), "mismatches": sum(r["mismatch"] for r in diff.values())}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", default="efficientnet_lite0", choices=tuple(MO.LITE_MODELS))
    ap.add_argument("--images", default="shipped", choices=("shipped", "pool"))
    ap.add_argument("--names", nargs="+", help="photo names (default: the first --photos of --images)")
    ap.add_argument("--photos", type=int, default=2, help="how many photos when --names is not given")
    ap.add_argument("--size", type=int, help="input size (default: the model's; 161 px is the smallest MS-SSIM takes)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--insertion-steps", type=int, default=20)
    ap.add_argument("--group-sizes", nargs="+", type=int, help="photos computed together; 1 = photo by photo "
                    "(default: 1 2 on a CPU, all the photos on CUDA)")
    ap.add_argument("--batch-size", type=int, help="points per forward/backward of the attributions (default: 16 on a CPU, "
                    f"{CUDA_BATCH} on CUDA)")
    ap.add_argument("--metric-batch-size", type=int, help="images per forward pass of the curves (default: the script's: "
                    "--batch-size on a CPU, its CUDA_METRIC_BATCH on CUDA)")
    ap.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--warmup", action="store_true", help="compute the first photo's cell once, untimed, before the runs "
                    "(kernel selection, the WebP pool's start)")
    ap.add_argument("--profile", action="store_true", help="cProfile each run: seconds per stage")
    ap.add_argument("--compare", action="store_true", help="compare each group size's cells with the first one's")
    ap.add_argument("--reference", help="a JSON of cells (--save-cells of another tree) to compare with")
    ap.add_argument("--save-cells", help="write the first group size's cells to this JSON")
    ap.add_argument("--out", help="JSON record (default: _build/idgi_study_speed_<device>.json; results/ only when named)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    ap.add_argument("--dry-run", action="store_true", help=f"{DRY_RUN}")
    args = ap.parse_args(argv)
    command = "python benchmarks/idgi_study_speed.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.dry_run:
        args.images, args.names, args.size = "shipped", args.names or DRY_RUN["names"], args.size or DRY_RUN["size"]
        args.steps, args.insertion_steps, args.group_sizes = DRY_RUN["steps"], DRY_RUN["insertion_steps"], DRY_RUN["group_sizes"]
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = MO.resolve_device(args.device)
    ref = reference_script()
    if hasattr(ref, "C"):
        ref.C.encoder_pool()  # fork the WebP encoders before the model fills the memory, as the script does
    net, size, _ = MO.load_model(args.model, dev)
    size = args.size or size
    names = list(args.names or (D.pool_names(args.model) if args.images == "pool" else D.shipped_names())[: args.photos])
    x, _ = D.load_images(args.images, size=size, names=names)
    cuda = dev.type == "cuda"
    args.batch_size = args.batch_size or (CUDA_BATCH if cuda else 16)
    if args.metric_batch_size is None and cuda and hasattr(ref, "CUDA_METRIC_BATCH"):
        args.metric_batch_size = ref.CUDA_METRIC_BATCH
    args.group_sizes = args.group_sizes or ([len(names)] if cuda else [1, 2])
    settings = study_settings(args.steps, args.insertion_steps)
    grouped = hasattr(ref, "photo_cells")
    print(f"{args.model} at {size} px on {PV.device_name(dev)}, {len(names)} photos, {args.steps} steps, "
          f"{'photo_cells' if grouped else 'photo_cell (photo by photo: this tree has no photo_cells)'}", flush=True)
    if args.warmup:
        compute_cells(ref, net, x[:1], names[:1], settings, 1, args.batch_size, args.metric_batch_size)
    counts = getattr(getattr(ref, "C", None), "COUNTS", None)  # the WebP pool's counters (trees with photo_cells)
    rows, first = [], None
    for group in args.group_sizes:
        webp0 = dict(counts) if counts is not None else None
        prof = cProfile.Profile() if args.profile else None
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        c0, k0, t0 = time.process_time(), children_cpu_s(), time.perf_counter()
        if prof:
            prof.enable()
        cells = compute_cells(ref, net, x, names, settings, group, args.batch_size, args.metric_batch_size)
        if prof:
            prof.disable()
        wall, cpu, k1 = time.perf_counter() - t0, time.process_time() - c0, children_cpu_s()
        cells = dict(zip(names, cells))
        row = {"group_size": group if grouped else 1, "photos": len(names), "wall_s": round(wall, 2),
               "per_photo_s": round(wall / len(names), 2), "process_cpu_s": round(cpu, 2),
               "workers_cpu_s": None if k0 is None or k1 is None else round(k1 - k0, 2)}
        if counts is not None:
            # Images encoded and sizes returned: fewer encodes than sizes where a photo's images repeat across methods.
            row["webp_images"] = {k: counts[k] - webp0[k] for k in ("submitted", "returned")}
        if prof:
            row["stages_s"] = stage_seconds(prof)
            row["stages_s"]["other"] = round(wall - sum(row["stages_s"].values()), 2)
        if args.compare and first is not None:
            row["vs_first"] = compare(cells, first)
        if args.reference:
            row["vs_reference"] = compare(cells, json.loads(Path(args.reference).read_text())["cells"])
        rows.append(row)
        first = cells if first is None else first
        stages = "  ".join(f"{k} {v:.1f}" for k, v in row.get("stages_s", {}).items())
        cmp_ = "".join(f"  {k}: max rel diff {row[k]['max_rel']:.1e}, {row[k]['mismatches']} mismatches"
                       for k in ("vs_first", "vs_reference") if k in row)
        print(f"group {group:>3}: {row['wall_s']:8.1f} s, {row['per_photo_s']:7.2f} s/photo, CPU {row['process_cpu_s']:.1f} s "
              f"+ workers {row['workers_cpu_s']} s  {stages}{cmp_}", flush=True)
    if args.save_cells:
        PV.save_json(args.save_cells, {"names": names, "settings": settings, "cells": first}, overwrite=True)
    prov = PV.provenance(command, dev)
    prov.pop("started_unix")
    record = {"benchmark": "idgi_study_speed", "provenance": prov, "model": args.model, "input_size": size, "images": names,
              "settings": settings, "batch_size": args.batch_size, "metric_batch_size": args.metric_batch_size,
              "threads": torch.get_num_threads(), "grouped": grouped, "warmup": args.warmup, "rows": rows,
              "numerics": {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                           "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                           "cudnn_benchmark": torch.backends.cudnn.benchmark} if cuda else None,
              "notes": "wall seconds of the cells of all photos (model loaded, WebP pool started); process_cpu_s: this "
                       "process's CPU seconds, workers_cpu_s: its child processes' (the WebP pool; 7aa0c9e encodes in "
                       "threads, counted in process_cpu_s); stages_s: cProfile cumulative seconds (WebP: hashing, "
                       "submitting and waiting for the encodes)."}
    out = args.out or str(PV.BUILD_DIR / f"idgi_study_speed_{dev.type}.json")
    PV.save_json(out, record, overwrite=args.overwrite)
    print("wrote", out)
    return record


if __name__ == "__main__":
    main()
