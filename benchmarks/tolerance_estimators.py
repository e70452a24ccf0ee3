"""Which error estimate for attribution to a tolerance: the design experiment behind riemannkit.tolerance.

For one photo and path, g(α) = ∇f(γ(α)) ⊙ γ'(α) is computed once at the uniform nodes i/N (N = --grid), and adaptive
Simpson is replayed on those nodes (panels no narrower than 4/N) with three error estimates of a panel set:

  sum       Σ_j ‖E_j‖ / ‖Q‖                          (E = h/12 (2 g_m − g_a − g_b): the norm-sum bound),
  max2      2 max(‖Σ_j E_j‖, (Σ_j ‖E_j‖²)^½) / ‖Q‖   (riemannkit.tolerance: calibrated on independent increments),
  lyness    Σ over 5-node panels of ‖S₂ − S₁‖/15 / ‖Q‖  (Lyness's asymptotic factor, 4 panels of 5 nodes to start),

each stopping when its estimate and the completeness error are both <= tol.  Printed per estimate and tol: nodes
used, the error against Boole's rule on all N + 1 nodes (whose own error shows as the distance between Simpson on
N + 1 and on N/2 + 1 nodes, printed first), and the estimate; then the uniform rules' errors and how rough g is
(median ‖Δ²g‖ / ‖Δg‖: √2 for independent increments).  The JSON holds the same table with provenance.

    python benchmarks/tolerance_estimators.py --photo bee --path ig --device cpu --out _build/tolerance_estimators_bee_ig.json
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from riemannstudy import provenance as PV  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit import models as MO  # noqa: E402
from riemannkit import validate as V  # noqa: E402

TOLS = (0.1, 0.05, 0.02, 0.01)


def grid_integrand(net, x: torch.Tensor, path: str, n: int, batch_size: int) -> tuple[torch.Tensor, np.ndarray]:
    """g at i/n, i = 0 … n, flattened (n + 1, features) in float32 (1025 × 224² × 3 floats: 0.6 GB), and f there."""
    plan = I.make_plan(net, path, engine=I.Engine(batch_size=batch_size), nodes=torch.arange(n + 1, dtype=torch.float64) / n)
    checks = V.DeviceChecks()
    x, plan = plan.prepare(x, None, checks, total_per_image=n + 1)
    g, f = torch.empty(n + 1, x[0].numel(), dtype=torch.float32), np.empty(n + 1)
    for p in I.passes(plan, x, checks=checks):
        g[p.start : p.stop] = p.integrand.float().flatten(1).cpu()
        f[p.start : p.stop] = p.f.double().cpu().numpy()
    checks.settle()
    return g, f


def _simpson(g: torch.Tensor, idx: np.ndarray, h: float) -> torch.Tensor:
    w = np.full(len(idx), 2.0)
    w[1::2], w[0], w[-1] = 4.0, 1.0, 1.0
    return torch.tensordot(torch.from_numpy(w * h / 3).to(g.dtype), g[idx], 1)


def replay(g: torch.Tensor, f: np.ndarray, estimate: str, tols, theta: float = 0.5, start: int = 8) -> dict:
    """Adaptive Simpson on the grid's nodes with one of the estimates; {tol: (nodes, error vs ref, estimate, completeness)}."""
    n = g.shape[0] - 1
    five = estimate == "lyness"
    k = 4 if five else 2  # nodes per panel − 1
    width = n // (start // 2 if five else start)
    panels = [(i * width, (i + 1) * width) for i in range(n // width)]
    df = f[-1] - f[0]

    def est(a, b):
        h, q = (b - a) / n, (b - a) // k
        v = [g[a + j * q] for j in range(k + 1)]
        if five:
            s1, s2 = h / 6 * (v[0] + 4 * v[2] + v[4]), h / 12 * (v[0] + 4 * v[1] + 2 * v[2] + 4 * v[3] + v[4])
            return s2, (s2 - s1) / 15, float(s2.sum()) - (f[b] - f[a])
        s = h / 6 * (v[0] + 4 * v[1] + v[2])
        return s, h / 12 * (2 * v[1] - v[0] - v[2]), float(s.sum()) - (f[b] - f[a])

    info = {p: est(*p) for p in panels}
    out, tols = {}, sorted(tols, reverse=True)
    while len(out) < len(tols):
        q = sum(v[0] for v in info.values())
        qn = float(q.norm())
        norms = np.array([float(v[1].norm()) for v in info.values()])
        if estimate == "max2":
            eps = 2 * max(float(sum(v[1] for v in info.values()).norm()), float(np.sqrt((norms**2).sum()))) / qn
            eta = (2 * norms / qn) ** 2 + (np.array([v[2] for v in info.values()]) / df) ** 2
        else:
            eps = norms.sum() / qn
            eta = norms / qn + np.abs(np.array([v[2] for v in info.values()])) / abs(df)
        comp = abs(float(q.sum()) - df) / abs(df)
        nodes = {a + j * ((b - a) // k) for a, b in info for j in range(k + 1)}
        for t in tols:
            if t not in out and eps <= t and comp <= t:
                out[t] = {"nodes": len(nodes), "q": q, "estimate": eps, "completeness": comp}
        keys = list(info)
        order = [keys[j] for j in np.argsort(-eta) if keys[j][1] - keys[j][0] >= 2 * k]
        if not order:
            for t in tols:
                out.setdefault(t, {"nodes": len(nodes), "q": q, "estimate": eps, "completeness": comp, "grid_limit": True})
            break
        marked, acc = [], 0.0
        for p in order:
            marked.append(p)
            acc += eta[keys.index(p)]
            if acc >= theta * eta.sum():
                break
        for a, b in marked:
            del info[(a, b)]
            m = (a + b) // 2
            info[(a, m)], info[(m, b)] = est(a, m), est(m, b)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0", choices=tuple(MO.LITE_MODELS))
    ap.add_argument("--photo", default="bee", help="a pool photo")
    ap.add_argument("--path", default="ig", choices=("ig", "blurig"))
    ap.add_argument("--grid", type=int, default=1024, help="N: g at i/N (a power of 2)")
    ap.add_argument("--tols", nargs="+", type=float, default=list(TOLS))
    ap.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", help="JSON file (default: print only)")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists (stored runs are evidence)")
    args = ap.parse_args(argv)
    command = "python benchmarks/tolerance_estimators.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.out:
        PV.refuse_overwrite(Path(args.out), args.overwrite)  # before the compute, not after
    dev = MO.resolve_device(args.device)
    prov = PV.provenance(command, dev)
    net, size, _ = MO.load_model(args.model, dev)
    x, _ = D.load_images("pool", size=size, names=[args.photo])
    g, f = grid_integrand(net, x.to(dev), args.path, args.grid, args.batch_size)
    n = args.grid
    s1, s2 = _simpson(g, np.arange(0, n + 1), 1 / n), _simpson(g, np.arange(0, n + 1, 2), 2 / n)
    ref = (16 * s1 - s2) / 15  # Boole on all nodes
    rn = float(ref.norm())
    rel = lambda a: float((a - ref).norm()) / rn  # noqa: E731
    d1n = (g[1:] - g[:-1]).norm(dim=1)
    d2n = torch.stack([(g[i + 2] - 2 * g[i + 1] + g[i]).norm() for i in range(n - 1)])
    rec = {"benchmark": "tolerance_estimators", "model": args.model, "photo": args.photo, "path": args.path, "grid": n,
           "reference": "Boole on the n + 1 nodes", "reference_check_simpson_n_vs_n2": float((s1 - s2).norm()) / rn,
           "roughness_second_over_first": float((d2n / d1n[:-1].clamp_min(1e-30)).median()),
           "uniform": {}, "adaptive": {}}
    for m in (m for m in (16, 32, 64, 128, 256, 512) if m < n):
        rec["uniform"][f"left {m}"] = rel(g[np.arange(0, n, n // m)].mean(0))
        rec["uniform"][f"simpson {m + 1}"] = rel(_simpson(g, np.arange(0, n + 1, n // m), 1 / m))
    for estimate in ("sum", "max2", "lyness"):
        res = replay(g, f, estimate, args.tols)
        rec["adaptive"][estimate] = {str(t): {"nodes": v["nodes"], "error": rel(v["q"]), "estimate": v["estimate"],
                                             "completeness": v["completeness"], "grid_limit": v.get("grid_limit", False)}
                                    for t, v in res.items()}
    print(f"{args.photo} {args.path}: reference check (Simpson {n + 1} vs {n // 2 + 1}) {rec['reference_check_simpson_n_vs_n2']:.4f}; "
          f"median ‖Δ²g‖/‖Δg‖ {rec['roughness_second_over_first']:.2f}")
    print("uniform: " + ", ".join(f"{k} {v:.4f}" for k, v in rec["uniform"].items()))
    print("| estimate | tol | nodes | error vs reference | estimate | completeness |\n|---|---:|---:|---:|---:|---:|")
    for estimate, rows in rec["adaptive"].items():
        for t, v in rows.items():
            print(f"| {estimate} | {t} | {v['nodes']}{' (grid limit)' if v['grid_limit'] else ''} | {v['error']:.4f} | "
                  f"{v['estimate']:.4f} | {v['completeness']:.4f} |")
    if args.out:
        PV.save_json(args.out, {**rec, "provenance": prov}, overwrite=args.overwrite)
        print("wrote", args.out)
    return rec


if __name__ == "__main__":
    main()
