"""Attribution throughput (images/s) against the model's own forward+backward limit and against Captum.

An n-step path attribution needs n gradient evaluations per image, so it cannot beat limit / n, where
the limit is the best forward+backward throughput of the bare model over every configuration tried: the
batch sizes of ``--limit-batch-sizes`` (64 … 4096 points; those that do not fit are recorded, not fatal)
and the modes eager, channels_last and torch.compile, whichever is fastest.  For each configuration
(model, method, n, dtype, layout) and pass size of ``--batch-sizes``: riemannkit's images/s, Captum's
IntegratedGradients at the same n, nodes (riemann_left) and internal_batch_size, plain and with its
convergence delta (then it also evaluates f(x) and f(x'), as riemannkit always does: equal work), and the
relative completeness error in each dtype (bf16 = torch.autocast around the model, float32 logits out).
``summary`` then takes each contender at its own best pass size: riemannkit / (best limit / n),
riemannkit / best Captum, riemannkit / best Captum-with-delta.

    python benchmarks/throughput.py --models efficientnet_lite0 --steps 16 32 64 128 --batch-sizes 256 1024 --device cuda
    python benchmarks/throughput.py --models resnet50 inception_v3 --random-weights --dtypes fp32 bf16
    python benchmarks/throughput.py --steps 16 --batch-sizes 16 --limit-batch-sizes 16 --dtypes fp32 bf16 --repeats 1 \\
        --out results/throughput_cpu_smoke.json        # CPU smoke test

Timings exclude warm-up runs (and torch.compile's compilation); CUDA is synchronised around each run;
riemannkit's and Captum's repeats are interleaved, so a drift of the machine's speed hits both alike.
Throughput is the number of images over the median time of the repeats.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from riemannstudy import provenance as PV  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit import metrics as M  # noqa: E402
from riemannkit.data import load_images  # noqa: E402
from riemannkit.idgi import idgi_attribute  # noqa: E402
from riemannkit.models import _IMAGENET_MEAN, _IMAGENET_STD, LITE_MODELS, Normalized, load_model, resolve_device  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LAYOUTS = ("contiguous", "channels_last", "compile")
LIMIT_MODES = ("eager", "channels_last", "compile")
RANDOM_SIZES = {"inception_v3": 299}  # other torchvision classifiers: 224
GPU_LIMIT_BATCHES = [64, 256, 1024, 4096]  # the limit's pass sizes on a GPU: "limit" is the best the device does


class Autocast(nn.Module):
    """Runs ``inner`` under torch.autocast(device_type, dtype) and returns float32 logits.

    Inputs stay float32, so riemannkit's casting to the parameters' dtype and the float32 gradient
    with respect to the input are unchanged; only the model's internal matmuls/convs run in ``dtype``.
    """

    def __init__(self, inner: nn.Module, device_type: str, dtype: torch.dtype):
        super().__init__()
        self.inner, self.device_type, self.dtype = inner, device_type, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.inner(x)
        return out.float()


class ChannelsLast(nn.Module):
    """``inner`` with NHWC (channels_last) weights and inputs: faster convolutions on tensor cores."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = copy.deepcopy(inner).to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.contiguous(memory_format=torch.channels_last))


def build_model(name: str, device: torch.device, random_weights: bool) -> tuple[nn.Module, int]:
    """(eval-mode model of [0, 1] images, input size): offline Lite weights, or a random-weight torchvision net."""
    if name in LITE_MODELS or not random_weights:
        model, size, _ = load_model(name, device)
        return model, size
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"unknown model={name!r}; accepted values: {', '.join(LITE_MODELS)} or a torchvision classifier")
    # weights=None: throughput does not depend on the weights (completeness does: see the JSON note).
    kw = {"init_weights": True} if name in ("inception_v3", "googlenet") else {}
    net = getattr(torchvision.models, name)(weights=None, **kw)
    model = Normalized(net, _IMAGENET_MEAN, _IMAGENET_STD).to(device).eval()
    for p in model.parameters():  # as load_model's: no weight gradients anywhere
        p.requires_grad_(False)
    return model, RANDOM_SIZES.get(name, 224)


