"""Where the engine's time goes per call, against Captum: wall time, forward passes, convolutions and host syncs.

Adapted from the GPU run's profile of 2026-12-04 (shared/gpu/2026-12-04/profile_overhead.py: Lite0, 16 photos,
n = 16, batch 256, fp32, left rule), which found riemannkit running 147 convolutions where Captum ran 49 (two
extra forwards for f(x) and f(x')) and 14 ``.item()`` host syncs against Captum's 1.  For each contender
(riemannkit ``attribute``, riemannkit ``idgi_attribute``, Captum ``IntegratedGradients`` with and without its
convergence delta, one forward of the images) it records the median wall time of interleaved repeats, and from
one torch.profiler call: the model's forward calls and points (forward hooks), ``aten::convolution`` and
``convolution_backward`` counts, ``aten::_local_scalar_dense`` (``.item()`` / ``bool(tensor)``), CUDA stream
synchronisations and device-to-host copies, the top operators by CPU time; and riemannkit's expected passes
(``riemannkit.integrate.pass_bounds``).

    python benchmarks/profile_engine.py --device cuda --out results/profile_engine_cuda.json
    python benchmarks/profile_engine.py --dry-run --out /tmp/profile_engine.json     # CPU, tiny sizes (seconds)

``run(config)`` returns the record (the GPU suite calls it in-process); ``main`` also prints a table and writes
the JSON with provenance.  The script sets cudnn.benchmark on CUDA for every contender alike and records the
numerics it ran with; it changes no other global flag.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FULL = {"model": "efficientnet_lite0", "size": None, "images": 16, "n": 16, "batch_size": 256, "rule": "left",
        "dtype": "fp32", "repeats": 5, "warmup": 2, "idgi": True, "random_weights": True}
DRY = {**FULL, "size": 32, "images": 2, "n": 4, "batch_size": 8, "repeats": 1, "warmup": 1}
# Operator and runtime names counted per call (the profiler's own names).
COUNTED = ("aten::convolution", "aten::convolution_backward", "aten::_local_scalar_dense", "aten::item", "aten::is_nonzero",
           "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpyAsync", "Memcpy DtoH", "Memcpy HtoD",
           "cudaLaunchKernel", "aten::isfinite")


def numerics() -> dict:
    """The global numerics a run had (the engine sets none of them)."""
    return {"cudnn_benchmark": torch.backends.cudnn.benchmark, "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


class ForwardCounter:
    """Forward calls and points of ``model`` (a forward hook) while active."""

    def __init__(self, model: torch.nn.Module):
        self.calls: list[int] = []
        self.handle = model.register_forward_hook(lambda m, inp, out: self.calls.append(int(inp[0].shape[0])))

    def close(self) -> None:
        self.handle.remove()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def end_rows(rule: str, n: int) -> int:
    """Rows per image the engine adds to its passes for f(x) and f(x') (0, 1 or 2) in full precision."""
    from riemannkit import quadrature as Q

    a = Q.rule_nodes(rule, n)[0].numpy()
    return int(a[0] != 0) + int(a[-1] != 1)


def run(cfg: dict, device: torch.device, log=print) -> dict:
    """Time and profile each contender once per ``cfg`` (keys of FULL); returns the record."""
    import throughput as TP
    from torch.profiler import ProfilerActivity, profile

    from riemannkit import integrate as I
    from riemannkit.data import load_images
    from riemannkit.idgi import idgi_attribute

    model, size = TP.build_model(cfg["model"], device, random_weights=cfg["random_weights"])
    size = cfg["size"] or size
    photos, _ = load_images("shipped", size=size)
    b = cfg["images"]
    x = photos.repeat((b + len(photos) - 1) // len(photos), 1, 1, 1)[:b].to(device)
    target = I.predict(model, x)
    n, bs, rule = cfg["n"], cfg["batch_size"], cfg["rule"]
    amp = None if cfg["dtype"] == "fp32" else cfg["dtype"]
    fns = {"rk": lambda: I.attribute(model, x, n=n, target=target, batch_size=bs, rule=rule, amp_dtype=amp)}
    if cfg.get("idgi"):
        fns["rk_idgi"] = lambda: idgi_attribute(model, x, n=n, target=target, batch_size=bs, amp_dtype=amp)
    method = {"left": "riemann_left", "right": "riemann_right", "midpoint": "riemann_middle", "trapezoid": "riemann_trapezoid",
              "gausslegendre": "gausslegendre"}[rule]
    captum_model = TP.variant(model, device, cfg["dtype"], "contiguous")
    ig = TP.captum_ig(captum_model, "prob")
    if ig is not None:
        fns["captum"] = lambda: ig.attribute(x, target=target, n_steps=n, method=method, internal_batch_size=bs)
        fns["captum_delta"] = lambda: ig.attribute(x, target=target, n_steps=n, method=method, internal_batch_size=bs,
                                                   return_convergence_delta=True)
    fns["forward"] = lambda: model(x)
    rec: dict = {"config": dict(cfg), "device": str(device), "numerics": numerics(), "captum_available": ig is not None}
    # Wall time: warm-up, then the repeats interleaved (a drift of the machine's speed hits every contender alike).
    for _ in range(cfg["warmup"]):
        for f in fns.values():
            f()
    _sync(device)
    times: dict = {k: [] for k in fns}
    for _ in range(cfg["repeats"]):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    rec["times_s"] = times
    rec["median_ms"] = {k: round(1000 * statistics.median(v), 3) for k, v in times.items()}
    # Counts from one profiled call each.
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    rec["counts"], rec["forwards"], rec["top_ops"] = {}, {}, {}
    for k, f in fns.items():
        counter = ForwardCounter(model)
        try:
            with profile(activities=acts) as prof:
                f()
                _sync(device)
        finally:
            counter.close()
        ka = prof.key_averages()
        # aten operators by their exact name (aten::convolution is not aten::convolution_backward), runtime calls by substring
        rec["counts"][k] = {name: sum(e.count for e in ka if (e.key == name if name.startswith("aten::") else name in e.key))
                            for name in COUNTED}
        rec["forwards"][k] = {"calls": len(counter.calls), "points": sum(counter.calls), "per_call": counter.calls[:64]}
        rows = sorted(ka, key=lambda e: -e.cpu_time_total)[:12]
        rec["top_ops"][k] = [{"name": e.key, "count": e.count, "cpu_total_ms": round(e.cpu_time_total / 1000, 3),
                              "device_ms": round(getattr(e, "device_time_total", 0) / 1000, 3)} for e in rows]
    ends = end_rows(rule, n) if amp is None else 0
    rec["rk_expected_passes"] = [hi - lo for lo, hi in I.pass_bounds(n * b, ends * b, bs)]
    rec["summary"] = {
        "rk_ms": rec["median_ms"]["rk"],
        "captum_ms": rec["median_ms"].get("captum"), "captum_delta_ms": rec["median_ms"].get("captum_delta"),
        "rk_vs_captum": (rec["median_ms"]["captum"] / rec["median_ms"]["rk"]) if ig is not None else None,
        "rk_vs_captum_delta": (rec["median_ms"]["captum_delta"] / rec["median_ms"]["rk"]) if ig is not None else None,
        "rk_forwards": rec["forwards"]["rk"]["calls"], "rk_passes_expected": len(rec["rk_expected_passes"]),
        "rk_forward_points": rec["forwards"]["rk"]["points"], "rk_syncs": rec["counts"]["rk"]["aten::_local_scalar_dense"],
        "rk_stream_syncs": rec["counts"]["rk"]["cudaStreamSynchronize"],
        "captum_forwards": rec["forwards"].get("captum", {}).get("calls"),
        "captum_syncs": rec["counts"].get("captum", {}).get("aten::_local_scalar_dense"),
    }
    log(f"profile {cfg['model']} {cfg['dtype']} n={n} batch={bs} rule={rule}: " +
        ", ".join(f"{k} {v} ms" for k, v in rec["median_ms"].items()) +
        f"; rk forwards {rec['summary']['rk_forwards']} (expected {rec['summary']['rk_passes_expected']}), "
        f"rk syncs {rec['summary']['rk_syncs']}")
    return rec


def markdown(rec: dict) -> str:
    """The record as a Markdown table: one row per contender."""
    lines = ["| contender | median ms | forwards | points | convolutions | _local_scalar_dense | stream syncs |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for k, ms in rec["median_ms"].items():
        c, fw = rec["counts"][k], rec["forwards"][k]
        lines.append(f"| {k} | {ms:.2f} | {fw['calls']} | {fw['points']} | {c['aten::convolution']} | "
                     f"{c['aten::_local_scalar_dense']} | {c['cudaStreamSynchronize']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", default=FULL["model"])
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--rule", default=FULL["rule"], choices=["left", "right", "midpoint", "trapezoid", "gausslegendre"])
    ap.add_argument("--dtype", default=FULL["dtype"], choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dry-run", action="store_true", help="CPU, 32 px, 2 images, n = 4, batch 8, one repeat: the code path in seconds")
    ap.add_argument("--out", default=None, help="default: _build/benchmarks/profile_engine_<device>.json; name a file under results/ to store it")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    from riemannstudy import provenance as PV
    from riemannkit.models import resolve_device

    cfg = dict(DRY if args.dry_run else FULL)
    cfg.update({k: v for k, v in (("model", args.model), ("images", args.images), ("n", args.n), ("batch_size", args.batch_size),
                                  ("rule", args.rule), ("dtype", args.dtype), ("repeats", args.repeats)) if v is not None})
    device = torch.device("cpu") if args.dry_run else resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the fastest kernels for fixed shapes, for every contender alike
    prov = PV.provenance(command="python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), device=device)
    rec = run(cfg, device)
    table = markdown(rec)
    print(table)
    out = args.out or PV.BUILD_DIR / "benchmarks" / f"profile_engine_{device.type}.json"  # results/ only when named
    PV.save_json(out, {"benchmark": "profile_engine", "provenance": prov, "dry_run": args.dry_run, **rec,
                         "table_markdown": table}, overwrite=args.overwrite)
    print("wrote", out)


if __name__ == "__main__":
    main()
