"""Writes notebooks/riemannopt.ipynb (kept as a script so the chapter's source diffs cleanly)."""
import nbformat as nbf
from pathlib import Path

md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell
cells = []
p = code('''profile = "quick"              # "full": the GPU reproduction (riemannkit.experiments.FULL_PROFILE; overrides what it lists)
model = "efficientnet_lite0"   # or efficientnet_lite1/2, or a torchvision name with a network
images = "shipped"             # or an ImageNet-style folder
device = "auto"
n_eval = 2                     # evaluated photos (the first n_eval)
n_calib = 2                    # m: photos for Algorithm 1 (the last n_calib), disjoint from the evaluated ones
k = 32                         # Algorithm 1 grid (the paper: 128)
steps = [16, 32, 64]           # gradient evaluations per image (the paper's Table 1: 16, 32, 64, 128)
paths = ["ig", "blurig", "guidedig"]
batch_size = 16                # 16 is fastest on a 2-core CPU; raise it on a GPU
seed = 0
save_results = False
results_file = "riemannopt_table1_quick.json"  # a file name inside the repository's results/ folder
overwrite = False  # True lets save_results replace an existing results file''')
p.metadata["tags"] = ["parameters"]
cells.append(p)
cells.append(md(r'''# RiemannOpt: where to put the gradient evaluations

RiemannOpt (Swain & Singhi, [arXiv 2410.04118](https://arxiv.org/abs/2410.04118)) keeps the left
Riemann sum but moves its sample points. From the previous chapter, the left rule's error on
$[\alpha_i, \alpha_{i+1}]$ is $\tfrac12 g'(\xi_i)\,(\alpha_{i+1}-\alpha_i)^2$, so the paper minimises

$$
B(\alpha_0,\dots,\alpha_{n-1}) \;=\; \tfrac12 \sum_{i=0}^{n-1} |g'(\alpha_i)|\,(\alpha_{i+1}-\alpha_i)^2,
\qquad \alpha_0 = 0,\ \alpha_n = 1,
$$

with $|g'|$ replaced by its mean over features and over a small set of images:

**Algorithm 1.** For $m$ images, evaluate the integrand $g(\alpha) = \nabla f(\gamma(\alpha)) \odot \gamma'(\alpha)$
at $k+1$ equispaced points $\alpha_j = j/k$; take finite differences $|g(\alpha_{j+1}) - g(\alpha_j)|\,k$
element-wise; average over the features and then over the $m$ images; interpolate linearly in $\alpha$.
**Powell's method** then places the $n$ points. The points are computed once per model and path and
reused for every image.

Two details are ours and are stated here. The points are parameterised by $n$ positive increments that
sum to one, each at least $0.2/n$, so they stay ordered and can never collapse onto each other (an
unconstrained fit can lower $B$ by piling points where $|g'| \approx 0$ and leaving one huge interval).
Even so, $B$ can be lowered by starting one long interval just before the rise, where
$|g'(\alpha_i)| \approx 0$ although $|g'|$ is large inside the interval (the error-bound chapter shows
it on a 1-D rise). We therefore also fit the *rigorous* form of the bound, which takes the maximum of
$|g'|$ over each interval ($\xi_i$ can be anywhere in it): rows marked "sup bound". And a schedule is
never judged by a bound: the table below reports each schedule's real completeness error
$|\sum_i \mathrm{attr}_i - (f(x) - f(x'))| \,/\, |f(x) - f(x')|$.'''))
cells.append(code('''import sys, pathlib
try:  # installed by make install (or the Colab cell); else a checkout run from notebooks/
    import riemannkit  # noqa: F401
except ImportError:
    sys.path.insert(0, str(pathlib.Path.cwd().parent))

import json
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
full_settings = E.apply_profile("riemannopt", profile, globals())  # profile="full" sets these
E.shown_tables().clear()
if full_settings:
    print("profile full:", full_settings)

torch.manual_seed(seed)
dev = resolve_device(device)
net, size, classes = load_model(model, dev)
x_all, names = load_images(images, size=size)
if n_eval + n_calib > len(names):
    raise ValueError(f"n_eval + n_calib = {n_eval + n_calib} but only {len(names)} images are available")
x_eval, eval_names = x_all[:n_eval], names[:n_eval]
x_calib, calib_names = x_all[len(names) - n_calib:], names[len(names) - n_calib:]
pred = rk.integrate.predict(net, x_eval.to(dev))
prov = E.provenance(command=f"papermill riemannopt.ipynb (profile={profile}, model={model}, n_eval={n_eval}, n_calib={n_calib}, k={k}, steps={steps})", device=dev)
print(f"model {model} ({size}px) on {prov['device']}; torch {prov['torch']}; {prov['date']}")
print("evaluated:", [f"{n} → {classes[int(c)]}" for n, c in zip(eval_names, pred)])
print("calibration (Algorithm 1):", calib_names)'''))
cells.append(md(r'''## Algorithm 1 and the fitted points

For each path, $|g'(\alpha)|$ is estimated on the calibration photos, and Powell fits one schedule for
each number of steps. The figure has the layout of the paper's Figure 2: the curve, with 16 linear and
16 optimised points below it. BlurIG runs from a fully blurred image ($\sigma = 50$, the PAIR
reference's `max_sigma`) at $\alpha = 0$ to the image at $\alpha = 1$; Guided IG uses the PAIR defaults
(`fraction=0.25`, `max_dist=0.02`).'''))
cells.append(code('''schedules = E.fit_schedules(net, x_calib, paths, steps, k, batch_size=batch_size)
n_fig = min(steps, key=lambda n: abs(n - 16))
fig, axes = plt.subplots(1, len(paths), figsize=(4.2 * len(paths), 3.4))
for ax, path in zip(np.atleast_1d(axes), paths):
    s = schedules[path]
    rkplot.gprime_with_points(ax, s["grid"], s["gprime"],
                              {"linear": rk.linear_schedule(n_fig), "RiemannOpt": s["alphas"][n_fig],
                               "RiemannOpt, sup bound": s["alphas_sup"][n_fig]},
                              title={"ig": "IG", "blurig": "BlurIG", "guidedig": "Guided IG"}[path])
fig.tight_layout()
plt.show()'''))
cells.append(md(r'''## Table 1: relative completeness error

Rows follow the paper's Table 1 (each path with linear points and with RiemannOpt points), plus two
rows the paper does not have: IG with points fitted to the sup bound, and IG with the midpoint rule and
with Gauss–Legendre nodes, at the same numbers of gradient evaluations. Entries are the mean over the evaluated photos of the
per-image relative error (lower is better; the best of each column is bold).'''))
cells.append(code('''label = {"ig": "IG", "blurig": "BlurIG", "guidedig": "GIG"}
rows = []
for path in paths:
    rows += [(label[path], path, "left"), (label[path] + " + RiemannOpt", path, "riemannopt")]
if "ig" in paths:
    rows += [("IG + RiemannOpt (sup bound)", "ig", "riemannopt-sup"),
             ("IG midpoint", "ig", "midpoint"), ("IG Gauss–Legendre", "ig", "gausslegendre")]
table = E.completeness_table(net, x_eval, rows, steps, schedules, batch_size=batch_size)
E.show(Markdown(E.markdown_table(table, steps)))
E.show(Markdown(f"*{model}, photos {eval_names}, schedules from {calib_names} (m={n_calib}, k={k}); "
                 f"{prov['device']}, torch {prov['torch']}, {prov['date']}.*"))'''))