def variant(model: nn.Module, device: torch.device, dtype: str, layout: str) -> nn.Module:
    """The model in a dtype ('fp32' | 'bf16' via autocast) and layout ('contiguous' | 'channels_last' | 'compile')."""
    m = ChannelsLast(model) if layout == "channels_last" else model
    if dtype != "fp32":
        m = Autocast(m, device.type, DTYPES[dtype])
    if layout == "compile":
        m = torch.compile(m)
    return m


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (CPU work is synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> tuple[list[float], object]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls, and the last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times, out


def timed_interleaved(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int,
                      cpu_times: dict | None = None) -> dict[str, tuple[list[float], object]]:
    """:func:`timed` for several functions with their repeats interleaved (a, b, c, a, b, c, ...), so that a drift of
    the machine's speed (other load, clocks) hits all alike; returns {name: (times, last result)}.  ``cpu_times``,
    when given, receives the process CPU seconds of each repeat per name: on a shared CPU they depend far less on
    the other load than wall time does."""
    outs: dict = {k: None for k in fns}
    for _ in range(warmup):
        for k, fn in fns.items():
            outs[k] = fn()
    sync(device)
    times: dict = {k: [] for k in fns}
    cpus: dict = {k: [] for k in fns}
    if cpu_times is not None:
        cpu_times.update(cpus)
    for _ in range(repeats):
        for k, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            outs[k] = fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
            cpus[k].append(time.process_time() - c0)
    return {k: (times[k], outs[k]) for k in fns}


def timed_pair(fa: Callable[[], object], fb: Callable[[], object], device: torch.device, repeats: int, warmup: int,
               cpu_times: dict | None = None):
    """:func:`timed_interleaved` for two functions: (times_a, out_a, times_b, out_b); ``cpu_times`` receives 'a' and 'b'."""
    cpu: dict = {}
    res = timed_interleaved({"a": fa, "b": fb}, device, repeats, warmup, cpu)
    if cpu_times is not None:
        cpu_times.update(cpu)
    return res["a"][0], res["a"][1], res["b"][0], res["b"][1]


def bare_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, output: str) -> Callable[[], torch.Tensor]:
    """One forward + backward to the input on a batch, as one chunk of an attribution (no other work)."""
    def step() -> torch.Tensor:
        pts = x.detach().requires_grad_(True)
        f = I.target_output(model, pts, target, output)
        return torch.autograd.grad(f.sum(), pts)[0]

    return step


def error_text(err: BaseException) -> str:
    """First line of an exception, for the JSON record."""
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"[:300]


