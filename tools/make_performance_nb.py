"""Writes notebooks/performance.ipynb (kept as a script so the chapter's source diffs cleanly)."""
import nbformat as nbf
from pathlib import Path

md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell
cells = []
p = code('''profile = "quick"              # "full": the ImageNet model for the precision study and n up to 128 (a GPU job)
device = "auto"
photos = ["chelsea", "coffee"] # EfficientNet-Lite0 photos for the chunk-size check
n_chunk = 16                   # steps for the chunk-size check
chunk_sizes = [7, 16, 64]      # points per pass compared (7: most passes start inside a row of alphas)
precision_model = "fashion"    # "fashion": the small Fashion-MNIST CNN (fast on a CPU); "efficientnet_lite0"
n_images = 32                  # images for the precision study
n_values = [8, 16, 32, 64]     # steps for the precision study
amp_dtypes = ["bf16"]          # add "fp16" on a GPU
batch_size = 256
seed = 0''')
p.metadata["tags"] = ["parameters"]
cells.append(p)
cells.append(md(r'''# Performance: the batched engine on CPU and GPU

An $n$-step path attribution needs $n$ gradient evaluations per image, so no implementation can explain
more than $L/n$ images per second, where $L$ is the fastest forward+backward throughput of the bare model
(points per second) on the same batch and precision. `benchmarks/throughput.py` measures $L$ (eager,
channels_last and torch.compile, the best kept), riemannkit's images/s and Captum's
`IntegratedGradients` at the same $n$ and `internal_batch_size`, and reports two ratios: riemannkit
$/\,(L/n)$ (target $\ge 0.9$) and riemannkit / Captum (target $\ge 1.5$ at equal precision).

What the engine does to approach $L/n$ (`riemannkit.integrate.attribute`):

* **Full passes.** The $B \times n$ points (images × nodes) are flattened and cut into passes of exactly
  `batch_size` points; only the last pass is short (padded under `torch.compile`, so one graph serves all).
  A pass may start inside a row of alphas; the partial rows are added by slices and the whole rows by one
  `tensordot`, so the summation order is fixed and deterministic on a GPU.
* **No host sync in the loop.** The NaN/Inf check of the gradients is accumulated on the device and read
  once per call; schedules and masks are kept on the CPU where testing them costs nothing.
* **Knobs, off by default.** `amp_dtype` ('bf16'/'fp16': autocast around the model only; the path, the
  weighted sum and $f(x)$, $f(x')$ stay in float32), `channels_last`, `compile`, and `batch_size="auto"`
  (two probe passes measure the memory per point; the pass is sized to 60 % of the free memory). Out of
  memory raises an error that names the pass size and a smaller `batch_size`.

This chapter checks on this machine that the pass size does not change the attributions, measures what
mixed precision does to the completeness error, and renders every stored benchmark run. The accuracy
per gradient evaluation of each rule and schedule is the subject of the chapter *Which schedule?*.'''))
cells.append(code('''import sys, pathlib
try:  # installed by make install (or the Colab cell); else a checkout run from notebooks/
    import riemannkit  # noqa: F401
except ImportError:
    sys.path.insert(0, str(pathlib.Path.cwd().parent))

import glob
import json
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

import riemannkit as rk
from riemannkit import experiments as E, integrate as I
from riemannkit.data import load_images, load_fashion_mnist
from riemannkit.models import fashion_classifier, load_model, resolve_device

if profile not in E.PROFILES:
    raise ValueError(f"unknown profile={profile!r}; accepted values: {', '.join(E.PROFILES)}")
if profile == "full":
    precision_model, n_values, amp_dtypes = "efficientnet_lite0", [8, 16, 32, 64, 128], ["bf16", "fp16"]
torch.manual_seed(seed)
dev = resolve_device(device)
prov = E.provenance(command=f"papermill performance.ipynb (profile={profile}, precision_model={precision_model}, "
                            f"n_values={n_values}, amp_dtypes={amp_dtypes})", device=dev)
provenance_line = f"*{prov['device']}, torch {prov['torch']}, {prov['date']}.*"
print(provenance_line)'''))
cells.append(md(r'''## The pass size does not change the result

EfficientNet-Lite0 on two photos, IG with the left rule: the same attribution computed with passes of
different sizes (7 points per pass starts most passes in the middle of a row of alphas).'''))
cells.append(code('''net, size, classes = load_model("efficientnet_lite0", dev)
x, names = load_images("shipped", size=size, names=photos)
target = I.predict(net, x.to(dev))
runs = {bs: rk.attribute(net, x, n=n_chunk, target=target, batch_size=bs) for bs in chunk_sizes}
ref = runs[max(chunk_sizes)]
chunk_diff = {bs: float((r.attr - ref.attr).norm() / ref.attr.norm()) for bs, r in runs.items()}
lines = ["| points per pass | passes | relative L2 difference to the largest |", "|---:|---:|---:|"]
lines += [f"| {bs} | {-(-len(photos) * n_chunk // bs)} | {d:.1e} |" for bs, d in chunk_diff.items()]
display(Markdown("\\n".join(lines)))
display(Markdown(f"*EfficientNet-Lite0, photos {names}, n = {n_chunk}; " + provenance_line[1:]))'''))
cells.append(md(r'''## What mixed precision does to the completeness error

Under `amp_dtype="bf16"` the model's convolutions and matrix products run with an 8-bit mantissa, and the
gradient that reaches the input is rounded accordingly. Two measures of the damage, at each $n$ on the
same images: the completeness error $|\sum \mathrm{attr} - (f(x) - f(x'))| / |f(x) - f(x')|$ (with $f$
evaluated in float32) and the relative L2 distance of the map to the float32 map.'''))
cells.append(code('''if precision_model == "fashion":
    pnet = fashion_classifier(seed=seed, device=dev)
    xp, _ = load_fashion_mnist("test", limit=n_images)
    pname = "Fashion-MNIST CNN (riemannkit.models.fashion_classifier)"
else:
    pnet, psize, _ = load_model(precision_model, dev)
    xp, pnames = load_images("shipped", size=psize)
    xp = xp[:n_images]
    pname = f"{precision_model}, photos {pnames[: n_images]}"
tp = I.predict(pnet, xp.to(dev))
prec = {}  # (dtype, n) -> (errors per image, map relative L2 to fp32)
for n in n_values:
    base = rk.attribute(pnet, xp, n=n, target=tp, batch_size=batch_size)
    prec["fp32", n] = (rk.completeness_error(base.attr, base.f_input, base.f_baseline), torch.zeros(len(xp)))
    for dt in amp_dtypes:
        r = rk.attribute(pnet, xp, n=n, target=tp, batch_size=batch_size, amp_dtype=dt)
        rel = (r.attr - base.attr).flatten(1).norm(dim=1) / base.attr.flatten(1).norm(dim=1)
        prec[dt, n] = (rk.completeness_error(r.attr, r.f_input, r.f_baseline), rel)
dts = ["fp32"] + amp_dtypes
lines = ["| n | " + " | ".join(f"{d} completeness error (median)" for d in dts) + " | "
         + " | ".join(f"{d} map vs fp32 (median rel. L2)" for d in amp_dtypes) + " |",
         "|---:|" + "---:|" * (len(dts) + len(amp_dtypes))]
for n in n_values:
    lines.append(f"| {n} | " + " | ".join(f"{prec[d, n][0].median():.2e}" for d in dts) + " | "
                 + " | ".join(f"{prec[d, n][1].median():.2e}" for d in amp_dtypes) + " |")
display(Markdown("\\n".join(lines)))
display(Markdown(f"*{pname}, {len(xp)} images, IG left rule, f = softmax probability; " + provenance_line[1:]))
fig, ax = plt.subplots(figsize=(4.6, 3.2))
for d in dts:
    ax.loglog(n_values, [float(prec[d, n][0].median()) for n in n_values], "o-", label=d)
ax.set_xlabel("steps n"); ax.set_ylabel("median completeness error"); ax.legend(); ax.grid(alpha=0.3)
fig.tight_layout(); plt.show()'''))
cells.append(md(r'''## Stored benchmark runs

Every `results/throughput_*.json` (and `blur_path_*.json`) is rendered here with its provenance: the command, the commit, the
device and the date it ran. The verdict lines compare each row with the two targets.'''))
cells.append(code('''stored = sorted(glob.glob(str(E.RESULTS_DIR / "throughput_*.json")))
verdicts = []
for f in stored:
    rec = json.loads(pathlib.Path(f).read_text())
    pv = rec["provenance"]
    display(Markdown(f"**`{pathlib.Path(f).name}`**: {pv['device']}, torch {pv['torch']}, CUDA {pv.get('cuda')}, "
                     f"captum {pv.get('captum', '—')}, commit {pv['git_commit']}, {pv['date']}; "
                     f"command: `{pv['command']}`"))
    display(Markdown(rec["table_markdown"]))
    for r in rec["rows"]:
        verdicts.append((pathlib.Path(f).name, r["model"], r["method"], r["n"], r["batch_size"], r["dtype"],
                         r["rk_vs_limit"], r["rk_vs_captum"]))
lines = ["| run | model | method | n | batch | dtype | rk/(limit/n) ≥ 0.9? | rk/captum ≥ 1.5? |", "|---|---|---|---:|---:|---|---|---|"]
yn = lambda v, t: "—" if v is None else (f"{v:.2f} yes" if v >= t else f"{v:.2f} no")
lines += [f"| {a} | {b} | {c} | {d} | {e} | {g} | {yn(h, 0.9)} | {yn(i, 1.5)} |" for a, b, c, d, e, g, h, i in verdicts]
display(Markdown("\\n".join(lines)))
for f in sorted(glob.glob(str(E.RESULTS_DIR / "blur_path_*.json"))):
    rec = json.loads(pathlib.Path(f).read_text())
    pv = rec["provenance"]
    display(Markdown(f"**`{pathlib.Path(f).name}`** (BlurIG's path alone): {pv['device']}, torch {pv['torch']}, "
                     f"commit {pv['git_commit']}, {pv['date']}; command: `{pv['command']}`\\n\\n" + rec["table_markdown"]))
    stored.append(f)
if not any("cuda" in f for f in stored):
    display(Markdown("*No GPU run is stored yet: the machines that built this book had no GPU. "
                     "`python benchmarks/throughput.py --device cuda --paths ig blurig guidedig --idgi` on one "
                     "writes `results/throughput_cuda.json`, which this page then shows.*"))'''))