cells.append(md(r'''### Why Guided IG's error does not fall with more steps

Guided IG's rows do not improve with $n$, with or without RiemannOpt. The path is not at fault: its
segments, integrated with 4-point Gauss–Legendre each, add up to $f(x) - f(x')$ closely (the line
integral along any path must). The left rule is: Guided IG chooses which features to move by their
|gradient| *at the start of the step*, so the gradient at the left point is systematically unlike the
gradient along the step, and that bias does not shrink as the steps do. The stored run of
`benchmarks/gig_left_bias.py` below measures both errors.'''))
cells.append(code('''bias = E.results_path("gig_left_bias.json")
if bias.is_file():
    rec = json.loads(bias.read_text())
    lines = ["| n | image | left-rule error | GL4-per-segment error |", "|---:|---|---:|---:|"]
    lines += [f"| {r['n']} | {r['image']} | {r['left_error']:.3f} | {r['gl4_segment_error']:.3f} |" for r in rec["rows"]]
    pv = rec["provenance"]
    display(Markdown("\\n".join(lines) + f"\\n\\n*{rec['model']}; {pv['device']}, torch {pv['torch']}, commit "
                     f"{pv['git_commit']}, {pv['date']}; `{pv['command']}`.*"))
else:
    print("no stored run yet:", bias)'''))
