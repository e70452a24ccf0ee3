"""Is Guided IG's completeness error discretisation or bias?  Prints a table, writes JSON.

For each n: the left-rule error of Guided IG on its own adaptive path (what the method computes), and
the same path's segments integrated with 4-point Gauss–Legendre (the path's true line integral is
f(x) − f(x') by the fundamental theorem, so this must be near 0 if the path is computed right).

    python benchmarks/gig_left_bias.py --images coffee chelsea --steps 16 64 256
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from riemannstudy import provenance as PV  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit import paths as P  # noqa: E402
from riemannkit.data import load_images  # noqa: E402
from riemannkit.models import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--images", nargs="+", default=["coffee", "chelsea"])
    ap.add_argument("--steps", nargs="+", type=int, default=[16, 64, 256])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(PV.BUILD_DIR / "benchmarks" / "gig_left_bias.json"),
                    help="name a file under results/ (results/gig_left_bias.json) to store it")
    args = ap.parse_args()
    net, size, _ = load_model(args.model, args.device)
    x, names = load_images("shipped", size=size, names=args.images)
    x, target = I.prepare(net, x, None, 16)
    tq, wq = np.polynomial.legendre.leggauss(4)
    tq, wq = torch.tensor((tq + 1) / 2, dtype=x.dtype, device=x.device), torch.tensor(wq / 2, dtype=x.dtype, device=x.device)
    rows, t0 = [], time.time()
    print(f"{'n':>5} {'image':>12} {'left-rule error':>16} {'GL4-per-segment error':>22}")
    for n in args.steps:
        grads, deltas = P.guided_ig(lambda p: I.gradients(net, p, target), x, torch.arange(n, dtype=torch.float64) / n)
        pts = torch.cat([torch.zeros_like(x)[None], deltas.cumsum(0)])
        with torch.no_grad():
            df = I.target_output(net, x, target) - I.target_output(net, torch.zeros_like(x), target)
        left = (grads * deltas).flatten(2).sum(2).sum(0)
        gl = torch.zeros_like(left)
        for i in range(n):  # 4 gradients per segment, all images at once
            p = pts[i].unsqueeze(0) + tq.view(-1, 1, 1, 1, 1) * deltas[i].unsqueeze(0)
            g = I.gradients(net, p.flatten(0, 1), target.repeat(4)).view(4, *x.shape)
            gl += (wq.view(-1, 1, 1, 1, 1) * g * deltas[i]).flatten(2).sum(2).sum(0)
        for b, name in enumerate(names):
            e_left = float((left[b] - df[b]).abs() / df[b].abs())
            e_gl = float((gl[b] - df[b]).abs() / df[b].abs())
            rows.append({"n": n, "image": name, "left_error": e_left, "gl4_segment_error": e_gl, "delta_f": float(df[b])})
            print(f"{n:>5} {name:>12} {e_left:>16.4f} {e_gl:>22.4f}", flush=True)
    prov = PV.provenance(command="python " + " ".join(sys.argv), device=x.device)
    prov["wall_s"] = round(time.time() - t0, 1)
    PV.save_json(args.out, {"benchmark": "gig_left_bias", "model": args.model, "provenance": prov, "rows": rows})
    print("wrote", args.out)


if __name__ == "__main__":
    main()