cells.append(md(r'''## Reading the numbers

* **Completeness does not see mixed precision.** On the Fashion-MNIST CNN (the quick run) the bf16
  completeness error tracks float32's at every $n$ up to 64 (2.37e-2 against 2.38e-2 at $n = 16$, 4.2e-3
  against 3.5e-3 at $n = 64$), while the bf16 maps differ from the float32 maps by about 6 % (relative
  L2). The rounding of the per-pixel gradients is close to zero-mean and cancels in the sum over pixels
  and steps that completeness checks. A small completeness error is therefore no evidence that a
  low-precision map is right: compare maps with float32 ones, as the benchmark does
  (`attr_rel_l2_vs_fp32`).
* **Speed on this CPU.** In the stored CPU runs (EfficientNet-Lite0, 5 photos, $n = 16$) riemannkit
  reaches 0.81–0.99 of the limit $L/n$ at 16 points per pass (IG, BlurIG, each ± IDGI; a ratio of 1.11
  at 15 points shows that the limit itself is measured to about ±10 % here), with attributions
  identical to Captum's (relative L2 about $10^{-7}$), but runs IG at only 0.90–0.96 of Captum's speed
  (`throughput_cpu_smoke.json`, `throughput_cpu_passsize.json`; the repeats of the two are interleaved).
  The gap is within this machine's run-to-run noise of about ±10 % and its cause is not isolated: the
  extra f(x) forward pass accounts for about 2 %, and the pass size does not explain it (15 and 16 points
  per pass give the same ratio). There is no 1.5× to gain over Captum on a CPU, where both spend their
  time in the same forward and backward passes; that target, and 90 % of the limit at GPU pass sizes, are
  GPU questions (where Python overheads and host syncs, not the arithmetic, can dominate) and stay open
  until a GPU run is stored. bf16 on this CPU (AVX2, no native bf16) is far slower than float32 and was
  not timed to the end.
* **BlurIG's path was the bottleneck.** Blurring with σ up to 50 px as depthwise convolutions (kernels of
  up to 401 taps) took 3.9 s of a 10 s BlurIG call here (80 points; BlurIG at 0.54 of the limit); as
  banded-matrix products $M_h X M_w^\top$ the same blur and its exact σ-derivative take 0.65 s (the
  `blur_path` run above; the two agree to $10^{-6}$), and BlurIG runs at 0.88 of the limit.

## What this chapter checks

* The pass size changes the attributions by float rounding only (relative L2 below $10^{-5}$).
* float32's completeness error falls as $n$ grows; at every $n$ the mixed-precision completeness error is
  within a factor 2 of float32's, while its map differs from the float32 map by more than 1 % (relative
  L2): the claim above, held to on any rerun.
* Every stored benchmark run carries its provenance.'''))
cells.append(code('''assert all(d < 1e-5 for d in chunk_diff.values()), chunk_diff
for (d, n), (err, rel) in prec.items():
    assert torch.isfinite(err).all() and torch.isfinite(rel).all(), (d, n)
fp = [float(prec["fp32", n][0].median()) for n in n_values]
assert fp[-1] < fp[0], fp
for d in amp_dtypes:
    for n, e32 in zip(n_values, fp):
        e_amp, rel = prec[d, n]
        assert float(e_amp.median()) < 2 * e32 and float(rel.median()) > 1e-2, (d, n, float(e_amp.median()), e32, float(rel.median()))
for f in stored:
    pv = json.loads(pathlib.Path(f).read_text())["provenance"]
    assert all(pv.get(k) for k in ("command", "device", "torch", "date")), (f, pv)
print("checks passed")'''))
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
Path(__file__).resolve().parent.parent.joinpath("notebooks", "performance.ipynb").write_text(nbf.writes(nb))
