"""How an attribution's cost grows with the number of images, n and the input size, against the limit.

For each EfficientNet-Lite model (Lite0 224 px, Lite1 240 px, Lite2 260 px): the limit (the fastest bare
forward+backward of a pass of --batch-size points: eager or channels_last) and riemannkit's IG (left rule)
for every (images, n) in the grid: seconds (wall and process CPU), points/s, and the ratio to the limit.
An attribution of B images with n nodes costs B·n gradient points plus one forward of the B images (f(x)).

    python benchmarks/scaling.py --images 1 4 --steps 8 32 --threads 1 --device cpu --out results/scaling_cpu.json

Process CPU seconds are reported beside wall seconds: on a shared CPU they depend far less on the other load.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput as TP  # noqa: E402
from riemannstudy import provenance as PV  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit.data import load_images  # noqa: E402
from riemannkit.models import LITE_MODELS, load_model, resolve_device  # noqa: E402


def timed_cpu(fn, device, repeats: int, warmup: int) -> tuple[list[float], list[float]]:
    """(wall seconds, process CPU seconds) of each of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    TP.sync(device)
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        TP.sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", nargs="+", default=list(LITE_MODELS), choices=list(LITE_MODELS))
    ap.add_argument("--images", nargs="+", type=int, default=[1, 4])
    ap.add_argument("--steps", nargs="+", type=int, default=[8, 32])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--out", default=None, help="default: _build/benchmarks/scaling_<device>.json; name a file under results/ to store it")
    args = ap.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start, rows, limits = time.time(), [], []
    for name in args.models:
        model, size, _ = load_model(name, device)
        photos, _ = load_images("shipped", size=size)
        bs = args.batch_size
        xb = photos.repeat((bs + len(photos) - 1) // len(photos), 1, 1, 1)[:bs].to(device)
        tb = I.predict(model, xb)
        lim = TP.measure_limit(model, xb, tb, device, "fp32", ["eager", "channels_last"], args.repeats, args.warmup, "prob")
        limits.append({"model": name, "input_size": size, "batch_size": bs, **lim})
        print(f"{name} ({size} px): limit {lim['points_per_s']:.2f} pts/s ({lim['best_mode']})", flush=True)
        for b in args.images:
            x, t = xb[:b], tb[:b]
            for n in args.steps:
                wall, cpu = timed_cpu(lambda: I.attribute(model, x, n=n, target=t, batch_size=bs), device, args.repeats, args.warmup)
                s = statistics.median(wall)
                row = {"model": name, "input_size": size, "images": b, "n": n, "batch_size": bs, "wall_s": wall, "cpu_s": cpu,
                       "median_wall_s": s, "median_cpu_s": statistics.median(cpu), "gradient_points": b * n,
                       "points_per_s": b * n / s, "rk_vs_limit": (b * n / s) / lim["points_per_s"]}
                rows.append(row)
                print(f"  images {b} n {n}: {s:.2f} s wall, {row['median_cpu_s']:.2f} s CPU, {row['points_per_s']:.2f} pts/s = "
                      f"{row['rk_vs_limit']:.2f} of the limit", flush=True)
    prov = PV.provenance(command="python " + " ".join(sys.argv), device=device)
    prov["wall_s"] = round(time.time() - t_start, 1)
    record = {"benchmark": "scaling", "provenance": prov, "config": vars(args), "limits": limits, "rows": rows,
              "notes": "rk_vs_limit = riemannkit's gradient points/s over the limit's (the f(x) forward and the short last "
                       "pass are riemannkit's overhead); fp32, IG, left rule, black baseline, the shipped photos."}
    out = args.out or PV.BUILD_DIR / "benchmarks" / f"scaling_{device.type}.json"  # results/ only when named
    PV.save_json(out, record)
    print("wrote", out)


if __name__ == "__main__":
    main()
