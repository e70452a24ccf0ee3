"""The numerical floor of a stored Table 1 unit: its per-photo completeness errors recomputed under other arithmetic.

For a few photos of the stored unit results/reference/riemannopt_table1_<model>_<path>.json, every recipe row and n
of the unit is recomputed with the unit's own code (benchmarks/reference_riemannopt.py: row_args, the calibration
and points it stored, the targets it stored) under each variant:

  cpu_fp32_1thread   the shipped float32 model, torch.set_num_threads(1)
  cpu_fp32_2threads  the same at 2 threads
  cpu_fp64           model.double() and images in float64 (the path, nodes, weights and sums follow the model's
                     dtype through riemannkit.integrate.prepare), 1 thread

Per photo the record keeps, for each variant and each row and n, the relative error, Σ attr, f(x), f(x') and the
wall time, the stored unit's own values for the photo (variant 'cpu_unit') and the spread max − min across them.
riemannstudy.floor adds stored units made elsewhere (a GPU unit with TF32) when it reads the record.  The photos are
chosen by riemannstudy.floor.photo_moves/pick_photos (the most moved between the CPU unit and the GPU TF32 unit of
the same commit, and one around the median), and named with --photos.  One JSON under --out-dir, rewritten after
every photo and resumed by a run with the same settings and code (riemannstudy.runs.PhotoRun).

    python benchmarks/numerical_floor.py --photos pelican mantis bridge peacock --out-dir results/floor
    python benchmarks/numerical_floor.py --dry-run --allow-dirty --out-dir /tmp/floor   # 1 photo, n = 16, 2 rows
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import reference_riemannopt as R  # noqa: E402
from riemannstudy import provenance as PV, runs as RN  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannstudy import floor as F  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit import metrics as M  # noqa: E402
from riemannkit import models as MO  # noqa: E402

SCHEMA = 1
DRY_RUN = {"photos": ["spaniels"], "steps": [16], "rows": ["linear_left", "riemannopt"]}
# The code that shapes the numbers: the Table 1 unit's code and this script (and the study module it uses).
CODE_FILES = R.CODE_FILES + ("benchmarks/numerical_floor.py", "riemannstudy/floor.py")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def add_unit_args(ap: argparse.ArgumentParser) -> None:
    """The options every script that reads one stored Table 1 unit and stores one record takes."""
    ap.add_argument("--unit", help="the stored Table 1 unit (default results/reference/riemannopt_table1_<model>_<path>.json)")
    ap.add_argument("--out-dir", help="folder of the record (default _build/reference, a dry run's _build/reference_dry_run; "
                                      "results/floor only when named: the stored records are evidence)")
    ap.add_argument("--overwrite", action="store_true", help="replace a stored record made with other settings or code")
    ap.add_argument("--allow-dirty", action="store_true", help="store from a dirty tree, recording the sha256 of git diff HEAD")


def read_unit(args) -> tuple[str, dict]:
    """(repository-relative file, record) of the stored Table 1 unit of args.model and args.path."""
    rel = args.unit or f"results/reference/{R.unit_file(Path(''), args.model, args.path).name}"
    unit = json.loads((ROOT / rel).read_text())
    if unit.get("model") != args.model or unit.get("path") != args.path:
        raise SystemExit(f"{rel} is a unit of {unit.get('model')}/{unit.get('path')}, not {args.model}/{args.path}")
    return rel, unit


def numerics(dtype: str, threads: int) -> dict:
    """The arithmetic of a CPU variant, in the keys stored units use (provenance['numerics'])."""
    return {"device_type": "cpu", "dtype": dtype, "tf32_conv": False, "tf32_matmul": False, "cudnn_benchmark": False,
            "deterministic": torch.are_deterministic_algorithms_enabled(), "threads": threads}


def unit_calibration(unit: dict) -> dict:
    """The calibration run_unit fits the recipes' points on, rebuilt from the stored unit (as its resume does)."""
    c = unit["calibration"]
    return {"grid": np.asarray(c["grid"]), "gprime": np.asarray(c["per_image_gprime"]).mean(0),
            "released_grid": np.asarray(c["released_grid"]), "released_profile": np.asarray(c["released_profile"])}