cells.append(md(r'''## The bound against the error

Powell lowers $B$ by construction. Whether that lowers the real error depends on how well the
left-point value $|g'(\alpha_i)|$ and the calibration photos represent each evaluated photo's integrand.
The next table sets the two side by side for the smallest number of steps.'''))
cells.append(code('''n0 = min(steps)
lines = ["| path | B linear | B RiemannOpt | error linear | error RiemannOpt |", "|---|---:|---:|---:|---:|"]
bounds = {}
for path in paths:
    s = schedules[path]
    b_lin = rk.paper_bound(rk.linear_schedule(n0), s["grid"], s["gprime"])
    b_opt = rk.paper_bound(s["alphas"][n0], s["grid"], s["gprime"])
    bounds[path] = (b_lin, b_opt)
    e_lin = table[label[path]][n0]["mean"]
    e_opt = table[label[path] + " + RiemannOpt"][n0]["mean"]
    lines.append(f"| {label[path]} | {b_lin:.3g} | {b_opt:.3g} | {e_lin:.4f} | {e_opt:.4f} |")
E.show(Markdown("\\n".join(lines)))'''))
cells.append(code('''record = {"profile": profile, "tables_markdown": list(E.shown_tables()),
          "wall_s": round(time.time() - wall_start, 1),
    "chapter": "riemannopt", "provenance": prov, "model": model, "images_eval": eval_names,
    "images_calib": calib_names, "k": k, "steps": steps,
    "table": {r: {str(n): v for n, v in row.items()} for r, row in table.items()},
    "schedules": {p: {"grid": s["grid"], "gprime": s["gprime"], "alphas": {str(n): a for n, a in s["alphas"].items()},
                      "alphas_sup": {str(n): a for n, a in s["alphas_sup"].items()}}
                  for p, s in schedules.items()},
}
if save_results:
    print("wrote", E.save_json(E.results_path(results_file), record, overwrite=overwrite))
    # The points are computed once per model and path and reused: store them as schedule files.
    for p, s in schedules.items():
        for n, a in s["alphas"].items():
            rk.save_schedule(E.results_path(f"schedules/{model}_{p}_n{n}.json"), a, model=model, path=p, k=k, overwrite=overwrite,
                             m=n_calib, grid=s["grid"], gprime=s["gprime"], images=calib_names)'''))
cells.append(md(r'''## Full-profile runs

The tables above come from the quick run this page executed (its parameters cell). The full profile
(`profile="full"`: all nine offline photos, up to 128 steps, k = 128, 256 points per pass, every
EfficientNet-Lite model) is GPU work; `python benchmarks/full_profile.py` runs it and commits each run's
tables as `results/riemannopt_full_<model>.json` with its provenance. Each committed run is shown here.'''))
cells.append(code('''n_full_runs = E.render_full_runs("riemannopt")'''))
cells.append(md(r'''## A larger run, stored with its provenance

The table above is the quick run this page executed. The next cell shows the stored result of a larger
run of this same notebook (more photos, the 128-step column, a finer Algorithm 1 grid), made with the
command recorded in it.'''))
cells.append(code('''stored = E.results_path("riemannopt_table1_cpu.json")
if stored.is_file():
    rec = json.loads(stored.read_text())
    st = [int(n) for n in rec["steps"]]
    tab = {r: {int(n): v for n, v in row.items()} for r, row in rec["table"].items()}
    display(Markdown(E.markdown_table(tab, st)))
    pv = rec["provenance"]
    display(Markdown(f"*Stored run: {rec['model']}, evaluated photos {rec['images_eval']}, schedules from "
                     f"{rec['images_calib']} (k={rec['k']}); {pv['device']}, torch {pv['torch']}, "
                     f"commit {pv['git_commit']}, {pv['date']}; command: `{pv['command']}`.*"))
else:
    print("no stored larger run yet:", stored)'''))
cells.append(md(r'''## What this chapter checks

* Powell lowers the paper's bound $B$ below linear spacing for every path (what it optimises).
* The fitted points are sorted, start at 0 and keep every gap at least $0.2/n$ (no collapse).
* With linear points, straight-line IG's error falls as the number of steps grows.

Whether RiemannOpt lowers the *real* error is measured above and not asserted: on these photos and this
model it need not, and the table says which way it went.'''))
cells.append(code('''for path in paths:
    b_lin, b_opt = bounds[path]
    assert b_opt < b_lin, (path, b_lin, b_opt)
    for n, a in schedules[path]["alphas"].items():
        assert a[0] == 0 and np.all(np.diff(np.append(a, 1)) >= 0.2 / n - 1e-12), (path, n)
if "ig" in paths and len(steps) > 1:
    assert table["IG"][max(steps)]["mean"] < table["IG"][min(steps)]["mean"]
print("checks passed")'''))
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
Path(__file__).resolve().parent.parent.joinpath("notebooks", "riemannopt.ipynb").write_text(nbf.writes(nb))
