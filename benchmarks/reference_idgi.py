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
cell (per-image values, the PIC curves' raw points so SIC's median curve aggregates exactly, the insertion
curves).  Photos are computed in groups (--group-size; every pass holds all the group's photos, Guided IG's steps
included, and PIC's WebP sizes are encoded in a process pool while the device works) and stored photo by photo
as each group finishes, each cell the one its photo alone gives, to float rounding.  A run resumes photo by photo
when the settings and the code are the same (code_sha256: the committed contents of CODE_FILES) and can span
sessions; each session's share is listed under provenance.parts.  The script refuses to store from a dirty tree
unless --allow-dirty.  Another stored unit (other settings, code or numerics, or one that does not parse) stops the
run and is kept; --overwrite replaces it.  Units go to _build/reference unless --out-dir names a folder
(results/reference for evidence); a dry run goes to _build/reference_dry_run, never under results/.

    python benchmarks/reference_idgi.py --model efficientnet_lite0 --device auto --out-dir results/reference
    python benchmarks/reference_idgi.py --model efficientnet_lite0 --device cuda --batch-size 256   # one group on a GPU
    python benchmarks/reference_idgi.py --model efficientnet_lite0 --steps 8 --out-dir results/reference   # …_n8.json
    python benchmarks/reference_idgi.py --dry-run   # 2 shipped photos, 4 steps, into _build/reference_dry_run
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
from riemannstudy import provenance as PV, runs as RN, units as U  # noqa: E402
from riemannkit import compression as C  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannkit import evaluation as EV  # noqa: E402
from riemannkit import metrics as M  # noqa: E402
from riemannkit import models as MO  # noqa: E402
from riemannstudy import units as U  # noqa: E402

MODELS = tuple(MO.LITE_MODELS)
METHODS = list(EV.STUDY_ORDER)
SCORED = ["insertion_prob", "insertion_ratio", "deletion", "sic_webp", "aic_webp", "sic_msssim", "aic_msssim"]
DRY_RUN = {"names": ["chelsea", "coffee"], "steps": 4}
SCHEMA = 1
# The files whose code shapes this run's numbers: a partial unit resumes only when they are unchanged at HEAD.
CODE_FILES = tuple(f"riemannkit/{m}.py" for m in ("integrate", "paths", "blur", "idgi", "evaluation", "scoring", "metrics", "models",
                                                   "data", "pool", "validate", "compression")) + ("benchmarks/reference_idgi.py",)


def unit_file(out_dir: Path, model: str, steps: int = 128, variant: str = "cpu") -> Path:
    """idgi_study_<model>.json at the study's 128 steps; idgi_study_<model>_n<steps>.json otherwise (Table 4 pairs the
    two: the change from 8 to 128 steps); a variant other than 'cpu' is named before .json (units.variant_file_name)."""
    return RN.unit_path(out_dir, "idgi_study", model, variant, steps=steps)


def control_map(name: str, shape: torch.Size, seed: int) -> torch.Tensor:
    """The random control map of one photo: seeded by the photo's name, so a resumed run draws the same one."""
    s = int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:12], 16)
    return torch.rand(shape, generator=torch.Generator().manual_seed(s))


# Photos per group (--group-size) when not given: on a CPU a few (bigger batches are not faster there, and a group is
# what a run cut short loses); on CUDA as many as the free memory holds (every pool photo on an H200).
CPU_GROUP = 2
# Images per forward pass of the metrics (insertion/deletion curves, PIC's bokeh images) on CUDA when not given.
CUDA_METRIC_BATCH = 1024


