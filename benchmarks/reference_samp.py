"""The stored reference run for SAMP's deletion/insertion claim over the photo pool, photo by photo.

For every photo of the pool the model classifies correctly, the maps of IG, BlurIG, Guided IG and SAMP (and SAMP +
IDGI) at n steps (SAMP: n per direction, as the SAMP chapter) are scored by deletion (towards black; lower is better)
and insertion (onto the blurred photo, the RISE protocol; higher is better), 20 steps each, pixels ranked by the
signed channel sum, with each map's relative completeness error.  SAMP's settings are the SAMP chapter's (fraction
16/224 of the pixels per step, momentum 0.5, as the precursor code ExplainAttr).  Photos are stored as they finish
(riemannstudy.runs.PhotoRun): a run resumes photo by photo under the same settings, code (CODE_FILES at HEAD) and
numerics; another stored unit stops the run (--overwrite replaces it).  Units go to _build/reference unless
--out-dir names a folder (results/reference for evidence); a dry run goes to _build/reference_dry_run.

    python benchmarks/reference_samp.py --model efficientnet_lite0 --device auto --out-dir results/reference
    python benchmarks/reference_samp.py --dry-run   # 1 shipped photo, 4 steps, into _build/reference_dry_run
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from riemannstudy import provenance as PV, runs as RN, units as U  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannkit import evaluation as EV  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit import metrics as M  # noqa: E402
from riemannkit import models as MO  # noqa: E402
from riemannstudy import units as U  # noqa: E402

METHODS = ["ig", "blurig", "guidedig", "samp", "samp+idgi"]
SCORED = ["deletion", "insertion_prob"]
DRY_RUN = {"names": ["chelsea"], "steps": 4}
SCHEMA = 1
CODE_FILES = tuple(f"riemannkit/{m}.py" for m in ("integrate", "paths", "blur", "idgi", "evaluation", "scoring", "metrics", "models",
                                                   "data", "pool", "validate")) + ("benchmarks/reference_samp.py",)


def photo_cell(net, x: torch.Tensor, settings: dict, batch_size: int) -> dict:
    """Every method's deletion, insertion and completeness error for one photo (1, C, H, W)."""
    t0 = time.time()
    x, target = I.prepare(net, x, None, batch_size)
    maps = EV.method_maps(net, x, METHODS, settings["steps"], target=target, batch_size=batch_size,
                          path_kwargs={"samp": settings["samp"]})
    table = EV.metric_table(net, x, {m: r.attr for m, r in maps.items()}, SCORED, target, steps=settings["metric_steps"],
                            insertion_start=settings["insertion_start"], reduce=settings["reduce"], batch_size=batch_size)
    scores = {m: {k: rec["per_image"][0] for k, rec in row.items()} for m, row in table.items()}
    for m, r in maps.items():
        scores[m]["completeness"] = float(M.completeness_error(r.attr, r.f_input, r.f_baseline)[0])
    first = maps[METHODS[0]]
    return {"target": int(target[0]), "p": float(first.f_input[0]), "scores": scores,
            "n_gradients": {m: int(r.n_gradients) for m, r in maps.items()}, "wall_s": round(time.time() - t0, 2)}


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0", choices=tuple(MO.LITE_MODELS))
    ap.add_argument("--names", nargs="+", help="photo names (default: the pool photos the model classifies correctly)")
    ap.add_argument("--steps", type=int, default=16, help="gradient evaluations per photo and path (SAMP: per direction)")
    ap.add_argument("--samp-fraction", type=float, default=16 / 224)
    ap.add_argument("--samp-momentum", type=float, default=0.5)
    ap.add_argument("--metric-steps", type=int, default=20)
    ap.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--batch-size", type=int, default=16)
    RN.add_unit_arguments(ap)
    ap.add_argument("--dry-run", action="store_true", help=f"shipped {DRY_RUN['names']}, {DRY_RUN['steps']} steps")
    args = ap.parse_args(argv)
    command = "python benchmarks/reference_samp.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    source = "shipped" if args.dry_run else "pool"
    if args.dry_run:
        args.names, args.steps = args.names or DRY_RUN["names"], DRY_RUN["steps"]
    if args.steps < 2 or args.metric_steps < 1 or args.batch_size < 1:
        raise SystemExit(f"--steps must be >= 2, --metric-steps and --batch-size >= 1, got {args.steps}, "
                         f"{args.metric_steps} and {args.batch_size}")
    out_dir = RN.reference_out_dir(args.out_dir, args.dry_run, args.allow_dirty)
    state = {**PV.code_state(args.allow_dirty), "code_sha256": PV.code_sha256(CODE_FILES), "code_files": list(CODE_FILES)}
    names = list(args.names or D.pool_names(args.model))
    dev = MO.resolve_device(args.device)
    variant = U.numerics_variant(U.set_numerics(dev, args.allow_tf32))
    net, size, _ = MO.load_model(args.model, dev)
    settings = {"model": args.model, "source": source, "images": names, "input_size": size, "steps": args.steps,
                "samp": {"fraction": args.samp_fraction, "momentum": args.samp_momentum}, "metric_steps": args.metric_steps,
                "insertion_start": "blur", "reduce": "sum", "dry_run": bool(args.dry_run)}
    header = {"benchmark": "reference_samp", "model": args.model, "methods": METHODS, "metrics": SCORED + ["completeness"]}
    file = RN.unit_path(out_dir, "samp_pool", args.model, variant, steps=args.steps)
    run = RN.PhotoRun(file, SCHEMA, settings, state, command, dev, header, overwrite=args.overwrite)
    from tqdm.auto import tqdm

    for name in tqdm(run.todo(), desc=f"{args.model} SAMP"):
        x, got = D.load_images(source, size=size, names=[name])
        if list(got) != [name]:
            raise SystemExit(f"load_images returned {got}, asked for {[name]}")
        run.add(name, photo_cell(net, x.to(dev), settings, args.batch_size))
    file = run.finish()
    print(f"wrote {file}: {len(run.cells)} photos", flush=True)
    return file


if __name__ == "__main__":
    main()
