"""The stored reference run for the IDGI reproducibility study's Tables 1–3 and 5, image by image, on one model.

For every photo of the pool the model classifies correctly (riemannkit.data.pool_names(model)), at the study's
128 left-rule steps (--steps), with the study's settings (Guided IG fraction 0.5, max_dist 1.0; insertion from
black in 20 steps of 5 %; PIC start = the blurred image; pixels ranked by the signed channel sum):

  Tables 1–3   insertion (probability and probability ratio), SIC/AIC with normalised WebP entropy and with
               MS-SSIM, plus deletion and the completeness error, for IG, Guided IG, BlurIG, each ± IDGI, and a
               random map as a control;
  Table 5      MSE and −ln MSE between the sum-normalised maps of the photo and of its JPEG-75 copy.

Both come from one computation per photo: evaluation.jpeg_stability_table explains [x; JPEG(x)] (x rounded to
8-bit levels, as the study's JPEG files) and its clean maps are the ones Tables 1–3 score.  Each photo is one
cell, stored as it finishes (per-image values, the PIC curves' raw points so SIC's median curve aggregates
exactly, the insertion curves), so a run resumes photo by photo when the settings and the code are the same
(code_sha256: the committed contents of CODE_FILES) and can span sessions; each session's share is listed
under provenance.parts.  The script refuses to store from a dirty tree unless --allow-dirty.

    python benchmarks/reference_idgi.py --model efficientnet_lite0 --device auto
    python benchmarks/reference_idgi.py --model efficientnet_lite0 --steps 8   # Table 4's other end (…_n8.json)
    python benchmarks/reference_idgi.py --dry-run --out-dir /tmp/ref   # 2 shipped photos, 4 steps
"""
from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from riemannkit import book as B  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannkit import evaluation as EV  # noqa: E402
from riemannkit import metrics as M  # noqa: E402
from riemannkit import models as MO  # noqa: E402

MODELS = tuple(MO.LITE_MODELS)
METHODS = list(EV.STUDY_ORDER)
SCORED = ["insertion_prob", "insertion_ratio", "deletion", "sic_webp", "aic_webp", "sic_msssim", "aic_msssim"]
DRY_RUN = {"names": ["chelsea", "coffee"], "steps": 4}
SCHEMA = 1
# The files whose code shapes this run's numbers: a partial unit resumes only when they are unchanged at HEAD.
CODE_FILES = tuple(f"riemannkit/{m}.py" for m in ("integrate", "paths", "blur", "idgi", "evaluation", "metrics", "models",
                                                   "data", "pool", "validate")) + ("benchmarks/reference_idgi.py",)


def unit_file(out_dir: Path, model: str, steps: int = 128) -> Path:
    """idgi_study_<model>.json at the study's 128 steps; idgi_study_<model>_n<steps>.json otherwise (Table 4 pairs the
    two: the change from 8 to 128 steps)."""
    return Path(out_dir) / (f"idgi_study_{model}.json" if steps == 128 else f"idgi_study_{model}_n{steps}.json")


def control_map(name: str, shape: torch.Size, seed: int) -> torch.Tensor:
    """The random control map of one photo: seeded by the photo's name, so a resumed run draws the same one."""
    s = int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:12], 16)
    return torch.rand(shape, generator=torch.Generator().manual_seed(s))