def recipe_args(unit: dict, cal: dict, row: str, n: int) -> tuple[dict, float]:
    """attribute() keyword arguments of one row (R.row_args) and how far its refitted points lie from the stored ones."""
    kwargs, pts = R.row_args(row, unit["path"], n, cal)
    if pts is None:
        return kwargs, 0.0
    gap = float(np.max(np.abs(np.asarray(pts) - np.asarray(unit["points"][row][str(n)]))))
    if gap > 1e-9:
        raise SystemExit(f"{row} at n = {n}: the refitted points differ from the unit's by {gap:.2g} (> 1e-9): "
                         "the fit code or its libraries changed; this run would not measure the unit's recipe")
    return kwargs, gap


def variant_cell(net, x, target, unit: dict, cal: dict, rows: list[str], steps: list[int], batch_size: int) -> dict:
    """Every row and n of the unit for one photo with the model and images as given (their dtype is the variant's)."""
    kw = R.path_kwargs(unit["path"], argparse.Namespace(gig_fraction=unit["settings"]["gig_fraction"],
                                                        gig_max_dist=unit["settings"]["gig_max_dist"]))
    out, gaps = {}, {}
    for row in rows:
        for n in steps:
            args, gaps[f"{row}/{n}"] = recipe_args(unit, cal, row, n)
            ts = time.time()
            r = I.attribute(net, x, path=unit["path"], target=target, output="prob", batch_size=batch_size, **args, **kw)
            if r.attr.dtype != x.dtype:
                raise SystemExit(f"the attribution came back in {r.attr.dtype} for {x.dtype} images")
            out.setdefault(row, {})[str(n)] = {
                "rel_error": float(M.completeness_error(r.attr, r.f_input, r.f_baseline)[0]),
                "sum_attr": float(r.attr.double().sum()), "f_input": float(r.f_input[0]),
                "f_baseline": float(r.f_baseline[0]), "n_gradients": int(r.n_gradients), "wall_s": round(time.time() - ts, 2)}
    return {"rows": out, "max_point_gap": max(gaps.values(), default=0.0)}