def group_size(device: torch.device, n_photos: int, steps: int, image_numel: int) -> int:
    """The default --group-size: CPU_GROUP on a CPU; on CUDA the photos whose Guided IG fits in half the free memory.

    Guided IG keeps its n gradients and n moves of the photo and its JPEG copy in float32 while IDGI combines them in
    float64: about 64 · n · C·H·W bytes per photo at the peak (1.2 GB for Lite0 at 128 steps)."""
    if device.type != "cuda":
        return max(1, min(CPU_GROUP, n_photos))
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(n_photos, int(0.5 * free // (64 * steps * image_numel))))


def _prefetch_pic(xq: torch.Tensor, start: torch.Tensor, maps: list[torch.Tensor], reduce: str) -> None:
    """Start the WebP encodes of these maps' PIC images in the CPU pool; metric_table collects them later."""
    k = len(maps)
    M.prefetch_webp_bytes(M.pic_images(xq.repeat(k, 1, 1, 1), torch.cat(maps), start=start.repeat(k, 1, 1, 1), reduce=reduce))


def photo_cells(net, x: torch.Tensor, names: list[str], settings: dict, batch_size: int, metric_batch_size: int | None = None,
                prefetch: bool | None = None) -> list[dict]:
    """Tables 1–3 and Table 5 of a group of photos x (B, C, H, W) in [0, 1]: one cell per photo, the cell the photo
    alone gives (to float rounding: the passes hold other photos beside it; tests/test_reference_idgi.py).

    The photos go through every stage together: the maps of [x; JPEG(x)] path by path (Guided IG's sequential steps
    for all photos at once), then one metric_table of every method × photo in passes of ``metric_batch_size`` images
    (default ``batch_size``).  ``prefetch`` (default: on an accelerator) encodes each path's PIC images as WebP in the
    CPU pool while the device computes the next path and the curves."""
    t0 = time.time()
    names = list(names)
    b = x.shape[0]
    if len(names) != b:
        raise ValueError(f"names must name the {b} photos of x, got {len(names)} names")
    param = next(iter(net.parameters()))
    # The device and float dtype riemannkit.integrate.prepare gives the images: the PIC images prefetched here must be
    # those metric_table builds, to the bit.
    dev, dtype = param.device, (param.dtype if param.is_floating_point() else torch.float32)
    metric_batch_size = metric_batch_size or batch_size
    prefetch = dev.type != "cpu" if prefetch is None else bool(prefetch)
    steps, reduce = settings["steps"], settings["reduce"]
    paths = list(dict.fromkeys(EV.parse_method(m)[0] for m in METHODS))
    xq = M._to_uint8(x.detach().cpu().float()).float() / 255  # the clean copies jpeg_stability_table explains
    xq_dev = xq.to(device=dev, dtype=dtype)
    clean = {"random": torch.cat([control_map(n, (1, *xq.shape[1:]), settings["seed"]) for n in names]).to(dev)}
    start = M.pic_blur_start(xq_dev) if prefetch and settings["pic_start"] == "blur" else None
    try:
        if start is not None:
            _prefetch_pic(xq_dev, start, [clean["random"]], reduce)
        stab, maps, target = {}, {}, None
        # IG and BlurIG first: their PIC images encode on the CPU while Guided IG's sequential steps run.
        for path in sorted(paths, key=lambda p: p == "guidedig"):
            tab, got = EV.jpeg_stability_table(net, x, [path], steps, settings["jpeg_quality"], target, "prob", batch_size,
                                               reduce, settings["path_kwargs"])
            stab.update(tab)
            maps.update(got)
            target = next(iter(got.values())).target[:b]
            if start is not None:
                _prefetch_pic(xq_dev, start, [r.attr[:b] for r in got.values()], reduce)
        clean = {**{m: maps[EV.LABELS[m]].attr[:b] for m in METHODS}, "random": clean["random"]}
        table = EV.metric_table(net, xq_dev, clean, SCORED, target, steps=settings["insertion_steps"],
                                insertion_start=settings["insertion_start"], reduce=reduce, pic_start=settings["pic_start"],
                                min_pred_value=settings["min_pred_value"], seed=settings["seed"], batch_size=metric_batch_size,
                                max_pairs=max(32, metric_batch_size), per_image_curves=True)
    finally:
        if start is not None:
            C.discard_prefetched()
    wall = round((time.time() - t0) / b, 2)  # each photo's share of the group's wall time
    cells = []
    for i in range(b):
        scores, pic, curves = {}, {}, {}
        for method, row in table.items():
            scores[method] = {metric: rec["per_image"][i] for metric, rec in row.items()}
            pic[method] = {metric: {k: v[i] for k, v in rec["points"].items()} for metric, rec in row.items() if "points" in rec}
            curves[method] = {metric: rec["per_image_curves"][i] for metric, rec in row.items() if metric.startswith(("insertion", "deletion"))}
        for m in METHODS:
            r = maps[EV.LABELS[m]]
            scores[m]["completeness"] = float(M.completeness_error(r.attr[i : i + 1], r.f_input[i : i + 1], r.f_baseline[i : i + 1])[0])
        f = maps[EV.LABELS[METHODS[0]]]
        cells.append({
            "target": int(target[i]), "p": float(f.f_input[i]), "p_jpeg": float(f.f_input[b + i]),
            "n_gradients": {p: int(maps[EV.LABELS[p]].n_gradients) for p in paths},
            "scores": scores, "pic": pic, "curves": curves,
            "jpeg": {m: {k: float(v[i]) for k, v in stab[EV.LABELS[m]].items()} for m in METHODS},
            "wall_s": wall,
        })
    return cells


def photo_cell(net, x: torch.Tensor, name: str, settings: dict, batch_size: int) -> dict:
    """Tables 1–3 and Table 5 of one photo (x: (1, C, H, W) in [0, 1]): :func:`photo_cells` of a group of one."""
    return photo_cells(net, x, [name], settings, batch_size)[0]


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
    ap.add_argument("--group-size", type=int, help=f"photos computed together (default: {CPU_GROUP} on a CPU; on CUDA as many as "
                    "half the free memory holds); cells are stored photo by photo as each group finishes")
    ap.add_argument("--metric-batch-size", type=int, help=f"images per forward pass of the curves (default: --batch-size; {CUDA_METRIC_BATCH} on CUDA)")
    RN.add_unit_arguments(ap)
    ap.add_argument("--dry-run", action="store_true", help=f"shipped {DRY_RUN['names']}, {DRY_RUN['steps']} steps")
    args = ap.parse_args(argv)
    command = "python benchmarks/reference_idgi.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.dry_run:
        args.images, args.names, args.steps = "shipped", args.names or DRY_RUN["names"], DRY_RUN["steps"]
    if args.steps < 2 or args.insertion_steps < 1 or args.batch_size < 1:
        raise SystemExit(f"--steps must be >= 2, --insertion-steps and --batch-size >= 1, got {args.steps}, "
                         f"{args.insertion_steps} and {args.batch_size}")
    for opt in ("group_size", "metric_batch_size"):
        if getattr(args, opt) is not None and getattr(args, opt) < 1:
            raise SystemExit(f"--{opt.replace('_', '-')} must be >= 1, got {getattr(args, opt)}")
    if not (0 <= args.min_pred_value <= 1) or not (1 <= args.jpeg_quality <= 100):
        raise SystemExit(f"--min-pred-value must be in [0, 1] and --jpeg-quality in 1..100, got {args.min_pred_value} "
                         f"and {args.jpeg_quality}")
    out_dir = RN.reference_out_dir(args.out_dir, args.dry_run, args.allow_dirty)
    state = {**PV.code_state(args.allow_dirty), "code_sha256": PV.code_sha256(CODE_FILES), "code_files": list(CODE_FILES)}
    names = list(args.names or (D.pool_names(args.model) if args.images == "pool" else D.shipped_names()))
    dev = MO.resolve_device(args.device)
    variant = U.numerics_variant(U.set_numerics(dev, args.allow_tf32))
    C.encoder_pool()  # the WebP encoders fork now, from a process that holds no model yet
    net, size, _ = MO.load_model(args.model, dev)
    settings = {
        "model": args.model, "source": args.images, "images": names, "input_size": size, "steps": args.steps,
        "rule": "left", "path_kwargs": EV.STUDY_PATH_KWARGS, "insertion_steps": args.insertion_steps,
        "insertion_start": "black", "pic_start": "blur", "reduce": "sum", "min_pred_value": args.min_pred_value,
        "pic_thresholds": list(M.PIC_THRESHOLDS), "jpeg_quality": args.jpeg_quality, "seed": args.seed,
        "dry_run": bool(args.dry_run),
    }
    file = unit_file(out_dir, args.model, args.steps, variant)
    header = {"benchmark": "reference_idgi", "model": args.model, "methods": METHODS, "metrics": SCORED + ["completeness"],
              "target": "softmax probability of the predicted class (ImageNet-1k); black baseline; BlurIG from the σ = max_sigma blur"}
    run = RN.PhotoRun(file, SCHEMA, settings, state, command, dev, header, overwrite=args.overwrite)
    if run.resumed:
        print(f"resume {file}: {len(run.cells)} of {len(names)} photos stored", flush=True)
    from tqdm.auto import tqdm

    todo = run.todo()
    group = args.group_size or group_size(dev, len(todo), args.steps, 3 * size * size)
    metric_batch = args.metric_batch_size or (CUDA_METRIC_BATCH if dev.type == "cuda" else args.batch_size)
    with tqdm(total=len(todo), desc=f"{args.model} IDGI study, {group} photo(s) at a time") as bar:
        for g0 in range(0, len(todo), group):
            part = todo[g0 : g0 + group]
            x, got = D.load_images(args.images, size=size, names=part)
            if list(got) != part:
                raise SystemExit(f"load_images returned {got}, asked for {part}")
            # one write per group: a run cut short keeps every finished group
            run.add_group(dict(zip(part, photo_cells(net, x, part, settings, args.batch_size, metric_batch))))
            bar.update(len(part))
    run.finish()
    print(f"wrote {file}: {len(run.cells)} photos, {run.record()['provenance']['wall_s']} s", flush=True)
    return file


if __name__ == "__main__":
    main()
