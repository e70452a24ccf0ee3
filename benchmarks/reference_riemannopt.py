"""The stored reference run for RiemannOpt's Table 1: relative completeness error per image, per recipe.

For one model and each path (IG, BlurIG, Guided IG) and n in --steps, every evaluated image gets the
relative completeness error |Σ attr − Δf| / |Δf| (Δf = f(x) − f(γ(0)), f = softmax probability of the
predicted class, black baseline) of each recipe in riemannkit.schedule.RECIPES:

  linear_left            n equispaced left points, left sum
  linear_right           n equispaced right points, right sum (the authors' IG/BlurIG baselines sum at right ends)
  riemannopt             the released recipe (fit_released_schedule, right sum; left for Guided IG as the authors')
  riemannopt_paper_left  the paper's left-point bound (fit_schedule), left sum
  gausslegendre          n Gauss–Legendre nodes
  density                √|g'| density schedule (density_schedule), left sum

Guided IG takes only left sums, so its linear_right and gausslegendre rows are absent.  Every row makes n
gradient evaluations per image (riemannopt fewer if Powell leaves empty intervals: n_gradients is stored).
The |g'| estimates come from Algorithm 1 with k points on m calibration images DISJOINT from the
evaluated ones (names stored).  One JSON per (model, path) unit is written under --out-dir as it finishes,
with the per-image values, the fitted points (Figure 2), the |g'| curves and provenance.  A unit is saved after
its calibration and after each n ("complete": false until the last), and a run resumes a stored unit made with
the same settings and the same code (code_sha256: the committed contents of CODE_FILES, the files that shape
the numbers) and numerics variant, so it can span commits and sessions; each session's share is listed under
provenance.parts.  Another stored unit (other settings, code or numerics, or a file that does not parse) stops the
run and is kept; --overwrite replaces it.  Each unit is locked while the run works on it.  The script refuses to
store from a dirty git tree unless --allow-dirty, which records the sha256 of `git diff HEAD`.  Units go to
_build/reference unless --out-dir names a folder (results/reference for evidence); a dry run goes to
_build/reference_dry_run, never under results/.

    python benchmarks/reference_riemannopt.py --model efficientnet_lite0 --images pool --device auto --out-dir results/reference
    python benchmarks/reference_riemannopt.py --dry-run   # 2 photos, n = 4, 8, k = 8, into _build/reference_dry_run
    python benchmarks/reference_riemannopt.py --model efficientnet_lite1 --points-only --out-dir results/reference   # Figure 2 only
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from riemannstudy import provenance as PV, runs as RN, units as U  # noqa: E402
from riemannkit import data as D  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit import metrics as M  # noqa: E402
from riemannkit import models as MO  # noqa: E402
from riemannkit import paths as P  # noqa: E402
from riemannkit import schedule as S  # noqa: E402
from riemannstudy import units as U  # noqa: E402

PATHS = ("ig", "blurig", "guidedig")
MODELS = tuple(MO.LITE_MODELS)
ROWS = ("linear_left", "linear_right", "riemannopt", "riemannopt_paper_left", "gausslegendre", "density")
CLOSED_FORM_ONLY = ("linear_right", "gausslegendre")  # Guided IG takes only left sums
POINT_ROWS = ("riemannopt", "riemannopt_paper_left", "density")  # the rows that place their own points
DRY_RUN = {"eval": ["chelsea", "coffee"], "calib": ["astronaut", "rocket"], "steps": [4, 8], "k": 8, "window": 5}
SCHEMA = 1


# The files whose code shapes this run's numbers: a partial unit is resumed only when these are unchanged
# (byte for byte at HEAD), so a run can span commits (and sessions) that change other files.
CODE_FILES = tuple(f"riemannkit/{m}.py" for m in ("integrate", "paths", "blur", "schedule", "metrics", "models", "data",
                                                   "pool", "validate")) + ("benchmarks/reference_riemannopt.py",)


def choose_images(args, model_name: str) -> tuple[str, list[str], str, list[str]]:
    """(source of the evaluated images, their names, source of the calibration images, their names)."""
    if args.dry_run:
        return "shipped", list(args.eval_names or DRY_RUN["eval"]), "shipped", list(args.calib_names or DRY_RUN["calib"])
    pool = None
    if args.images == "pool" or not args.calib_names:
        if not hasattr(D, "pool_names"):
            raise SystemExit(
                "riemannkit.data.pool_names is missing (the photo pool is not merged into this tree): "
                "pass --images shipped with --calib-names naming shipped photos, or merge the pool first"
            )
        try:
            pool = list(D.pool_names(model_name))  # the photos of the pool this model classifies correctly
        except TypeError:
            pool = list(D.pool_names())
    if args.images == "shipped":
        eval_names = list(args.eval_names or D.shipped_names())
    else:
        eval_names = list(args.eval_names or pool)
    if args.calib_names:
        calib_src = "shipped" if all(n in D.shipped_names() for n in args.calib_names) else "pool"
        calib = list(args.calib_names)
    else:
        # The first m pool photos (pool_names' fixed order) that were not named for evaluation: with the
        # default evaluated set (the whole pool) these are the pool's first m, and the rest is evaluated.
        named = set(args.eval_names or ())
        calib_src, calib = "pool", [n for n in pool if n not in named][: args.m]
    if not args.eval_names:
        eval_names = [n for n in eval_names if n not in calib]  # the defaults never evaluate a calibration photo
    if args.limit:
        eval_names = eval_names[: args.limit]
    overlap = sorted(set(eval_names) & set(calib))
    if overlap:
        raise SystemExit(f"calibration and evaluated images must be disjoint; both hold {overlap}")
    if len(calib) < args.m:
        raise SystemExit(f"need m={args.m} calibration images, found {len(calib)}: {calib}")
    if not eval_names:
        raise SystemExit("no images left to evaluate")
    return args.images, eval_names, calib_src, calib


def load(source: str, names: list[str], size: int) -> torch.Tensor:
    try:
        x, got = D.load_images(source, size=size, names=names)
    except (FileNotFoundError, ValueError, TypeError) as err:
        if source == "pool":
            raise SystemExit(f"could not load the photo pool through riemannkit.data.load_images('pool', ...): {err}") from err
        raise
    if list(got) != list(names):
        raise SystemExit(f"load_images returned {got}, asked for {names}")
    return x


def path_kwargs(path: str, args) -> dict:
    if path == "guidedig":
        return {"fraction": args.gig_fraction, "max_dist": args.gig_max_dist}
    if path == "blurig":
        return {"max_sigma": P.BLUR_MAX_SIGMA}
    return {}


def row_args(row: str, path: str, n: int, cal: dict) -> tuple[dict, np.ndarray | None]:
    """attribute() keyword arguments of one recipe row, and the points it places (None for a plain rule)."""
    if row == "linear_left":
        return {"rule": "left", "n": n}, None
    if row == "linear_right":
        return {"rule": "right", "n": n}, None
    if row == "gausslegendre":
        return {"rule": "gausslegendre", "n": n}, None
    if row == "riemannopt":
        pts = S.fit_released_schedule(cal["released_grid"], cal["released_profile"], n)
        return S.released_attribute_args(pts, path), pts
    if row == "riemannopt_paper_left":
        pts = S.fit_schedule(cal["grid"], cal["gprime"], n)
        return {"rule": "left", "alphas": pts}, pts
    if row == "density":
        pts = S.density_schedule(n, cal["grid"], cal["gprime"])
        return {"rule": "left", "alphas": pts}, pts
    raise ValueError(f"unknown row={row!r}; accepted values: {', '.join(ROWS)}")


def run_unit(net, size: int, path: str, args, x_eval, names, x_cal, calib, settings, state, command, dev,
             resume: dict | None = None, save=None) -> dict:
    from tqdm.auto import tqdm

    t0 = time.time()
    kw = path_kwargs(path, args)
    part = {k: v for k, v in PV.provenance(command, dev).items() if k != "started_unix"}
    part.update(state)  # the code that runs: commit, dirty-tree hashes, code_sha256 over CODE_FILES
    if resume is not None:
        # Same settings and same code (code_sha256): keep the calibration and the finished n, compute the rest.
        c = resume["calibration"]
        grid, curves = np.asarray(c["grid"]), np.asarray(c["per_image_gprime"])
        rgrid, profile = np.asarray(c["released_grid"]), np.asarray(c["released_profile"])
        t_cal = 0.0
    else:
        grid, curves, _ = S.per_image_derivatives(net, x_cal, path, settings["k"], None, "prob", args.batch_size, **kw)
        rgrid, profile = S.released_gprime_profile(curves, settings["window"])
        t_cal = time.time() - t0
    cal = {"grid": grid, "gprime": curves.mean(0), "released_grid": rgrid, "released_profile": profile}
    rows = [r for r in ROWS if not (path in P.ADAPTIVE_PATHS and r in CLOSED_FORM_ONLY)]
    if settings.get("points_only"):
        # Figure 2 for a model: the calibration and the points each recipe places, no evaluated image.
        points = {r: {str(n): row_args(r, path, n, cal)[1].tolist() for n in settings["steps"]} for r in POINT_ROWS}
        part["steps_done"] = list(settings["steps"])
        return unit_record(args, path, kw, settings, [], [], calib, None, grid, curves, cal, rgrid, profile,
                           c_wall=round(t_cal, 2), points=points, results={},
                           parts=[{**part, "wall_s": round(time.time() - t0, 1)}], complete=True)
    x_eval, target = I.prepare(net, x_eval, None, args.batch_size)
    results: dict = resume["results"] if resume is not None else {r: {} for r in rows}
    points: dict = resume["points"] if resume is not None else {r: {} for r in rows if r in POINT_ROWS}
    done = [n for n in settings["steps"] if all(str(n) in results[r] for r in rows)]
    parts = list(resume["provenance"]["parts"]) if resume is not None else []
    bar = tqdm(total=len(rows) * len(settings["steps"]), initial=len(rows) * len(done), desc=f"{args.model} {path}")

    def record(complete: bool) -> dict:
        return unit_record(args, path, kw, settings, rows, names, calib, target, grid, curves, cal, rgrid, profile,
                           c_wall=(resume or {}).get("calibration", {}).get("wall_s", round(t_cal, 2)), points=points,
                           results=results, parts=[*parts, {**part, "steps_done": [n for n in settings["steps"] if all(str(n) in results[r] for r in rows)],
                                                            "wall_s": round(time.time() - t0, 1)}],
                           complete=complete)

    if save is not None and resume is None:
        save(record(False))  # the calibration alone is worth keeping: it is the slowest single step for Guided IG
    for n in settings["steps"]:
        if n in done:
            continue
        for row in rows:
            kwargs, pts = row_args(row, path, n, cal)
            if pts is not None:
                points[row][str(n)] = pts.tolist()
            ts = time.time()
            r = I.attribute(net, x_eval, path=path, target=target, output="prob", batch_size=args.batch_size, **kwargs, **kw)
            err = M.completeness_error(r.attr, r.f_input, r.f_baseline)
            results[row][str(n)] = {
                "rel_error": err.tolist(),
                "sum_attr": r.attr.double().flatten(1).sum(1).tolist(),
                "f_input": r.f_input.double().tolist(),
                "f_baseline": r.f_baseline.double().tolist(),
                "n_gradients": int(r.n_gradients),
                "mean": float(err.mean()),
                "pooled": M.completeness_error_pooled(r.attr, r.f_input, r.f_baseline),
                "wall_s": round(time.time() - ts, 2),
            }
            bar.update()
        if save is not None:
            save(record(False))
    bar.close()
    return record(True)


def unit_record(args, path, kw, settings, rows, names, calib, target, grid, curves, cal, rgrid, profile, c_wall, points,
                results, parts, complete) -> dict:
    """The stored unit: settings, images, calibration, points, per-image results and the provenance of each part."""
    last = parts[-1]
    return {
        "benchmark": "reference_riemannopt",
        "schema": SCHEMA,
        "complete": complete,
        "model": args.model,
        "path": path,
        "path_kwargs": kw,
        "settings": settings,
        "target": "softmax probability of the predicted class (ImageNet-1k)",
        "baseline": "black (zeros in [0, 1] pixel space); BlurIG starts at the σ = max_sigma blur",
        "metric": "relative completeness error |Σ attr − Δf| / |Δf| per image, Δf = f(x) − f(γ(0)); 'pooled' = Σ|Σ attr − Δf| / Σ|Δf|",
        "recipes": {r: S.RECIPES[r]._asdict() for r in rows},
        "images": {"evaluated": names, "calibration": calib, "targets": [] if target is None else target.tolist()},
        "calibration": {
            "grid": np.asarray(grid).tolist(),
            "per_image_gprime": np.asarray(curves).tolist(),
            "mean_gprime": np.asarray(cal["gprime"]).tolist(),
            "released_grid": np.asarray(rgrid).tolist(),
            "released_profile": np.asarray(profile).tolist(),
            "wall_s": c_wall,
        },
        "points": points,
        "results": results,
        # The last part's provenance (commit, command, device, versions, date); 'parts' lists every session's share.
        "provenance": {**{k: v for k, v in last.items() if k != "steps_done"},
                       "wall_s": round(sum(p["wall_s"] for p in parts), 1), "parts": parts},
    }


def unit_file(out_dir: Path, model: str, path: str, points_only: bool = False, variant: str = "cpu") -> Path:
    """riemannopt_table1_<model>_<path>.json (riemannopt_points_… with --points-only), the variant before .json."""
    return RN.unit_path(out_dir, "riemannopt_points" if points_only else "riemannopt_table1", model, variant, path=path)


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0", choices=MODELS)
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    ap.add_argument("--steps", nargs="+", type=int, default=[16, 32, 64, 128])
    ap.add_argument("--k", type=int, default=128, help="Algorithm 1's equispaced points (the paper: 128)")
    ap.add_argument("--m", type=int, default=8, help="calibration images (>= 8 unless --dry-run)")
    ap.add_argument("--images", default="pool", choices=("shipped", "pool"), help="evaluated images")
    ap.add_argument("--eval-names", nargs="+", help="evaluated image names (default: all of --images but the calibration ones)")
    ap.add_argument("--calib-names", nargs="+", help="calibration image names (default: the first m pool photos not evaluated)")
    ap.add_argument("--limit", type=int, help="evaluate only the first LIMIT images")
    ap.add_argument("--window", type=int, default=S.RELEASED_WINDOW, help="Bartlett window of the released smoothing")
    ap.add_argument("--gig-fraction", type=float, default=0.5, help="Guided IG fraction (the authors' runs: 0.5)")
    ap.add_argument("--gig-max-dist", type=float, default=0.02, help="Guided IG max_dist (the authors' runs: 0.02)")
    ap.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--batch-size", type=int, default=64, help="points (images x alphas) per forward/backward")
    RN.add_unit_arguments(ap)
    ap.add_argument("--points-only", action="store_true",
                    help="only the calibration and each recipe's points for every n (Figure 2 of a model): "
                         "no evaluated image, stored as riemannopt_points_<model>_<path>.json")
    ap.add_argument("--dry-run", action="store_true",
                    help=f"tiny sizes: shipped {DRY_RUN['eval']} evaluated, {DRY_RUN['calib']} calibration, "
                         f"n in {DRY_RUN['steps']}, k = {DRY_RUN['k']}, window {DRY_RUN['window']}")
    args = ap.parse_args(argv)
    command = "python benchmarks/reference_riemannopt.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.dry_run:
        args.steps, args.k, args.window = DRY_RUN["steps"], DRY_RUN["k"], DRY_RUN["window"]
        args.m = len(args.calib_names or DRY_RUN["calib"])
    elif args.m < 8:
        raise SystemExit(f"--m must be >= 8 calibration images for a stored reference run, got {args.m}")
    if any(n < 1 for n in args.steps) or args.k < 2 or args.batch_size < 1 or args.window < 1 or (args.limit is not None and args.limit < 1):
        raise SystemExit("--steps, --batch-size, --window and --limit must be positive and --k >= 2")
    out_dir = RN.reference_out_dir(args.out_dir, args.dry_run, args.allow_dirty)
    state = {**PV.code_state(args.allow_dirty), "code_sha256": PV.code_sha256(CODE_FILES), "code_files": list(CODE_FILES)}
    src, names, calib_src, calib = choose_images(args, args.model)  # before the model: a missing pool fails fast
    dev = MO.resolve_device(args.device)
    variant = U.numerics_variant(U.set_numerics(dev, args.allow_tf32))
    files = {path: unit_file(out_dir, args.model, path, args.points_only, variant) for path in args.paths}
    locks = []
    try:
        for file in files.values():  # every unit of this run, before the model loads: a second run stops at once
            locks.append(U.lock_unit(file))
        return _run(args, command, state, src, names, calib_src, calib, dev, variant, files)
    finally:
        for lock in locks:
            lock.release()


def _run(args, command, state, src, names, calib_src, calib, dev, variant, files) -> list[Path]:
    net, size, _ = MO.load_model(args.model, dev)
    settings = {
        "steps": list(args.steps), "k": args.k, "m": len(calib), "window": args.window, "images": src,
        "calibration_source": calib_src, "evaluated": names, "calibration": calib, "input_size": size,
        "gig_fraction": args.gig_fraction, "gig_max_dist": args.gig_max_dist, "dry_run": bool(args.dry_run),
    }
    if args.points_only:
        settings["points_only"], settings["evaluated"], names = True, [], []
    current = {"benchmark": "reference_riemannopt", "model": args.model, "schema": SCHEMA, "settings": settings,
               "state": state, "variant": variant}
    # Every stored unit is checked before any computation: one that cannot be resumed stops the run here.
    prevs = {path: U.resumable(file, current, args.overwrite) for path, file in files.items()}
    x_eval, x_cal = (load(src, names, size) if names else None), load(calib_src, calib, size)
    written = []
    for path, file in files.items():
        prev = prevs[path]
        if prev is not None and prev.get("complete", True):
            print(f"skip {file} (stored with the same code, settings and numerics)")
            continue
        if prev is not None:
            done = sorted({int(n) for r in prev["results"].values() for n in r})
            print(f"resume {file}: cells stored for n in {done}", flush=True)

        def save(rec: dict, file: Path = file) -> None:
            U.write_json_atomic(file, rec)

        rec = run_unit(net, size, path, args, x_eval, names, x_cal, calib, settings, state, command, dev, resume=prev, save=save)
        save(rec)
        written.append(file)
        if args.points_only:
            print(f"wrote {file} ({rec['provenance']['wall_s']} s): points for n in {args.steps}", flush=True)
            continue
        summary = "  ".join(f"{r}: " + " ".join(f"{rec['results'][r][str(n)]['mean']:.3f}" for n in args.steps) for r in rec["results"])
        print(f"wrote {file} ({rec['provenance']['wall_s']} s)  mean rel. error per n {args.steps}: {summary}", flush=True)
    return written


if __name__ == "__main__":
    main()