def photo_cell(net, x: torch.Tensor, name: str, settings: dict, batch_size: int) -> dict:
    """Tables 1–3 and Table 5 of one photo (x: (1, C, H, W) in [0, 1])."""
    t0 = time.time()
    by_label = {EV.LABELS[m]: m for m in METHODS}
    paths = list(dict.fromkeys(EV.parse_method(m)[0] for m in METHODS))
    stab, maps = EV.jpeg_stability_table(net, x, paths, settings["steps"], settings["jpeg_quality"], None, "prob",
                                         batch_size, settings["reduce"], settings["path_kwargs"])
    xq = M._to_uint8(x.detach().cpu().float()).float() / 255  # the clean copy jpeg_stability_table explained
    dev = maps[EV.LABELS[METHODS[0]]].attr.device
    target = maps[EV.LABELS[METHODS[0]]].target[:1]
    clean = {by_label[label]: r.attr[:1] for label, r in maps.items()}
    clean["random"] = control_map(name, xq.shape, settings["seed"]).to(dev)
    table = EV.metric_table(net, xq.to(dev), clean, SCORED, target, steps=settings["insertion_steps"],
                            insertion_start=settings["insertion_start"], reduce=settings["reduce"],
                            pic_start=settings["pic_start"], min_pred_value=settings["min_pred_value"],
                            seed=settings["seed"], batch_size=batch_size)
    scores, pic, curves = {}, {}, {}
    for method, row in table.items():
        scores[method] = {metric: rec["per_image"][0] for metric, rec in row.items()}
        pic[method] = {metric: {k: v[0] for k, v in rec["points"].items()} for metric, rec in row.items() if "points" in rec}
        curves[method] = {metric: rec["curve"] for metric, rec in row.items() if metric.startswith(("insertion", "deletion"))}
    for label, r in maps.items():
        m = by_label[label]
        scores[m]["completeness"] = float(M.completeness_error(r.attr[:1], r.f_input[:1], r.f_baseline[:1])[0])
    f = maps[EV.LABELS[METHODS[0]]]
    return {
        "target": int(target[0]), "p": float(f.f_input[0]), "p_jpeg": float(f.f_input[1]),
        "n_gradients": {p: int(maps[EV.LABELS[p]].n_gradients) for p in paths},
        "scores": scores, "pic": pic, "curves": curves,
        "jpeg": {by_label[label]: {k: float(v[0]) for k, v in row.items()} for label, row in stab.items()},
        "wall_s": round(time.time() - t0, 2),
    }


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0", choices=MODELS)
    ap.add_argument("--images", default="pool", choices=("shipped", "pool"), help="the photos (pool: those the model classifies correctly)")
    ap.add_argument("--names", nargs="+", help="photo names (default: all of --images)")
    ap.add_argument("--steps", type=int, default=128, help="left-rule steps per path (the study's Tables 1–3 and 5: 128)")
    ap.add_argument("--insertion-steps", type=int, default=20, help="insertion/deletion points (21 with the start; the study: 5 %% steps)")
    ap.add_argument("--min-pred-value", type=float, default=0.3, help="SIC skips photos with p(class) below this (PAIR: 0.8)")
    ap.add_argument("--jpeg-quality", type=int, default=75)
    ap.add_argument("--seed", type=int, default=0, help="seed of the random control maps")
    ap.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--batch-size", type=int, default=16, help="points per forward/backward (16 is fastest on a 2-core CPU)")
    ap.add_argument("--out-dir", default=str(ROOT / "results" / "reference"))
    ap.add_argument("--allow-dirty", action="store_true", help="store from a dirty tree, recording the sha256 of git diff HEAD")
    ap.add_argument("--dry-run", action="store_true", help=f"shipped {DRY_RUN['names']}, {DRY_RUN['steps']} steps")
    args = ap.parse_args(argv)
    command = "python benchmarks/reference_idgi.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.dry_run:
        args.images, args.names, args.steps = "shipped", args.names or DRY_RUN["names"], DRY_RUN["steps"]
    if args.steps < 2 or args.insertion_steps < 1:
        raise SystemExit(f"--steps must be >= 2 and --insertion-steps >= 1, got {args.steps} and {args.insertion_steps}")
    state = {**B.code_state(args.allow_dirty), "code_sha256": B.code_sha256(CODE_FILES), "code_files": list(CODE_FILES)}
    names = list(args.names or (D.pool_names(args.model) if args.images == "pool" else D.shipped_names()))
    dev = MO.resolve_device(args.device)
    net, size, _ = MO.load_model(args.model, dev)
    settings = {
        "model": args.model, "source": args.images, "images": names, "input_size": size, "steps": args.steps,
        "rule": "left", "path_kwargs": EV.STUDY_PATH_KWARGS, "insertion_steps": args.insertion_steps,
        "insertion_start": "black", "pic_start": "blur", "reduce": "sum", "min_pred_value": args.min_pred_value,
        "pic_thresholds": list(M.PIC_THRESHOLDS), "jpeg_quality": args.jpeg_quality, "seed": args.seed,
        "dry_run": bool(args.dry_run),
    }
    file = unit_file(Path(args.out_dir), args.model, 128 if args.dry_run else args.steps)
    header = {"benchmark": "reference_idgi", "model": args.model, "methods": METHODS, "metrics": SCORED + ["completeness"],
              "target": "softmax probability of the predicted class (ImageNet-1k); black baseline; BlurIG from the σ = max_sigma blur"}
    run = B.PhotoRun(file, SCHEMA, settings, state, command, dev, header)
    if run.resumed:
        print(f"resume {file}: {len(run.cells)} of {len(names)} photos stored", flush=True)
    from tqdm.auto import tqdm

    for name in tqdm(run.todo(), desc=f"{args.model} IDGI study"):
        x, got = D.load_images(args.images, size=size, names=[name])
        if list(got) != [name]:
            raise SystemExit(f"load_images returned {got}, asked for {[name]}")
        run.add(name, photo_cell(net, x, name, settings, args.batch_size))
    run.finish()
    print(f"wrote {file}: {len(run.cells)} photos, {run.record()['provenance']['wall_s']} s", flush=True)
    return file


if __name__ == "__main__":
    main()
