"""Is a two-panel Gauss–Legendre reference stronger than plain Gauss–Legendre at equal n? (issue 29's BlurIG floor)

The tolerance study's reference is Gauss–Legendre with 4096 nodes on [0, 1]; on BlurIG its convergence check (the
distance of the 2048-node map from it) is about 0.01, as large as tol = 0.01, because BlurIG's integrand lives where
σ is small: on the Lite0 pool 90 % of Σ|g| lies beyond α = 0.87 (σ < 6.5 px of σ_max = 50), where plain
Gauss–Legendre puts about a fifth of its nodes.  ReLU6 makes g jump along the path, so every rule converges as 1/n
there and what counts is the node density where g lives.  The composite rule here puts n/8 Gauss–Legendre nodes on
[0, s] and 7n/8 on [s, 1] (s = --split), and prints the same convergence check (n/2 vs n) as the study's reference,
to compare with the plain rule's check stored in the tolerance unit for the photo (``reference_check``).
A design experiment: no chapter reads its output; the study's reference is unchanged until a run adopts it.

    python benchmarks/reference_split.py --photo chelsea --path blurig --device cpu --out _build/reference_split_chelsea.json
    python benchmarks/reference_split.py --dry-run
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import riemannkit as rk  # noqa: E402
from riemannstudy import provenance as PV, units as U  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit import models as MO  # noqa: E402
from riemannkit import quadrature as Q  # noqa: E402
from riemannkit.evaluation import map_errors  # noqa: E402

RULE = "gausslegendre_split"


def split_nodes(n: int, split: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre on [0, 1]: n // 8 nodes on [0, split], the rest on [split, 1]; weights sum to 1."""
    return Q.graded_gausslegendre(n, split)  # the registry's 'gausslegendre_graded' at split 0.85


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", default="chelsea")
    ap.add_argument("--path", default="blurig", choices=("ig", "blurig"))
    ap.add_argument("--model", default="efficientnet_lite0", choices=tuple(MO.LITE_MODELS))
    ap.add_argument("--n", type=int, default=4096, help="nodes of the composite reference (even, >= 16)")
    ap.add_argument("--split", type=float, default=0.85, help="the panel end s in (0, 1)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", help="JSON file for the record (with provenance)")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists (stored runs are evidence)")
    ap.add_argument("--dry-run", action="store_true", help="shipped chelsea at 64 px, n = 16")
    args = ap.parse_args(argv)
    command = "python benchmarks/reference_split.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.n < 16 or args.n % 2:
        raise SystemExit(f"--n must be an even number >= 16, got {args.n}")
    if not 0 < args.split < 1:
        raise SystemExit(f"--split must lie in (0, 1), got {args.split}")
    if args.out:
        PV.refuse_overwrite(Path(args.out), args.overwrite)  # before the hours of compute, not after
    dev = MO.resolve_device(args.device)
    U.set_numerics(dev, False)
    prov = PV.provenance(command, dev)
    net, size, _ = MO.load_model(args.model, dev)
    source, n = ("shipped", 16) if args.dry_run else ("pool", args.n)
    size = 64 if args.dry_run else size
    x, got = D.load_images(source, size=size, names=[args.photo])
    if list(got) != [args.photo]:
        raise SystemExit(f"load_images returned {got}, asked for {[args.photo]}")
    kw = {"max_sigma": rk.paths.BLUR_MAX_SIGMA * size / 224} if args.path == "blurig" else {}
    Q.register_rule(RULE, lambda m: split_nodes(m, args.split), max_n=2 * n)
    maps, walls = {}, {}
    try:
        for m in (n // 2, n):
            t = time.time()
            maps[m] = I.attribute(net, x.to(dev), path=args.path, rule=RULE, n=m, output="prob",
                                  batch_size=args.batch_size, **kw)
            walls[m] = round(time.time() - t, 1)
            print(f"{RULE} n = {m}: {walls[m]} s", flush=True)
    finally:
        Q.unregister_rule(RULE)
    delta = float(maps[n].f_input[0] - maps[n].f_baseline[0])
    rec = {"benchmark": "reference_split", "model": args.model, "photo": args.photo, "path": args.path, "split": args.split,
           "n": n, "input_size": size, "source": source, "rule": f"{n // 8} Gauss–Legendre nodes on [0, s], {n - n // 8} on [s, 1]",
           "check": {"n": n // 2, **map_errors(maps[n // 2].attr, maps[n].attr, delta)},
           "completeness": map_errors(maps[n].attr, maps[n].attr, delta)["completeness"], "wall_s": walls}
    print(f"{args.photo} {args.path}: composite check (n/2 vs n = {n}): map {rec['check']['map_error']:.4f}, "
          f"completeness of n {rec['completeness']:.2e}")
    if args.out:
        PV.save_json(args.out, {**rec, "provenance": prov}, overwrite=args.overwrite)
        print("wrote", args.out)
    return rec


if __name__ == "__main__":
    main()
