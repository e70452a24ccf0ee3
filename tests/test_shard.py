"""Sharding for multi-GPU runs (riemannkit.shard): balanced contiguous shards, a strict merge, and a real
2-process gloo run whose merged result equals the single-process one."""
from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
from torch import nn

from riemannkit import integrate as I
from riemannkit import metrics as M
from riemannkit import shard as S

N_IMAGES, STEPS = 7, (2, 5)


@pytest.mark.parametrize("n_items", [0, 1, 2, 3, 7, 8, 9, 16, 17, 100, 1001])
@pytest.mark.parametrize("world", [1, 2, 3, 4, 7, 8, 16])
def test_shards_cover_every_item_once_and_are_balanced(n_items, world):
    parts = [S.shard_indices(n_items, world, r) for r in range(world)]
    flat = [i for p in parts for i in p]
    assert flat == list(range(n_items))  # contiguous, in rank order, each item exactly once
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the larger shards first
    assert S.shard(list(range(n_items)), world, world - 1) == list(parts[-1])


@pytest.mark.parametrize(
    "args, name",
    [
        ((5, 0, 0), "world_size"), ((5, -2, 0), "world_size"), ((5, 1.5, 0), "world_size"),
        ((5, 2, 2), "rank"), ((5, 2, -1), "rank"), ((5, 2, 0.5), "rank"),
        ((-1, 2, 0), "n_items"), ((2.5, 2, 0), "n_items"), ((True, 2, 0), "n_items"),
        ((5, float("inf"), 0), "world_size"), ((5, float("nan"), 0), "world_size"), ((5, "2", 0), "world_size"),
    ],
)
def test_bad_shard_arguments_name_the_parameter(args, name):
    with pytest.raises(ValueError, match=rf"^{name} must be an integer"):
        S.shard_indices(*args)


def test_numpy_integers_and_integral_floats_are_accepted():
    assert S.shard_indices(np.int64(5), np.int64(2), np.int32(1)) == range(3, 5)
    assert S.shard_indices(5.0, 2.0, 0.0) == range(0, 3)


def test_run_shard_uses_the_given_rank():
    items = list("abcdefg")
    assert S.run_shard(lambda part: "".join(part), items, world_size=3, rank=1) == "de"
    # Outside torchrun (no process group, no WORLD_SIZE): one rank with everything.
    if "WORLD_SIZE" not in os.environ:
        assert S.world_and_rank() == (1, 0)
        assert S.run_shard(len, items) == 7


def _records(names: list[str], world: int, meta: dict | None = None) -> list[dict]:
    return [
        S.shard_record({n: [float(i)] for i, n in enumerate(names) if i in S.shard_indices(len(names), world, r)}, r, world, meta)
        for r in range(world)
    ]


def test_merge_in_rank_order_from_files(tmp_path):
    names = [f"img{i}" for i in range(5)]
    recs = _records(names, 3, {"n": 4})
    files = []
    for rec in reversed(recs):  # given out of order: merged by rank
        f = S.shard_file(tmp_path, rec["rank"], rec["world_size"])
        f.write_text(json.dumps(rec))
        files.append(f)
    merged = S.merge_shards(files, expected=names)
    assert merged["images"] == names and list(merged["per_image"]) == names
    assert merged["per_image"]["img3"] == [3.0] and merged["meta"] == {"n": 4} and merged["world_size"] == 3
    # expected in another order: the merge follows it
    assert S.merge_shards(recs, expected=names[::-1])["images"] == names[::-1]


