"""riemannkit.compression: WebP sizes from the encoder pool are PIL's, each distinct image is encoded once, prefetched
encodes are collected instead of encoded again, and threads take over where a process pool cannot start or breaks."""
from __future__ import annotations

import io
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
from PIL import Image

from riemannkit import compression as C


def _arrays(n: int, seed: int = 0) -> list[np.ndarray]:
    """Distinct 8-bit RGB images: a smooth ramp with a noisy patch whose size varies, so their WebP sizes differ."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = np.tile(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], (32, 1, 3))
        a[: 4 + 3 * i, : 5 + 2 * i] = rng.integers(0, 256, (4 + 3 * i, 5 + 2 * i, 3), dtype=np.uint8)
        out.append(a)
    return out


def _pil_size(a: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, format="webp", lossless=True, quality=100)
    return buf.tell()


@pytest.fixture
def own_pool(monkeypatch):
    """A private pool state for tests that break or replace the pool (the shared one stays as it is)."""
    monkeypatch.setattr(C, "_POOL", {"executor": None, "kind": None})
    monkeypatch.setattr(C, "_PENDING", {})
    yield
    if C._POOL["executor"] is not None:
        C._POOL["executor"].shutdown(wait=True, cancel_futures=True)


def test_sizes_are_pils_and_a_repeated_image_is_encoded_once():
    arrays = _arrays(3)
    gray = arrays[0][..., :1].copy()
    batch = [*arrays, arrays[1].copy(), gray]
    before = dict(C.COUNTS)
    assert C.webp_sizes(batch) == [_pil_size(a) for a in batch]
    assert C.COUNTS["submitted"] - before["submitted"] == 4  # arrays[1] twice, encoded once
    assert C.COUNTS["returned"] - before["returned"] == 5
    assert not C._PENDING  # nothing left behind
    assert C.webp_sizes([]) == []


def test_prefetched_images_are_collected_not_encoded_again():
    arrays = _arrays(4, seed=1)
    keys = C.prefetch(arrays)
    assert len(keys) == 4 and len(set(keys)) == 4 and all(k in C._PENDING for k in keys)
    before = dict(C.COUNTS)
    assert C.webp_sizes(arrays, keys) == [_pil_size(a) for a in arrays]
    assert C.COUNTS["submitted"] == before["submitted"] and C.COUNTS["found_pending"] - before["found_pending"] == 4
    # A copy of an image (not the same array) has the same key: the prefetched encode serves it.
    C.prefetch(arrays[:2])
    before = dict(C.COUNTS)
    assert C.webp_sizes([a.copy() for a in arrays[:2]]) == [_pil_size(a) for a in arrays[:2]]
    assert C.COUNTS["submitted"] == before["submitted"]
    # Prefetched and never collected: discarded on request.
    C.prefetch(_arrays(2, seed=2))
    assert C.discard_prefetched() == 2 and not C._PENDING
    with pytest.raises(ValueError, match="one key per array"):
        C.webp_sizes(arrays, keys[:2])


def test_threads_where_a_process_pool_cannot_start(own_pool, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no fork here")

    monkeypatch.setattr(C, "ProcessPoolExecutor", refuse)
    pool, kind = C.encoder_pool()
    assert kind == "threads" and C.encoder_pool()[0] is pool
    arrays = _arrays(3, seed=3)
    assert C.webp_sizes(arrays) == [_pil_size(a) for a in arrays]


def test_a_broken_pool_gives_way_to_threads(own_pool):
    _, kind = C.encoder_pool()
    arrays = _arrays(2, seed=4)
    keys = C._keys(arrays)
    dead = Future()
    dead.set_exception(BrokenProcessPool("a worker was killed"))
    for j, k in enumerate(keys):
        C._PENDING[k] = (dead, j)
    assert C.webp_sizes(arrays, keys) == [_pil_size(a) for a in arrays]
    assert C._POOL["kind"] == "threads"
    assert kind in ("processes", "threads")
