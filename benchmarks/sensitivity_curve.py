"""Why a photo's completeness error moves with the arithmetic: its integrand along the path, finely sampled.

For one photo of a stored Table 1 unit (its target, the softmax probability, black baseline, the unit's path), the
integrand g(α) = ∇f(γ(α)) ⊙ γ'(α) is evaluated at the k + 1 points α_j = j/k (k = 4096 by default) and at every node
that a rule with n gradient evaluations uses (riemannstudy.floor.rule_nodes_of_unit: every registered rule taking n,
left, right, midpoint, trapezoid, Gauss–Legendre plain and graded, and the RiemannOpt recipes at the unit's stored
points), in float64 (model.double()) and in float32 on the CPU, or in float32 on a GPU (--device cuda: strict float32, or --tf32 for cuDNN's and cuBLAS's TF32, PyTorch's
default for convolutions; the file then ends in .cuda.json or .cuda_tf32.json, the stored units' variant names).
Stored per dtype, from one pass over the points (riemannkit.integrate.passes, the engine):

  f        f(γ(α_j))
  h        Σ_i g_i(α_j) = d f(γ(α))/dα at α_j: what every rule sums, Σ_rule w h(node) ≈ Δf
  gprime   Algorithm 1's |g'| at α_j: mean over features of |g(α_{j+1}) − g(α_j)|·k (as schedule.per_image_derivatives)
  gsecond  mean over features of |g(α_{j+1}) − 2 g(α_j) + g(α_{j−1})|·k² (centred at α_j; j = 0 repeats j = 1)
  nodes    per rule: its nodes, weights, h at each node, Σ w h and the relative completeness error

One JSON under --out-dir (default _build/reference; results/floor only when named), rewritten after each dtype; a run
with the same settings and code resumes it, one with other settings or code stops and keeps the file (--overwrite
replaces it), and a second run on the same record is refused (its lock).

    python benchmarks/sensitivity_curve.py --photo pelican --out-dir results/floor
    python benchmarks/sensitivity_curve.py --photo pelican --device cuda --tf32 --dtypes float32 --batch-size 256
    python benchmarks/sensitivity_curve.py --dry-run --allow-dirty --out-dir /tmp/sens   # k = 64, n = 8
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import numerical_floor as NF  # noqa: E402
import reference_riemannopt as R  # noqa: E402
from riemannstudy import provenance as PV, runs as RN, units as U  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannstudy import floor as F  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit import models as MO  # noqa: E402
from riemannstudy import units as U  # noqa: E402
from riemannkit import validate as V  # noqa: E402

SCHEMA = 1
DRY_RUN = {"photo": "spaniels", "k": 64, "n": 8}
CODE_FILES = ("riemannkit/integrate.py", "riemannkit/paths.py", "riemannkit/blur.py", "riemannkit/models.py",
              "riemannkit/data.py", "riemannkit/pool.py", "riemannkit/validate.py", "riemannstudy/floor.py",
              "riemannkit/schedule.py", "benchmarks/sensitivity_curve.py", "benchmarks/numerical_floor.py")
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def curve(net, x: torch.Tensor, target: torch.Tensor, path: str, k: int, extra: np.ndarray, batch_size: int) -> dict:
    """f, h = Σ g, |g'| and |g''| (feature means) on the grid j/k, and h at the ``extra`` nodes, from one pass loop."""
    from tqdm.auto import tqdm

    grid = torch.linspace(0, 1, k + 1, dtype=torch.float64)
    nodes = torch.cat([grid, torch.as_tensor(extra, dtype=torch.float64)])
    f, h = np.empty(len(nodes)), np.empty(len(nodes))
    d1, d2 = np.zeros(k), np.zeros(k)
    tail = None  # the last two grid rows of g seen, for the differences across passes
    bar = tqdm(total=len(nodes), desc=f"{x.dtype}", leave=False)
    plan = I.make_plan(net, path, engine=I.Engine(batch_size=batch_size), nodes=nodes).replace(
        target=torch.as_tensor(target, device=x.device))
    checks = V.DeviceChecks()
    for p in I.passes(plan, x, whole_rows=True, checks=checks):
        checks.add(torch.isfinite(p.g).all(), I._not_finite)
        f[p.start : p.stop] = p.f.double().cpu().numpy()
        h[p.start : p.stop] = p.integrand.double().flatten(1).sum(1).cpu().numpy()
        if p.start <= k:
            g = p.integrand[: max(0, min(p.stop, k + 1) - p.start)]
            seq = g if tail is None else torch.cat([tail, g])
            s = p.start - (0 if tail is None else len(tail))  # grid index of seq[0]
            if len(seq) >= 2:
                d1[s : s + len(seq) - 1] = ((seq[1:] - seq[:-1]).abs().flatten(1).double().mean(1) * k).cpu().numpy()
            if len(seq) >= 3:
                d2[s + 1 : s + len(seq) - 1] = ((seq[2:] - 2 * seq[1:-1] + seq[:-2]).abs().flatten(1).double().mean(1) * k**2).cpu().numpy()
            tail = seq[-2:]
        bar.update(p.stop - p.start)
    bar.close()
    checks.settle()
    d2[0] = d2[1]
    return {"f": f[: k + 1], "h": h[: k + 1], "gprime": d1, "gsecond": d2, "h_extra": h[k + 1 :]}