def test_merge_detects_overlap_missing_and_inconsistent_shards():
    names = [f"img{i}" for i in range(6)]
    recs = _records(names, 2)
    overlap = [recs[0], S.shard_record({**recs[1]["per_image"], "img0": [9.0]}, 1, 2)]
    with pytest.raises(ValueError, match=r"image 'img0' is in the shards of ranks 0 and 1 \(overlap\)"):
        S.merge_shards(overlap)
    with pytest.raises(ValueError, match=r"missing image\(s\) \['img6'\]"):
        S.merge_shards(recs, expected=names + ["img6"])
    with pytest.raises(ValueError, match=r"unexpected image\(s\) \['img5'\]"):
        S.merge_shards(recs, expected=names[:5])
    with pytest.raises(ValueError, match=r"missing shard\(s\) for rank\(s\) \[1\] of world_size=2"):
        S.merge_shards(recs[:1])
    with pytest.raises(ValueError, match=r"rank\(s\) \[0\] more than once"):
        S.merge_shards([recs[0], recs[0]])
    with pytest.raises(ValueError, match="disagree on world_size"):
        S.merge_shards([recs[0], _records(names, 3)[1]])
    with pytest.raises(ValueError, match="meta different"):
        S.merge_shards([recs[0], {**recs[1], "meta": {"n": 1}}])
    with pytest.raises(ValueError, match="non-empty list"):
        S.merge_shards([])
    with pytest.raises(ValueError, match=r"lacks key\(s\) \['per_image'\]"):
        S.merge_shards([{"rank": 0, "world_size": 1}])


def test_backend_follows_the_device():
    assert S.backend_for("cpu") == "gloo" and S.backend_for("cuda:1") == "nccl"


# ----------------------------------------------------------------- a real 2-process run (gloo, CPU)
def _model() -> nn.Module:
    """A tiny float64 linear classifier of (3, 4, 4) images (float64: batch splits change nothing visible);
    with output="prob" the softmax makes the left-rule IG inexact."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 5)).double().eval()


def _images() -> tuple[torch.Tensor, list[str]]:
    x = torch.rand(N_IMAGES, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    return x, [f"img{i}" for i in range(N_IMAGES)]


def _per_image(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, list[float]]:
    """Completeness error at each n per image, with a batch size that splits the images differently per rank."""
    out: dict[str, list[float]] = {n: [] for n in names}
    for n in STEPS:
        r = I.attribute(model, x, "ig", "left", n, batch_size=3)
        for name, e in zip(names, M.completeness_error(r.attr, r.f_input, r.f_baseline).tolist()):
            out[name].append(e)
    return out


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    # What torchrun would set; S.setup() reads it and joins the gloo group.
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    w, r, dev = S.setup("cpu")
    try:
        assert (w, r, dev.type) == (world, rank, "cpu") and torch.distributed.get_backend() == "gloo"
        x, names = _images()
        idx = S.shard_indices(len(names), w, r)
        per_image = S.run_shard(lambda part: _per_image(_model(), x[idx.start : idx.stop], part), names)
        rec = S.shard_record(per_image, r, w, {"steps": list(STEPS)})
        S.shard_file(folder, r, w).write_text(json.dumps(rec))
        gathered = S.gather_records(rec)
        S.barrier()
        if r == 0:
            (S.shard_file(folder, r, w).parent / "gathered.json").write_text(json.dumps(S.merge_shards(gathered)))
    finally:
        S.teardown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_run_equals_one_process(tmp_path):
    import torch.multiprocessing as mp

    world = 2
    mp.spawn(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    x, names = _images()
    single = _per_image(_model(), x, names)
    merged = S.merge_shards([S.shard_file(tmp_path, r, world) for r in range(world)], expected=names)
    gathered = json.loads((tmp_path / "gathered.json").read_text())
    assert merged["images"] == gathered["images"] == names
    assert merged["per_image"] == gathered["per_image"]
    got = torch.tensor([merged["per_image"][n] for n in names], dtype=torch.float64)
    ref = torch.tensor([single[n] for n in names], dtype=torch.float64)
    assert (ref > 1e-3).all()  # a real discretisation error, not float noise
    assert torch.allclose(got, ref, rtol=1e-9, atol=0)  # float64 model: other splits and threads move ~1e-15
