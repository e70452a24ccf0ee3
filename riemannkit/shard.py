"""Split per-image work over the processes of a multi-GPU run and merge the per-shard results.

One process per GPU, launched by ``torchrun --nproc_per_node=NGPU script.py``: each rank takes a
contiguous, balanced slice of the images (:func:`shard_indices`), writes a per-shard JSON record whose
``per_image`` dict is keyed by image name, and rank 0 merges the records (:func:`merge_shards`), which
fails loudly on an image computed twice or never.  Without torchrun everything runs as one rank.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high), or raise naming ``name`` and the accepted range."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and int(value) == value
    if not ok or value < low or (high is not None and value >= high):
        accepted = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high - 1}]"
        raise ValueError(f"{name} must be {accepted}, got {value!r}")
    return int(value)


def shard_indices(n_items: int, world_size: int, rank: int) -> range:
    """Contiguous indices of ``rank``'s share of ``n_items``: sizes differ by at most 1, the larger first."""
    n_items = _check_int("n_items", n_items, 0)
    world_size = _check_int("world_size", world_size, 1)
    rank = _check_int("rank", rank, 0, world_size)
    base, extra = divmod(n_items, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def shard(items: Sequence[T], world_size: int, rank: int) -> list[T]:
    """``rank``'s contiguous share of ``items`` (see :func:`shard_indices`)."""
    return [items[i] for i in shard_indices(len(items), world_size, rank)]


def world_and_rank() -> tuple[int, int]:
    """(world size, rank) of the initialised process group, else of torchrun's environment, else (1, 0)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    world = _check_int("WORLD_SIZE", int(os.environ.get("WORLD_SIZE", 1)), 1)
    return world, _check_int("RANK", int(os.environ.get("RANK", 0)), 0, world)


def backend_for(device: str | torch.device) -> str:
    """'nccl' for a CUDA device, 'gloo' otherwise (CPU)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def setup(device: str | torch.device = "auto") -> tuple[int, int, torch.device]:
    """Join torchrun's process group if launched by torchrun; return (world size, rank, this rank's device).

    'auto' picks ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; the backend follows the device
    (nccl on CUDA, gloo on CPU).  Run as a plain script (no WORLD_SIZE), it is one rank and no group.
    """
    local = int(os.environ.get("LOCAL_RANK", 0))
    if str(device) == "auto":
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", local)
        # nccl needs each process on its own GPU before the group forms.
        torch.cuda.set_device(dev)
    world, rank = world_and_rank()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend_for(dev), rank=rank, world_size=world)
    return world, rank, dev


def teardown() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (a no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def run_shard(
    fn: Callable[[list[T]], Any], items: Sequence[T], world_size: int | None = None, rank: int | None = None
) -> Any:
    """``fn`` applied to this rank's share of ``items``; world size and rank default to :func:`world_and_rank`."""
    if world_size is None or rank is None:
        w, r = world_and_rank()
        world_size = w if world_size is None else world_size
        rank = r if rank is None else rank
    return fn(shard(items, world_size, rank))


def shard_record(per_image: dict[str, Any], rank: int, world_size: int, meta: dict | None = None) -> dict:
    """One shard's JSON record: its rank, the world size, ``per_image`` {image name: value} and shared ``meta``."""
    rank = _check_int("rank", rank, 0, _check_int("world_size", world_size, 1))
    if not isinstance(per_image, dict):
        raise ValueError(f"per_image must be a dict keyed by image name, got {type(per_image).__name__}")
    return {"rank": rank, "world_size": world_size, "images": list(per_image), "per_image": dict(per_image), "meta": meta or {}}


def shard_file(folder: str | Path, rank: int, world_size: int) -> Path:
    """The path ``folder/shard_<rank>_of_<world_size>.json`` of one shard's record."""
    return Path(folder) / f"shard_{rank:03d}_of_{world_size:03d}.json"


def gather_records(record: dict, dst: int = 0) -> list[dict] | None:
    """Every rank's ``record`` at rank ``dst`` (in rank order; None on the other ranks) over torch.distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return [record]
    out: list | None = [None] * dist.get_world_size() if dist.get_rank() == dst else None
    dist.gather_object(record, out, dst=dst)
    return out


def merge_shards(shards: Sequence[str | Path | dict], expected: Sequence[str] | None = None) -> dict:
    """One record from per-shard records (dicts or JSON files): ``per_image`` merged in rank order
    (in the order of ``expected`` when given).

    Raises ValueError when a shard is missing or repeated, the shards disagree on world size or
    ``meta``, an image appears in two shards, or (given ``expected``) an expected image is missing or
    an unexpected one is present.
    """
    if isinstance(shards, (str, Path, dict)) or len(shards) == 0:
        raise ValueError("shards must be a non-empty list of shard records or JSON files")
    recs = []
    for s in shards:
        rec = json.loads(Path(s).read_text()) if isinstance(s, (str, Path)) else s
        missing_keys = {"rank", "world_size", "per_image"} - set(rec)
        if missing_keys:
            raise ValueError(f"shard {s if isinstance(s, (str, Path)) else rec.get('rank')!r} lacks key(s) {sorted(missing_keys)}")
        recs.append(rec)
    worlds = {int(r["world_size"]) for r in recs}
    if len(worlds) != 1:
        raise ValueError(f"shards disagree on world_size: {sorted(worlds)}")
    world = worlds.pop()
    ranks = [int(r["rank"]) for r in recs]
    repeated = sorted({k for k in ranks if ranks.count(k) > 1})
    if repeated:
        raise ValueError(f"shards hold rank(s) {repeated} more than once")
    absent = sorted(set(range(world)) - set(ranks))
    if absent:
        raise ValueError(f"missing shard(s) for rank(s) {absent} of world_size={world}")
    recs.sort(key=lambda r: int(r["rank"]))
    meta = recs[0].get("meta", {})
    for r in recs[1:]:
        if r.get("meta", {}) != meta:
            raise ValueError(f"shard of rank {r['rank']} has meta different from rank {recs[0]['rank']}'s")
    per_image: dict[str, Any] = {}
    owner: dict[str, int] = {}
    for r in recs:
        for name, value in r["per_image"].items():
            if name in owner:
                raise ValueError(f"image {name!r} is in the shards of ranks {owner[name]} and {r['rank']} (overlap)")
            owner[name] = int(r["rank"])
            per_image[name] = value
    if expected is not None:
        missing = [n for n in expected if n not in per_image]
        extra = [n for n in per_image if n not in set(expected)]
        if missing:
            raise ValueError(f"missing image(s) {missing}: expected in some shard, found in none")
        if extra:
            raise ValueError(f"unexpected image(s) {extra}: in a shard but not in expected")
        per_image = {n: per_image[n] for n in expected}
    return {"world_size": world, "images": list(per_image), "per_image": per_image, "meta": meta}