def photo_cell(nets: dict, x32: torch.Tensor, name: str, unit: dict, cal: dict, settings: dict) -> dict:
    """One photo under every variant, with the stored unit's values and the per-cell spread across them."""
    from tqdm.auto import tqdm

    target = torch.tensor([unit["images"]["targets"][unit["images"]["evaluated"].index(name)]])
    cell = {"target": int(target), "variants": {}}
    for variant in tqdm(settings["variants"], desc=name, leave=False):
        dtype, threads = F.COMPUTED_VARIANTS[variant]
        torch.set_num_threads(threads)
        t0 = time.time()
        res = variant_cell(nets[dtype], x32.to(DTYPES[dtype]), target, unit, cal, settings["rows"], settings["steps"],
                           settings["batch_size"])
        cell["variants"][variant] = {**res, "numerics": numerics(dtype, threads), "unit_variant": F.UNIT_VARIANT[variant],
                                     "wall_s": round(time.time() - t0, 1)}
    cell["variants"]["cpu_unit"] = {
        "rows": {row: {str(n): {"rel_error": float(F.unit_errors(unit, row, n, [name])[0])} for n in settings["steps"]}
                 for row in settings["rows"]},
        "unit_variant": "cpu", "source": settings["unit"]}
    cell["spread"] = {row: {str(n): float(F.spread({v: [c["rows"][row][str(n)]["rel_error"]] for v, c in cell["variants"].items()})[0])
                            for n in settings["steps"]} for row in settings["rows"]}
    return cell


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0", choices=R.MODELS)
    ap.add_argument("--path", default="ig", choices=R.PATHS)
    ap.add_argument("--photos", nargs="+", help="photos of the unit to recompute, most important first")
    ap.add_argument("--variants", nargs="+", default=list(F.COMPUTED_VARIANTS), choices=list(F.COMPUTED_VARIANTS))
    ap.add_argument("--rows", nargs="+", help="recipe rows (default: every row of the unit)")
    ap.add_argument("--steps", nargs="+", type=int, help="n (default: every n of the unit)")
    ap.add_argument("--batch-size", type=int, default=16, help="points per forward/backward (the stored CPU units: 16)")
    add_unit_args(ap)
    ap.add_argument("--dry-run", action="store_true", help=f"{DRY_RUN['photos']}, n in {DRY_RUN['steps']}, rows {DRY_RUN['rows']}")
    args = ap.parse_args(argv)
    command = "python benchmarks/numerical_floor.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.dry_run:
        args.photos, args.steps, args.rows = args.photos or DRY_RUN["photos"], args.steps or DRY_RUN["steps"], args.rows or DRY_RUN["rows"]
    if not args.photos:
        raise SystemExit("--photos is required: name the unit's photos to recompute (riemannstudy.floor.pick_photos chooses them)")
    unit_rel, unit = read_unit(args)
    bad = [p for p in args.photos if p not in unit["images"]["evaluated"]]
    steps = args.steps or list(unit["settings"]["steps"])
    rows = args.rows or list(unit["results"])
    if bad or set(steps) - set(unit["settings"]["steps"]) or set(rows) - set(unit["results"]):
        raise SystemExit(f"--photos, --steps and --rows must be the unit's: photos {unit['images']['evaluated']}, "
                         f"n {unit['settings']['steps']}, rows {list(unit['results'])}")
    state = {**PV.code_state(args.allow_dirty), "code_sha256": PV.code_sha256(CODE_FILES), "code_files": list(CODE_FILES)}
    dev = torch.device("cpu")
    net32, size, _ = MO.load_model(args.model, dev)
    if size != unit["settings"]["input_size"]:
        raise SystemExit(f"the model takes {size} px, the unit {unit['settings']['input_size']} px")
    nets = {"float32": net32, "float64": MO.load_model(args.model, dev)[0].double()}
    settings = {"model": args.model, "path": args.path, "unit": unit_rel, "unit_commit": unit["provenance"]["git_commit"],
                "unit_code_sha256": unit["provenance"].get("code_sha256"), "images": list(args.photos), "rows": rows,
                "steps": steps, "variants": list(args.variants), "batch_size": args.batch_size, "input_size": size,
                "dry_run": bool(args.dry_run)}
    file = RN.reference_out_dir(args.out_dir, args.dry_run, args.allow_dirty) / f"numerical_floor_{args.model}{'_' + args.path if args.path != 'ig' else ''}.json"
    header = {"benchmark": "numerical_floor", "model": args.model, "path": args.path,
              "metric": unit["metric"], "target": unit["target"], "baseline": unit["baseline"],
              "variants": {v: {"dtype": F.COMPUTED_VARIANTS[v][0], "threads": F.COMPUTED_VARIANTS[v][1],
                               "unit_variant": F.UNIT_VARIANT[v]} for v in args.variants},
              "note": ("the recipes' points are refitted by reference_riemannopt.row_args from the unit's stored calibration "
                       "and checked against its stored points (max_point_gap per variant); the targets are the unit's; "
                       "one photo per call to attribute, batch_size points per pass (the unit passed 16 photos at once); "
                       "the model's normalisation constants are float32 values, widened exactly by model.double()")}
    run = RN.PhotoRun(file, SCHEMA, settings, state, command, dev, header, overwrite=args.overwrite)
    if run.resumed:
        print(f"resume {file}: {len(run.cells)} of {len(args.photos)} photos stored", flush=True)
    cal = unit_calibration(unit)
    for name in run.todo():
        x, got = D.load_images(unit["settings"]["images"], size=size, names=[name])
        if list(got) != [name]:
            raise SystemExit(f"load_images returned {got}, asked for {[name]}")
        cell = photo_cell(nets, x, name, unit, cal, settings)
        run.add(name, cell)
        worst = max(cell["spread"].items(), key=lambda kv: max(kv[1].values()))
        print(f"{name}: " + ", ".join(f"{v} {c['wall_s']} s" for v, c in cell["variants"].items() if "wall_s" in c)
              + f"; largest spread {max(worst[1].values()):.3g} ({worst[0]})", flush=True)
    run.finish()
    print(f"wrote {file}: {len(run.cells)} photos, {run.record()['provenance']['wall_s']} s", flush=True)
    return file


if __name__ == "__main__":
    main()