def measure_limit(model, x, target, device, dtype, modes, repeats, warmup, output, threads=None) -> dict:
    """Forward+backward points/s of the bare model per mode (and, on a CPU, per thread count in ``threads``),
    and the best one: the limit is the fastest configuration that exists, not the default one."""
    res: dict = {"modes": {}}
    default_threads = torch.get_num_threads()
    thread_counts = [None] if device.type != "cpu" or not threads else list(threads)
    for mode in modes:
        for nt in thread_counts:
            key = mode if nt is None else f"{mode}@{nt}t"
            try:
                if nt is not None:
                    torch.set_num_threads(nt)
                m = variant(model, device, dtype, {"eager": "contiguous"}.get(mode, mode))
                times, _ = timed(bare_step(m, x, target, output), device, repeats, max(warmup, 2 if mode == "compile" else 1))
                res["modes"][key] = {"points_per_s": x.shape[0] / statistics.median(times), "times_s": times}
            except Exception as err:  # compile or channels_last may be unsupported, a batch may not fit: record, go on
                res["modes"][key] = {"error": error_text(err)}
                print(f"  limit mode {key} ({dtype}, {x.shape[0]} points) failed: {error_text(err)}", file=sys.stderr, flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            finally:
                torch.set_num_threads(default_threads)
    ok = {k: v["points_per_s"] for k, v in res["modes"].items() if "points_per_s" in v}
    res["best_mode"] = max(ok, key=ok.get) if ok else None
    res["points_per_s"] = ok[res["best_mode"]] if ok else None
    return res


def batch_of(x: torch.Tensor, target: torch.Tensor, bs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``bs`` points: the images (and targets) repeated."""
    k = (bs + len(x) - 1) // len(x)
    return x.repeat(k, 1, 1, 1)[:bs], target.repeat(k)[:bs]


def measure_limits(model, x, target, device, dtype, modes, batch_sizes, repeats, warmup, output, threads=None) -> list[dict]:
    """:func:`measure_limit` at each pass size of ``batch_sizes`` (one record each, with its ``batch_size``); a size
    that does not fit records its error."""
    out = []
    for bs in batch_sizes:
        xb, tb = batch_of(x, target, bs)
        out.append({"batch_size": bs, **measure_limit(model, xb, tb, device, dtype, modes, repeats, warmup, output, threads)})
        del xb, tb
    return out


def best_limit(limits: list[dict]) -> tuple[float | None, str | None, int | None]:
    """(points/s, mode, batch size) of the fastest configuration over the records of :func:`measure_limits`."""
    best = (None, None, None)
    for lim in limits:
        for mode, v in lim["modes"].items():
            if "points_per_s" in v and (best[0] is None or v["points_per_s"] > best[0]):
                best = (v["points_per_s"], mode, lim["batch_size"])
    return best


def summary(rows: list[dict]) -> list[dict]:
    """Per (model, method, n, dtype, layout): each contender at its own best pass size, and the ratios against the
    best limit / n, the best Captum and the best Captum with its convergence delta (equal work)."""
    out = []
    keys = sorted({(r["model"], r["method"], r["n"], r["dtype"], r["layout"]) for r in rows})
    for key in keys:
        group = [r for r in rows if (r["model"], r["method"], r["n"], r["dtype"], r["layout"]) == key]
        rk = max(group, key=lambda r: r["rk_images_per_s"])
        best = {}
        for name in ("captum", "captum_delta"):
            have = [r for r in group if r.get(f"{name}_images_per_s")]
            best[name] = max(have, key=lambda r: r[f"{name}_images_per_s"]) if have else None
        lim, n = rk["limit_points_per_s"], key[2]
        row = {"model": key[0], "method": key[1], "n": n, "dtype": key[3], "layout": key[4],
               "rk_images_per_s": rk["rk_images_per_s"], "rk_batch_size": rk["batch_size"],
               "limit_points_per_s": lim, "limit_mode": rk["limit_mode"], "limit_batch_size": rk.get("limit_batch_size"),
               "rk_vs_limit": rk["rk_images_per_s"] / (lim / n) if lim else None}
        for name, r in best.items():
            row[f"{name}_images_per_s"] = r[f"{name}_images_per_s"] if r else None
            row[f"{name}_batch_size"] = r["batch_size"] if r else None
            row[f"rk_vs_{name}"] = rk["rk_images_per_s"] / r[f"{name}_images_per_s"] if r else None
        out.append(row)
    return out


def summary_markdown(rows: list[dict]) -> str:
    """The summary as a Markdown table: each contender at its best pass size."""
    head = ("| model | method | n | dtype | layout | riemannkit img/s (batch) | best limit pts/s (mode, batch) | rk/(limit/n) "
            "| captum img/s (batch) | rk/captum | captum+delta img/s (batch) | rk/(captum+delta) |")
    lines = [head, "|" + "---|" * 5 + "---:|" * 7]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['method']} | {r['n']} | {r['dtype']} | {r['layout']} "
            f"| {fmt(r['rk_images_per_s'], '.2f')} ({r['rk_batch_size']}) "
            f"| {fmt(r['limit_points_per_s'])} ({r['limit_mode'] or 'failed'}, {r['limit_batch_size']}) | {fmt(r['rk_vs_limit'], '.2f')} "
            f"| {fmt(r['captum_images_per_s'], '.2f')} ({r['captum_batch_size']}) | {fmt(r['rk_vs_captum'], '.2f')} "
            f"| {fmt(r['captum_delta_images_per_s'], '.2f')} ({r['captum_delta_batch_size']}) | {fmt(r['rk_vs_captum_delta'], '.2f')} |"
        )
    return "\n".join(lines)


def captum_ig(model: nn.Module, output: str) -> Callable | None:
    """Captum's IntegratedGradients of the same f (softmax probability or logit), or None without captum."""
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        return None
    f = nn.Sequential(model, nn.Softmax(-1)) if output == "prob" else model
    return IntegratedGradients(f)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Per-image ||a − b|| / ||b||."""
    a, b = a.detach().double().flatten(1), b.detach().double().flatten(1)
    return ((a - b).norm(dim=1) / b.norm(dim=1)).cpu().tolist()


def fmt(v, spec: str = ".1f") -> str:
    return "—" if v is None else format(v, spec)


def markdown(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    head = ("| model | method | n | batch | dtype | layout | riemannkit img/s | best limit pts/s (mode) | limit/n img/s "
            "| rk/(limit/n) | captum img/s | rk/captum | captum+delta img/s | rk/(captum+delta) | completeness err (mean) |")
    lines = [head, "|" + "---|" * 6 + "---:|" * 9]
    for r in rows:
        lim = r["limit_points_per_s"]
        lines.append(
            f"| {r['model']} | {r['method']} | {r['n']} | {r['batch_size']} | {r['dtype']} | {r['layout']} "
            f"| {fmt(r['rk_images_per_s'], '.2f')} | {fmt(lim)} ({r['limit_mode'] or 'failed'}) "
            f"| {fmt(r['limit_over_n_images_per_s'], '.2f')} | {fmt(r['rk_vs_limit'], '.2f')} "
            f"| {fmt(r['captum_images_per_s'], '.2f')} | {fmt(r['rk_vs_captum'], '.2f')} "
            f"| {fmt(r.get('captum_delta_images_per_s'), '.2f')} | {fmt(r.get('rk_vs_captum_delta'), '.2f')} "
            f"| {fmt(r['completeness_error_mean'], '.2e')} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    ap.add_argument("--paths", nargs="+", default=["ig"], choices=["ig", "blurig", "guidedig"])
    ap.add_argument("--idgi", action="store_true", help="also time IDGI on each path")
    ap.add_argument("--steps", nargs="+", type=int, default=[16, 32, 64, 128])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256],
                    help="points (images × alphas) per forward/backward for riemannkit and Captum; each is reported at its best")
    ap.add_argument("--limit-batch-sizes", nargs="+", type=int, default=None,
                    help="pass sizes of the bare forward+backward limit (default: 64 256 1024 4096 on a GPU, --batch-sizes on a "
                         "CPU); the limit is the best of them")
    ap.add_argument("--images", type=int, default=16, help="images per attribution call (the shipped photos, repeated)")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    ap.add_argument("--layouts", nargs="+", default=["contiguous"], choices=list(LAYOUTS), help="model variant riemannkit and captum run on")
    ap.add_argument("--limit-modes", nargs="+", default=list(LIMIT_MODES), choices=list(LIMIT_MODES))
    ap.add_argument("--output", default="prob", choices=list(I.OUTPUTS))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--random-weights", action="store_true", help="torchvision models (e.g. inception_v3, resnet50) with weights=None")
    ap.add_argument("--no-captum", action="store_true")
    ap.add_argument("--no-captum-delta", action="store_true", help="skip Captum with return_convergence_delta=True")
    ap.add_argument("--captum-delta", action="store_true",
                    help="(kept for old commands: Captum with its convergence delta, which also evaluates f(x) and f(x') as "
                         "riemannkit does, is now always timed beside plain Captum)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads for riemannkit and Captum (default: torch's own)")
    ap.add_argument("--limit-threads", nargs="+", type=int, default=None,
                    help="CPU only: also measure the limit at these thread counts (the limit is the fastest configuration)")
    ap.add_argument("--out", default=None, help="default: _build/benchmarks/throughput_<device>.json; name a file under results/ to store it")
    args = ap.parse_args()
    for name in ("steps", "batch_sizes", "limit_batch_sizes"):
        if any(v < 1 for v in getattr(args, name) or []):
            ap.error(f"--{name.replace('_', '-')} must be positive integers")
    if args.images < 1 or args.repeats < 1 or args.warmup < 0:
        ap.error("--images and --repeats must be >= 1, --warmup >= 0")

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    limit_batches = args.limit_batch_sizes or (GPU_LIMIT_BATCHES if device.type == "cuda" else list(args.batch_sizes))
    out = args.out or PV.BUILD_DIR / "benchmarks" / f"throughput_{device.type}.json"  # results/ only when named
    has_captum = not args.no_captum and captum_ig(nn.Identity(), "logit") is not None
    methods = [(p, False) for p in args.paths] + ([(p, True) for p in args.paths] if args.idgi else [])
    rows, failures, all_limits, t_start = [], [], [], time.time()
    for model_name in args.models:
        model, size = build_model(model_name, device, args.random_weights)
        photos, _ = load_images("shipped", size=size)
        x = photos.repeat((args.images + len(photos) - 1) // len(photos), 1, 1, 1)[: args.images].to(device)
        target = I.predict(model, x)  # fixed classes: every dtype and method explains the same ones
        fp32_attr: dict = {}
        for dtype in args.dtypes:
            print(f"{model_name} {dtype}: limit at {limit_batches} points", flush=True)
            lims = measure_limits(model, x, target, device, dtype, args.limit_modes, limit_batches, args.repeats, args.warmup,
                                  args.output, args.limit_threads)
            all_limits += [{"model": model_name, "dtype": dtype, **lim} for lim in lims]
            lim_best, lim_mode, lim_bs = best_limit(lims)
            same_batch = {lim["batch_size"]: lim["points_per_s"] for lim in lims}
            for layout in args.layouts:
                # riemannkit runs its own knobs (amp_dtype, channels_last, compile) on a copy, so that the
                # in-place channels_last conversion cannot leak into the other layouts; Captum has no
                # such knobs and gets the equivalent wrapped model.
                knobs = {"amp_dtype": None if dtype == "fp32" else dtype,
                         "channels_last": layout == "channels_last", "compile": layout == "compile"}
                m = model if layout == "contiguous" else copy.deepcopy(model)
                try:
                    ig = captum_ig(variant(model, device, dtype, layout), args.output) if has_captum else None
                except Exception as err:
                    failures.append({"model": model_name, "dtype": dtype, "layout": layout, "error": error_text(err)})
                    ig = None
                for path, use_idgi in methods:
                    for n in args.steps:
                        for bs in args.batch_sizes:
                            method = path + ("+idgi" if use_idgi else "")
                            print(f"  {method} n={n} batch={bs} {dtype} layout={layout}", flush=True)
                            fn = idgi_attribute if use_idgi else I.attribute
                            kw = {} if use_idgi else {"rule": "left"}
                            fns = {"rk": lambda: fn(m, x, path, n=n, target=target, output=args.output, batch_size=bs, **knobs, **kw)}
                            if ig is not None and method == "ig" and n > 1:
                                fns["captum"] = lambda: ig.attribute(x, target=target, n_steps=n, method="riemann_left", internal_batch_size=bs)
                                if not args.no_captum_delta:
                                    fns["captum_delta"] = lambda: ig.attribute(x, target=target, n_steps=n, method="riemann_left",
                                                                               internal_batch_size=bs, return_convergence_delta=True)
                            cpu: dict = {}
                            try:
                                try:
                                    res = timed_interleaved(fns, device, args.repeats, args.warmup, cpu)
                                except Exception as err:  # Captum failed: time riemannkit alone
                                    if len(fns) == 1:
                                        raise
                                    res, cpu = {"rk": timed(fns["rk"], device, args.repeats, args.warmup)}, {}
                                    res["captum_error"] = err
                            except Exception as err:
                                failures.append({"model": model_name, "method": method, "n": n, "batch_size": bs, "dtype": dtype,
                                                 "layout": layout, "error": error_text(err)})
                                traceback.print_exc()
                                if device.type == "cuda":
                                    torch.cuda.empty_cache()
                                continue
                            times, r = res["rk"]
                            rk = args.images / statistics.median(times)
                            err = M.completeness_error(r.attr, r.f_input, r.f_baseline)
                            row = {
                                "model": model_name, "method": method, "n": n, "batch_size": bs, "images": args.images,
                                "dtype": dtype, "layout": layout, "rk_images_per_s": rk, "rk_times_s": times,
                                "limit_points_per_s": lim_best, "limit_mode": lim_mode, "limit_batch_size": lim_bs,
                                "limit_same_batch_points_per_s": same_batch.get(bs),
                                "limit_over_n_images_per_s": lim_best / n if lim_best else None,
                                "rk_vs_limit": rk / (lim_best / n) if lim_best else None,
                                "completeness_error_mean": float(err.mean()), "completeness_error_per_image": err.tolist(),
                                "captum_images_per_s": None, "rk_vs_captum": None,
                            }
                            key = (method, n, bs, layout)
                            if dtype == "fp32":
                                fp32_attr[key] = r.attr.detach()
                            elif key in fp32_attr:
                                row["attr_rel_l2_vs_fp32"] = rel_l2(r.attr, fp32_attr[key])
                            if "captum_error" in res:
                                row["captum_error"] = error_text(res["captum_error"])
                            for name in ("captum", "captum_delta"):
                                if name not in res:
                                    continue
                                ct, ca = res[name]  # timed interleaved with riemannkit's repeats
                                row[f"{name}_images_per_s"] = args.images / statistics.median(ct)
                                row[f"{name}_times_s"] = ct
                                row[f"rk_vs_{name}"] = rk / row[f"{name}_images_per_s"]
                                # Process CPU seconds: less sensitive to the other load of a shared machine.
                                row["rk_cpu_s"], row[f"{name}_cpu_s"] = cpu["rk"], cpu[name]
                                row[f"rk_vs_{name}_cpu_time"] = statistics.median(cpu[name]) / statistics.median(cpu["rk"])
                                row[f"rk_vs_{name}_per_repeat"] = [c / t for t, c in zip(times, ct)]
                                # same nodes: should be float noise
                                row[f"{name}_attr_rel_l2"] = rel_l2(r.attr, ca[0] if name == "captum_delta" else ca)
                            rows.append(row)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    best = summary(rows)
    table = markdown(rows) + "\n\nEach contender at its best pass size:\n\n" + summary_markdown(best)
    print(table)
    cmd = "python " + " ".join(sys.argv)
    prov = PV.provenance(command=cmd, device=device)
    prov["wall_s"] = round(time.time() - t_start, 1)
    if has_captum:
        import captum

        prov["captum"] = captum.__version__
    record = {
        "benchmark": "throughput",
        "provenance": prov,
        "config": {k: v for k, v in vars(args).items()},
        "notes": (
            "rk = riemannkit images/s (median of repeats, warm-up excluded) incl. its f(x) and f(x') (rows of its passes); "
            "limit = best forward+backward-to-input points/s of the bare model over the limit batch sizes and the modes "
            "(eager | channels_last | compile), limit_same_batch_points_per_s the best mode at the row's batch; "
            "rk/(limit/n) <= ~1; captum_delta = Captum with return_convergence_delta=True (it then evaluates f(x) and "
            "f(x') too: riemannkit's work); summary = each contender at its best batch. riemannkit runs with its engine knobs "
            "(amp_dtype = bf16/fp16 autocast around the model only; channels_last; compile = torch.compile, padded "
            "last pass); Captum and the limit run on the equivalent wrapped model (torch.autocast, float32 logits "
            "out). Completeness errors of --random-weights models are not meaningful."
        ),
        "limits": all_limits,
        "rows": rows,
        "summary": best,
        "failures": failures,
        "table_markdown": table,
    }
    PV.save_json(out, record)
    print("wrote", out)


if __name__ == "__main__":
    main()
