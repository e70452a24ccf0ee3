"""The stored reference run for RiemannOpt's Figure 3: insertion scores with and without RiemannOpt, photo by photo.

For one model and each path (IG, BlurIG, Guided IG) with a stored Table 1 unit
(results/reference/riemannopt_table1_<model>_<path>.json, made by reference_riemannopt.py), every photo that unit
evaluated gets, for each n in --steps that the unit holds, two maps: the paper's baseline (right sum at n equispaced
points for IG and BlurIG, left sum for Guided IG, as the authors' code) and RiemannOpt (the released recipe at the
points stored in that unit, fitted on its calibration photos).  Each map is scored as the authors' scripts do:
insertion from a black image in 20 steps of 5 %, pixels ranked by Σ_c |map|, AUC by the trapezoid rule, of the
probability ("Insertion Score") and of the probability over p(x) ("Normalized Insertion Score").  The relative
completeness error of every map is stored too: it must reproduce the Table 1 unit's per-image value (same points,
same photo), which ties this run to that one.  Photos are stored as they finish; a run resumes photo by photo when
the settings, the code (CODE_FILES at HEAD) and the numerics are the same; another stored unit stops the run
(--overwrite replaces it).  It reads the Table 1 units of its own numerics variant.  Units go to _build/reference
unless --out-dir names a folder (results/reference for evidence); a dry run reads and writes _build/reference_dry_run.

    python benchmarks/reference_insertion.py --model efficientnet_lite0 --device auto --out-dir results/reference
    python benchmarks/reference_insertion.py --dry-run   # after reference_riemannopt.py --dry-run
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from riemannstudy import provenance as PV, runs as RN, units as U  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit import metrics as M  # noqa: E402
from riemannkit import models as MO  # noqa: E402
from riemannkit import schedule as S  # noqa: E402
from riemannstudy import units as U  # noqa: E402

PATHS = ("ig", "blurig", "guidedig")
BASELINE = {"ig": "linear_right", "blurig": "linear_right", "guidedig": "linear_left"}  # the authors' sums
SCHEMA = 1
CODE_FILES = tuple(f"riemannkit/{m}.py" for m in ("integrate", "paths", "blur", "schedule", "metrics", "models", "data",
                                                   "pool", "validate")) + ("benchmarks/reference_insertion.py",)


def recipe_args(recipe: str, path: str, n: int, unit: dict) -> dict:
    """attribute() keyword arguments of the baseline or of RiemannOpt at the unit's stored points."""
    if recipe == "riemannopt":
        return S.released_attribute_args(np.asarray(unit["points"]["riemannopt"][str(n)]), path)
    return {"rule": "right" if recipe == "linear_right" else "left", "n": n}


