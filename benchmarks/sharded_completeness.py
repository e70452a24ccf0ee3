"""Per-image completeness error of a path attribution over the shipped photos, sharded over GPUs.

Each rank (one per GPU) attributes its contiguous share of the photos and writes a shard record;
rank 0 merges them (an image computed twice or never is an error) and writes one JSON with a table.

    torchrun --nproc_per_node=NGPU benchmarks/sharded_completeness.py --steps 16 64 256
    torchrun --nproc_per_node=2 benchmarks/sharded_completeness.py --device cpu   # gloo, on CPU
    python benchmarks/sharded_completeness.py                                     # one process

Backend: nccl on CUDA (each rank on cuda:LOCAL_RANK), gloo on CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from riemannstudy import provenance as PV  # noqa: E402
from riemannkit import integrate as I  # noqa: E402
from riemannkit import metrics as M  # noqa: E402
from riemannkit import shard as S  # noqa: E402
from riemannkit.data import load_images, shipped_names  # noqa: E402
from riemannkit.models import load_model  # noqa: E402


def completeness_per_image(
    model: torch.nn.Module, x: torch.Tensor, names: list[str], steps: list[int], path: str = "ig",
    rule: str = "left", batch_size: int = 64,
) -> dict[str, dict]:
    """{image name: {"error": [relative completeness error at each n], "delta_f": f(x) − f(x')}}."""
    out: dict[str, dict] = {name: {"error": [], "delta_f": None} for name in names}
    if not names:
        return out
    target = I.predict(model, x.to(next(model.parameters()).device), batch_size)
    for n in steps:
        r = I.attribute(model, x, path=path, rule=rule, n=n, target=target, batch_size=batch_size)
        err = M.completeness_error(r.attr, r.f_input, r.f_baseline)
        for b, name in enumerate(names):
            out[name]["error"].append(float(err[b]))
            out[name]["delta_f"] = float(r.f_input[b] - r.f_baseline[b])
            out[name]["target"] = int(r.target[b])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--images", nargs="+", default=list(shipped_names()), help="shipped photo names (default: all)")
    ap.add_argument("--path", default="ig", choices=["ig", "blurig", "guidedig"])
    ap.add_argument("--rule", default="left", choices=list(I.RULES))
    ap.add_argument("--steps", nargs="+", type=int, default=[16, 64, 256])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto", help="'auto': cuda:LOCAL_RANK if CUDA is available, else cpu")
    ap.add_argument("--shard-dir", default=str(PV.BUILD_DIR / "benchmarks" / "sharded_completeness_shards"))
    ap.add_argument("--out", default=str(PV.BUILD_DIR / "benchmarks" / "sharded_completeness.json"),
                    help="name a file under results/ to store it")
    args = ap.parse_args()
    if args.path == "guidedig" and args.rule != "left":
        ap.error("--path guidedig takes only --rule left")

    world, rank, device = S.setup(args.device)
    t0 = time.time()
    try:
        model, size, _ = load_model(args.model, device)
        mine = S.shard(args.images, world, rank)
        x = load_images("shipped", size=size, names=mine)[0] if mine else torch.zeros(0, 3, size, size)
        per_image = completeness_per_image(model, x, mine, args.steps, args.path, args.rule, args.batch_size)
        meta = {"model": args.model, "path": args.path, "rule": args.rule, "steps": args.steps, "batch_size": args.batch_size}
        record = S.shard_record(per_image, rank, world, meta)
        record["device"] = str(device)
        record["wall_s"] = round(time.time() - t0, 1)
        shard_path = S.shard_file(args.shard_dir, rank, world)
        PV.save_json(shard_path, record)
        print(f"rank {rank}/{world} on {device}: {len(mine)} image(s) -> {shard_path}", flush=True)
        S.barrier()  # every shard file is written before rank 0 reads them
        if rank == 0:
            files = [S.shard_file(args.shard_dir, r, world) for r in range(world)]
            merged = S.merge_shards(files, expected=args.images)
            merged["benchmark"] = "sharded_completeness"
            launcher = f"torchrun --nproc_per_node={world}" if world > 1 else "python"
            merged["provenance"] = PV.provenance(command=f"{launcher} " + " ".join(sys.argv), device=device)
            merged["provenance"]["world_size"] = world
            merged["provenance"]["wall_s"] = round(time.time() - t0, 1)
            PV.save_json(args.out, merged)
            print("| image | " + " | ".join(f"n={n}" for n in args.steps) + " |")
            print("|---|" + "---:|" * len(args.steps))
            for name, v in merged["per_image"].items():
                print(f"| {name} | " + " | ".join(f"{e:.4f}" for e in v["error"]) + " |")
            print("wrote", args.out)
    finally:
        S.teardown()


if __name__ == "__main__":
    main()