def dtype_cell(net, x: torch.Tensor, target: torch.Tensor, path: str, k: int, rules: dict, batch_size: int) -> dict:
    t0 = time.time()
    extra = np.unique(np.concatenate([nodes for nodes, _ in rules.values()]))
    c = curve(net, x, target, path, k, extra, batch_size)
    delta = float(c["f"][-1] - c["f"][0])
    out = {"f": c["f"].tolist(), "h": c["h"].tolist(), "gprime": c["gprime"].tolist(), "gsecond": c["gsecond"].tolist(),
           "f_input": float(c["f"][-1]), "f_baseline": float(c["f"][0]), "nodes": {}}
    for rule, (nodes, weights) in rules.items():
        h = c["h_extra"][np.searchsorted(extra, nodes)]
        total = float(np.dot(weights, h))
        out["nodes"][rule] = {"alpha": nodes.tolist(), "weight": weights.tolist(), "h": h.tolist(), "sum": total,
                              "rel_error": abs(total - delta) / abs(delta)}
    out["wall_s"] = round(time.time() - t0, 1)
    return out


def stored_record(file: Path, settings: dict, state: dict, overwrite: bool) -> dict | None:
    """The stored record this run resumes (same schema, settings and code), None when there is none or ``overwrite``;
    any other stored file stops the run naming the difference, and is kept (stored records are evidence)."""
    if overwrite or not file.is_file():
        return None
    hint = "it is kept; pass --overwrite to replace it, or --out-dir another folder"
    try:
        prev = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SystemExit(f"{file}: the stored record does not parse ({type(err).__name__}: {err}); {hint}") from None
    stored = prev.get("settings") or {}
    diff = [f"schema: stored {prev.get('schema')!r}, this run {SCHEMA!r}"] if prev.get("schema") != SCHEMA else []
    diff += [f"settings.{k}: stored {stored.get(k)!r}, this run {settings.get(k)!r}"
             for k in sorted(set(stored) | set(settings)) if stored.get(k) != settings.get(k)]
    diff += [f"code ({k}): stored {str(prev.get('provenance', {}).get(k))[:12]}, this run {str(state.get(k))[:12]}"
             for k in U.CODE_KEYS if prev.get("provenance", {}).get(k) != state.get(k)]
    if diff:
        raise SystemExit(f"{file}: a record made with other settings or code is stored there; {hint}. It differs in: "
                         + "; ".join(diff))
    return prev


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0", choices=R.MODELS)
    ap.add_argument("--path", default="ig", choices=("ig", "blurig"), help="a closed-form path of the Table 1 units")
    ap.add_argument("--photo", default="pelican", help="a photo of the unit")
    ap.add_argument("--k", type=int, default=4096, help="grid intervals: the integrand at α = j/k, j = 0 … k")
    ap.add_argument("--n", type=int, default=32, help="gradient evaluations of the rules whose nodes are stored")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=list(DTYPES), help="in this order")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--tf32", action="store_true", help="on CUDA: TF32 convolutions and matmuls (default: strict float32)")
    ap.add_argument("--batch-size", type=int, default=16, help="points per forward/backward")
    NF.add_unit_args(ap)
    ap.add_argument("--dry-run", action="store_true", help=f"photo {DRY_RUN['photo']}, k = {DRY_RUN['k']}, n = {DRY_RUN['n']}")
    args = ap.parse_args(argv)
    command = "python benchmarks/sensitivity_curve.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.dry_run:
        args.photo, args.k, args.n = DRY_RUN["photo"], DRY_RUN["k"], DRY_RUN["n"]
    if args.k < 2 or args.n < 2 or args.threads < 1:
        raise SystemExit(f"--k and --n must be >= 2 and --threads >= 1, got {args.k}, {args.n}, {args.threads}")
    if args.tf32 and args.device != "cuda":
        raise SystemExit("--tf32 applies to --device cuda only")
    variant = "cpu" if args.device == "cpu" else ("cuda_tf32" if args.tf32 else "cuda")
    unit_rel, unit = NF.read_unit(args)
    names = unit["images"]["evaluated"]
    if args.photo not in names:
        raise SystemExit(f"--photo {args.photo!r} is not a photo of {unit_rel}; accepted values: {', '.join(names)}")
    state = {**PV.code_state(args.allow_dirty), "code_sha256": PV.code_sha256(CODE_FILES), "code_files": list(CODE_FILES)}
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32)
    net, size, _ = MO.load_model(args.model, dev)
    rules = F.rule_nodes_of_unit(unit, args.n, args.path)
    target = unit["images"]["targets"][names.index(args.photo)]
    settings = {"model": args.model, "path": args.path, "photo": args.photo, "target": target, "k": args.k, "n": args.n,
                "dtypes": list(args.dtypes), "threads": args.threads, "variant": variant, "batch_size": args.batch_size, "unit": unit_rel,
                "unit_commit": unit["provenance"]["git_commit"], "input_size": size, "dry_run": bool(args.dry_run)}
    suffix = "" if variant == "cpu" else f".{variant}"
    file = RN.reference_out_dir(args.out_dir, args.dry_run, args.allow_dirty) / f"sensitivity_{args.photo}_{args.model}{'_' + args.path if args.path != 'ig' else ''}{suffix}.json"
    with U.lock_unit(file):  # a second run on this record is refused
        prev = stored_record(file, settings, state, args.overwrite)
        cells = dict(prev["cells"]) if prev else {}
        parts = list(prev["provenance"]["parts"]) if prev else []
        part = {k: v for k, v in PV.provenance(command, dev).items() if k != "started_unix"} | state
        t0 = time.time()

        def record() -> dict:
            done = [d for d in args.dtypes if d in cells]
            ps = [*parts, {**part, "dtypes_done": done, "wall_s": round(time.time() - t0, 1)}]
            return {"benchmark": "sensitivity_curve", "schema": SCHEMA, "complete": len(done) == len(args.dtypes),
                    "settings": settings, "target": unit["target"], "baseline": unit["baseline"],
                    "grid": "alpha_j = j/k, j = 0 … k (f, h: k + 1 values; gprime, gsecond: k values at j = 0 … k − 1)",
                    "numerics": {d: {"device_type": dev.type, "dtype": d, "tf32_conv": bool(args.tf32), "tf32_matmul": bool(args.tf32),
                                     "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
                                     "deterministic": torch.are_deterministic_algorithms_enabled(), "threads": args.threads}
                                 for d in args.dtypes},
                    "cells": {d: cells[d] for d in done},
                    "provenance": {**ps[-1], "wall_s": round(sum(p["wall_s"] for p in ps), 1), "parts": ps}}

        x, _ = D.load_images(unit["settings"]["images"], size=size, names=[args.photo])
        for dtype in args.dtypes:
            if dtype in cells:
                continue
            model = net if dtype == "float32" else MO.load_model(args.model, dev)[0].to(DTYPES[dtype])
            cells[dtype] = dtype_cell(model, x.to(dev, DTYPES[dtype]), torch.tensor([target], device=dev), args.path, args.k, rules,
                                      args.batch_size)
            U.write_json_atomic(file, record())
            errs = ", ".join(f"{r} {c['rel_error']:.3g}" for r, c in cells[dtype]["nodes"].items())
            print(f"{dtype}: {cells[dtype]['wall_s']} s; relative error at n = {args.n}: {errs}", flush=True)
        U.write_json_atomic(file, record())
        return file


if __name__ == "__main__":
    main()