def photo_cell(net, x, units: dict, steps: list[int], settings: dict, batch_size: int) -> dict:
    """Every (path, n, recipe) map of one photo (1, C, H, W): insertion AUCs, its curve and the completeness error."""
    t0 = time.time()
    cell: dict = {}
    for path, u in units.items():
        cell[path] = {}
        for n in steps:
            if str(n) not in u["points"].get("riemannopt", {}):
                continue
            cell[path][str(n)] = {}
            for recipe in (BASELINE[path], "riemannopt"):
                r = I.attribute(net, x, path=path, output="prob", batch_size=batch_size, **recipe_args(recipe, path, n, u),
                                **u["path_kwargs"])
                curve, auc = M.insertion_deletion(net, x, r.attr, "black", r.target, "insertion", settings["insertion_steps"],
                                                  "prob", batch_size, settings["reduce"])
                p = float(curve[0, -1])
                cell[path][str(n)][recipe] = {
                    "insertion_prob": float(auc[0]), "insertion_ratio": float(auc[0]) / p,
                    "rel_error": float(M.completeness_error(r.attr, r.f_input, r.f_baseline)[0]),
                    "curve": [round(float(c), 6) for c in curve[0]], "n_gradients": int(r.n_gradients),
                }
    cell["wall_s"] = round(time.time() - t0, 2)
    return cell


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0", choices=tuple(MO.LITE_MODELS))
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    ap.add_argument("--steps", nargs="+", type=int, default=[16, 32], help="n of the Table 1 unit's points to score")
    ap.add_argument("--insertion-steps", type=int, default=20)
    ap.add_argument("--limit", type=int, help="only the first LIMIT photos")
    ap.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--units-dir", default=None,
                    help="where the Table 1 units are (default: results/reference; a dry run: _build/reference_dry_run)")
    RN.add_unit_arguments(ap)
    ap.add_argument("--dry-run", action="store_true", help="score the dry-run Table 1 units of reference_riemannopt.py --dry-run")
    args = ap.parse_args(argv)
    command = "python benchmarks/reference_insertion.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if any(n < 1 for n in args.steps) or args.insertion_steps < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise SystemExit("--steps, --insertion-steps, --batch-size and --limit must be >= 1")
    out_dir = RN.reference_out_dir(args.out_dir, args.dry_run, args.allow_dirty)
    units_dir = Path(args.units_dir) if args.units_dir else (PV.BUILD_DIR / "reference_dry_run" if args.dry_run else ROOT / "results" / "reference")
    if not units_dir.is_dir():
        raise SystemExit(f"--units-dir {units_dir} is not a folder")
    state = {**PV.code_state(args.allow_dirty), "code_sha256": PV.code_sha256(CODE_FILES), "code_files": list(CODE_FILES)}
    dev = MO.resolve_device(args.device)
    variant = U.numerics_variant(U.set_numerics(dev, args.allow_tf32))
    units = {}
    for path in args.paths:
        f = RN.unit_path(units_dir, "riemannopt_table1", args.model, variant, path=path)
        if f.is_file():
            u = U.read_unit(f)  # checked: its name, numbers and keys
            if bool(u["settings"].get("dry_run")) == args.dry_run:
                units[path] = u
    if not units:
        raise SystemExit(f"no Table 1 unit of {args.model} ({variant} variant) for {args.paths} under {units_dir} "
                         f"(dry run: {args.dry_run})")
    first = next(iter(units.values()))
    names = list(first["images"]["evaluated"])
    if any(u["images"]["evaluated"] != names for u in units.values()):
        raise SystemExit("the Table 1 units evaluated different photos; score one path at a time (--paths)")
    names = names[: args.limit] if args.limit else names
    steps = [n for n in args.steps if any(str(n) in u["points"].get("riemannopt", {}) for u in units.values())]
    settings = {"model": args.model, "paths": list(units), "steps": steps, "images": names, "source": first["settings"]["images"],
                "insertion_steps": args.insertion_steps, "insertion_start": "black", "reduce": "abs_sum",
                "units": {p: {"file": u["file"], "commit": u["provenance"].get("git_commit"),
                              "calibration": u["images"]["calibration"]} for p, u in units.items()},
                "dry_run": bool(args.dry_run)}
    net, size, _ = MO.load_model(args.model, dev)
    if size != first["settings"]["input_size"]:
        raise SystemExit(f"input size {size} differs from the Table 1 unit's {first['settings']['input_size']}")
    file = RN.unit_path(out_dir, "riemannopt_insertion", args.model, variant)
    header = {"benchmark": "reference_insertion", "model": args.model, "baseline": {p: BASELINE[p] for p in units},
              "metric": "insertion from black, 20 steps, pixels ranked by Σ_c |map|; AUC of p (insertion_prob) and of p / p(x) (insertion_ratio)"}
    run = RN.PhotoRun(file, SCHEMA, settings, state, command, dev, header, overwrite=args.overwrite)
    from tqdm.auto import tqdm

    for name in tqdm(run.todo(), desc=f"{args.model} insertion"):
        x, got = D.load_images(settings["source"], size=size, names=[name])
        if list(got) != [name]:
            raise SystemExit(f"load_images returned {got}, asked for {[name]}")
        run.add(name, photo_cell(net, x.to(dev), units, steps, settings, args.batch_size))
    run.finish()
    print(f"wrote {file}: {len(run.cells)} photos", flush=True)
    return file


if __name__ == "__main__":
    main()
