"""Cost of BlurIG's path: the zero-padded Gaussian blur and its σ-derivative, as banded-matrix products
(riemannkit.paths.gaussian_blur) against the depthwise convolutions it replaced; prints a table, writes JSON.

    python benchmarks/blur_path.py --images 5 --steps 16 --size 224 --device cpu
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from riemannstudy import provenance as PV  # noqa: E402
from riemannkit import blur as B, paths as P  # noqa: E402
from riemannkit.models import resolve_device  # noqa: E402


def conv_separable(img: torch.Tensor, kh: torch.Tensor, kw: torch.Tensor) -> torch.Tensor:
    """The replaced implementation: depthwise convolutions of (A, N, H, W) images with per-A kernels."""
    a, n, h, w = img.shape
    kk, r = kh.shape[1], kh.shape[1] // 2
    flat = img.reshape(1, a * n, h, w)
    wh = kh.repeat_interleave(n, 0).view(a * n, 1, kk, 1)
    ww = kw.repeat_interleave(n, 0).view(a * n, 1, 1, kk)
    out = F.conv2d(F.pad(flat, (0, 0, r, r)), wh, groups=a * n)
    return F.conv2d(F.pad(out, (r, r, 0, 0)), ww, groups=a * n).view(a, n, h, w)


def conv_blur(x: torch.Tensor, sigmas: torch.Tensor, support_sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    b, c, h, w = x.shape
    full = max(1, int(math.ceil(4.0 * support_sigma)))
    radius = min(full, max(h, w) - 1)
    k, dk = B.gauss_kernels(sigmas.to(x), full)
    k, dk = k[:, full - radius : full + radius + 1], dk[:, full - radius : full + radius + 1]
    img = x.reshape(1, b * c, h, w).expand(len(sigmas), -1, -1, -1)
    shape = (len(sigmas), b, c, h, w)
    return conv_separable(img, k, k).reshape(shape), (conv_separable(img, dk, k) + conv_separable(img, k, dk)).reshape(shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--max-sigma", type=float, default=P.BLUR_MAX_SIGMA)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None, help="default: _build/benchmarks/blur_path_<device>.json; name a file under results/ to store it")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    x = torch.rand(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(dev)
    sig = (1 - torch.arange(args.steps, dtype=torch.float64) / args.steps) * args.max_sigma
    fns = {"banded matrices (riemannkit)": lambda: P.gaussian_blur(x, sig, support_sigma=args.max_sigma),
           "depthwise convolution (before)": lambda: conv_blur(x, sig, args.max_sigma)}
    times = {k: [] for k in fns}
    outs = {k: f() for k, f in fns.items()}  # warm-up, and the two results compared
    for _ in range(args.repeats):
        for k, f in fns.items():
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            f()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times[k].append(time.perf_counter() - t0)
    (a, da), (b, db) = outs.values()
    diff = max(float((a - b).abs().max()), float((da - db).abs().max()))
    pts = args.images * args.steps
    lines = ["| implementation | seconds for the points (median) | points/s |", "|---|---:|---:|"]
    lines += [f"| {k} | {statistics.median(v):.3f} | {pts / statistics.median(v):.1f} |" for k, v in times.items()]
    table = "\n".join(lines) + f"\n\n{pts} points ({args.images} images x {args.steps} σ), {args.size} px, max σ {args.max_sigma}; max |difference| {diff:.1e}"
    print(table)
    prov = PV.provenance(command="python " + " ".join(sys.argv), device=dev)
    out = args.out or PV.BUILD_DIR / "benchmarks" / f"blur_path_{dev.type}.json"  # results/ only when named
    PV.save_json(out, {"benchmark": "blur_path", "provenance": prov, "config": vars(args), "times_s": times,
                      "max_abs_difference": diff, "table_markdown": table})
    print("wrote", out)


if __name__ == "__main__":
    main()
