"""The stored reference run for the chapter "Attribution to a tolerance", photo by photo, on one model.

For every photo of the pool (riemannkit.data.pool_names(model)), for each path (IG from black; BlurIG from the
σ = 50 blur), f the softmax probability of the predicted class:

  reference    --ref-n nodes (4096 by default) of the path's reference rule (--ref-rule; by default Gauss–Legendre for
               IG and Gauss–Legendre graded toward α = 1 for BlurIG, riemannkit.evaluation.REF_RULES: BlurIG's
               integrand lives at small σ); on the first --ref-check-photos photos also with --ref-n / 2: the relative
               L2 distance of the two maps is the convergence check (for an integrand whose error falls as 1/n it is
               about the error of the half, twice that of the reference);
  adaptive     one run of attribute(tol=[0.1, 0.05, 0.01], n=--n0, n_max=--n-max): its state where each tolerance
               stopped (nested: the same run passes through all three): gradients used, estimated map error,
               completeness error, whether n_max stopped it, node positions;
  left         the left rule at n = 4, 8, …, --left-max from one nested set of --left-max nodes (and, for the
               figure, ‖g(α)‖₂ and Σ_pixels g(α) at those nodes);
  riemannopt   the released RiemannOpt schedule at n = --ro-steps (16 … 256): fit_released_schedule on the released
               |g'| profile stored in results/reference/riemannopt_{table1,points}_<model>_<path>.json (calibrated on its
               8 calibration photos, the first 8 of the pool: in-sample there), right sums (released_attribute_args);

each map's relative L2 error ‖A − A_ref‖₂ / ‖A_ref‖₂ against the reference and its relative completeness error
|Σ A − Δf| / |Δf| (Δf from the reference's passes).  Photos are stored as they finish (riemannstudy.runs.PhotoRun): a
run resumes photo by photo under the same settings, code (CODE_FILES at HEAD) and numerics.  The unit options are
every reference script's (riemannstudy.runs.add_unit_arguments): units go to _build/reference unless --out-dir names a
folder (results/reference stores evidence); on CUDA strict float32 unless --allow-tf32, the numerics variant in the
file name (tolerance_<model>.cuda.json); --overwrite, --allow-dirty.

    python benchmarks/reference_tolerance.py --model efficientnet_lite0 --device cpu --first 4 --out-dir results/reference
    python benchmarks/reference_tolerance.py --model efficientnet_lite1 --device cuda --batch-size auto
    python benchmarks/reference_tolerance.py --dry-run   # 1 shipped photo, tiny sizes, into _build/reference_dry_run
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import riemannkit as rk  # noqa: E402
from riemannstudy import provenance as PV, runs as RN, units as U  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannkit import evaluation as EV  # noqa: E402
from riemannstudy import evidence as EVD  # noqa: E402
from riemannkit import models as MO  # noqa: E402

PATHS = ("ig", "blurig")
TOLS = (0.1, 0.05, 0.01)
DRY_RUN = {"names": ["chelsea"], "ref_n": 8, "left_max": 4, "ro_steps": [4], "tols": [0.5, 0.3], "n0": 5, "n_max": 9}
SCHEMA = 1
CODE_FILES = tuple(f"riemannkit/{m}.py" for m in ("integrate", "quadrature", "tolerance", "paths", "blur", "schedule", "evaluation",
                                                   "models", "data", "pool", "validate")) + ("benchmarks/reference_tolerance.py",)


def unit_file(out_dir: Path, model: str, variant: str = "cpu") -> Path:
    """tolerance_<model>.json (another numerics variant: tolerance_<model>.<variant>.json) in ``out_dir``."""
    return RN.unit_path(out_dir, "tolerance", model, variant)


def released_profile(model: str, path: str) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """The released |g'| profile stored for (model, path): (grid, profile, file name, calibration photos)."""
    for u in EVD.figure2_units():
        if u["model"] == model and u["path"] == path:
            cal = u["calibration"]
            return (np.asarray(cal["released_grid"]), np.asarray(cal["released_profile"]), u["file"],
                    list(u["images"].get("calibration", [])))
    raise SystemExit(f"no stored RiemannOpt unit for {model} {path} in results/reference: run benchmarks/reference_riemannopt.py "
                     f"--model {model} --paths {path} --points-only first")


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0", choices=tuple(MO.LITE_MODELS))
    ap.add_argument("--names", nargs="+", help="photo names (default: the pool photos the model classifies correctly)")
    ap.add_argument("--first", type=int, help="only the first K photos of the pool, in order (a documented subset)")
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    ap.add_argument("--tols", nargs="+", type=float, default=list(TOLS))
    ap.add_argument("--ref-n", type=int, default=4096, help="nodes of the reference map")
    ap.add_argument("--ref-rule", nargs="+", metavar="PATH=RULE", default=[],
                    help=f"the reference's quadrature rule per path (default: {' '.join(f'{p}={r}' for p, r in EV.REF_RULES.items())})")
    ap.add_argument("--ref-check-photos", type=int, default=2, help="photos (the first) also run at --ref-n / 2")
    ap.add_argument("--left-max", type=int, default=1024, help="the nested left rule's largest n (a power of 2)")
    ap.add_argument("--ro-steps", nargs="+", type=int, default=[16, 32, 64, 128, 256])
    ap.add_argument("--n0", type=int, default=17, help="the adaptive run's starting level (rule 'simpson', odd n)")
    ap.add_argument("--n-max", type=int, default=2049, help="the adaptive run's largest gradient count per image")
    ap.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--batch-size", default="16", help="points per forward/backward, or 'auto' (a GPU's free memory)")
    RN.add_unit_arguments(ap)
    ap.add_argument("--dry-run", action="store_true", help=f"shipped {DRY_RUN['names']}, tiny sizes {DRY_RUN}")
    args = ap.parse_args(argv)
    command = "python benchmarks/reference_tolerance.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    source = "shipped" if args.dry_run else "pool"
    if args.dry_run:
        args.names = args.names or DRY_RUN["names"]
        args.ref_n, args.left_max, args.ro_steps = DRY_RUN["ref_n"], DRY_RUN["left_max"], DRY_RUN["ro_steps"]
        args.tols, args.n0, args.n_max = DRY_RUN["tols"], DRY_RUN["n0"], DRY_RUN["n_max"]
    batch_size = "auto" if args.batch_size == "auto" else int(args.batch_size)
    if args.left_max < 4 or args.left_max & (args.left_max - 1):
        raise SystemExit(f"--left-max must be a power of 2 >= 4, got {args.left_max}")
    if args.ref_n < 2 or args.ref_n % 2:
        raise SystemExit(f"--ref-n must be an even number >= 2, got {args.ref_n}")
    ref_rule = {p: EV.REF_RULES[p] for p in args.paths}
    for item in args.ref_rule:
        p, _, r = item.partition("=")
        if p not in args.paths or r not in rk.RULES:
            raise SystemExit(f"--ref-rule {item!r}: accepted PATH=RULE with PATH one of {', '.join(args.paths)} and RULE one "
                             f"of {', '.join(rk.RULES)}")
        ref_rule[p] = r
    for p, r in ref_rule.items():
        try:
            rk.rule_nodes(r, args.ref_n)
        except ValueError as err:
            raise SystemExit(f"--ref-rule {p}={r} with --ref-n {args.ref_n}: {err}") from None
    state = {**PV.code_state(args.allow_dirty), "code_sha256": PV.code_sha256(CODE_FILES), "code_files": list(CODE_FILES)}
    names = list(args.names or D.pool_names(args.model))
    if args.first is not None:
        names = names[: args.first]
    out_dir = RN.reference_out_dir(args.out_dir, args.dry_run, args.allow_dirty)
    dev = MO.resolve_device(args.device)
    variant = U.numerics_variant(U.set_numerics(dev, args.allow_tf32))
    net, size, _ = MO.load_model(args.model, dev)
    profiles, ro_source = {}, {}
    for path in args.paths:
        grid, profile, file, calibration = released_profile(args.model, path)
        profiles[path] = (grid, profile)
        ro_source[path] = {"file": f"results/reference/{file}", "calibration": calibration}
    settings = {
        "model": args.model, "source": source, "images": names, "input_size": size, "paths": list(args.paths),
        "path_kwargs": {"blurig": {"max_sigma": rk.paths.BLUR_MAX_SIGMA}}, "output": "prob", "baseline": "black",
        "tols": sorted(args.tols, reverse=True), "ref_rule": ref_rule, "ref_n": args.ref_n,
        "ref_check_photos": args.ref_check_photos, "left_max": args.left_max, "ro_steps": list(args.ro_steps),
        "n0": args.n0, "n_max": args.n_max, "riemannopt": ro_source, "subset": None if args.first is None else
        f"the first {args.first} photos of the pool, in order", "dry_run": bool(args.dry_run),
    }
    header = {"benchmark": "reference_tolerance", "model": args.model, "methods": ["adaptive", "left", "riemannopt"],
              "target": "softmax probability of the predicted class (ImageNet-1k); black baseline; BlurIG from the σ = max_sigma blur",
              "batch_size": batch_size}
    run = RN.PhotoRun(unit_file(out_dir, args.model, variant), SCHEMA, settings, state, command, dev, header,
                     overwrite=args.overwrite)
    if run.resumed:
        print(f"resume {run.file}: {len(run.cells)} of {len(names)} photos stored", flush=True)
    from tqdm.auto import tqdm

    for name in tqdm(run.todo(), desc=f"{args.model} tolerance"):
        x, got = D.load_images(source, size=size, names=[name])
        if list(got) != [name]:
            raise SystemExit(f"load_images returned {got}, asked for {[name]}")
        run.add(name, EV.tolerance_cell(net, x.to(dev), settings, profiles, batch_size,
                                        check_reference=names.index(name) < settings["ref_check_photos"]))
    file = run.finish()
    print(f"wrote {file}: {len(run.cells)} photos, {run.record()['provenance']['wall_s']} s", flush=True)
    return file


if __name__ == "__main__":
    main()
