"""Byte sizes of 8-bit images as lossless WebP (PIC's information axis), encoded in a process pool across the CPU cores.

An encode is deterministic, so where it runs changes the time, never the size.  A caller that knows its images before
it needs their sizes (the IDGI study's cells: PIC's bokeh images, as soon as a path's maps exist) starts them with
:func:`prefetch` and collects them later with :func:`webp_sizes`, while the model runs on the device; the images are
matched by their bytes (SHA-1 of shape and pixels), so a collect that finds no prefetched image just encodes it.
Ground floor: imports numpy and PIL only.  Not thread-safe: call it from one thread.
"""
from __future__ import annotations

import hashlib
import io
import math
import multiprocessing as mp
import os
import sys
import warnings
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from PIL import Image

# The shared encoder pool (created on first use) and the encodes started but not collected yet, by image key.
_POOL: dict = {"executor": None, "kind": None}
_PENDING: dict[bytes, tuple[Future, int]] = {}
_HASHERS: list = []
# Images submitted to the pool, sizes returned, and how many of those were pending already (a prefetch's hits).
COUNTS = {"submitted": 0, "returned": 0, "found_pending": 0}


def encode_webp(arrays: list[np.ndarray]) -> list[int]:
    """Byte sizes of uint8 (H, W, C) arrays (C = 1 or 3) as lossless WebP (the work of one pool task)."""
    out = []
    for a in arrays:
        buf = io.BytesIO()
        # quality=100 is the effort of the lossless encoder, as the PAIR reference.
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, format="webp", lossless=True, quality=100)
        out.append(buf.tell())
    return out


# More workers than this would fork a large process (the model, the maps) many times over for little gain.
MAX_WORKERS = 32


def cpu_workers() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one), at most MAX_WORKERS."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, n))


def encoder_pool() -> tuple[Executor, str]:
    """(executor, 'processes' or 'threads'): the shared pool, one worker per core, started on first use.

    A process pool ('fork' on Linux: the workers start in milliseconds and import nothing; 'spawn' elsewhere), or a
    thread pool where a process pool cannot start (a sandbox without fork, a missing semaphore implementation): the
    sizes are the same either way.  Call it early (before the model fills the memory) to fork from a small process."""
    if _POOL["executor"] is None:
        n = cpu_workers()
        pool = None
        try:
            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with warnings.catch_warnings():
                # Python >= 3.12 warns about fork() in a multi-threaded process: the workers run PIL's encoder only,
                # never torch or CUDA.
                warnings.simplefilter("ignore", DeprecationWarning)
                pool = ProcessPoolExecutor(n, mp_context=ctx)
                pool.submit(encode_webp, []).result(timeout=120)
            _POOL.update(executor=pool, kind="processes")
        except Exception:  # noqa: BLE001 (any failure to start a process pool means: use threads)
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            _use_threads()
    return _POOL["executor"], _POOL["kind"]


def _use_threads() -> None:
    """Replace the pool by threads (a process pool that could not start or broke): the same sizes, less parallel."""
    old = _POOL["executor"]
    if old is not None and _POOL["kind"] == "processes":
        old.shutdown(wait=False, cancel_futures=True)
    _POOL.update(executor=ThreadPoolExecutor(cpu_workers()), kind="threads")


def _key(a: np.ndarray) -> bytes:
    h = hashlib.sha1(repr((a.shape, a.dtype.str)).encode())
    h.update(np.ascontiguousarray(a))
    return h.digest()


def _keys(arrays: list[np.ndarray]) -> list[bytes]:
    # hashlib releases the GIL on large buffers: threads hash thousands of images in parallel.
    if len(arrays) < 64:
        return [_key(a) for a in arrays]
    if not _HASHERS:
        _HASHERS.append(ThreadPoolExecutor(min(8, cpu_workers())))
    return list(_HASHERS[0].map(_key, arrays))


def _submit(arrays: list[np.ndarray], keys: list[bytes]) -> None:
    """Start encoding the images whose keys are neither pending nor repeated, a few per task."""
    new: dict[bytes, np.ndarray] = {}
    for a, k in zip(arrays, keys):
        if k not in _PENDING and k not in new:
            new[k] = a
    if not new:
        return
    pool, _ = encoder_pool()
    items = list(new.items())
    COUNTS["submitted"] += len(items)
    # Tasks of up to 16 images: few enough that pickling and queueing cost little, many enough to balance the cores.
    per = max(1, min(16, math.ceil(len(items) / (4 * cpu_workers()))))
    for i in range(0, len(items), per):
        chunk = items[i : i + per]
        fut = pool.submit(encode_webp, [a for _, a in chunk])
        for j, (k, _) in enumerate(chunk):
            _PENDING[k] = (fut, j)


def prefetch(arrays: list[np.ndarray]) -> list[bytes]:
    """Start encoding uint8 (H, W, C) arrays in the pool; a later :func:`webp_sizes` of the same images collects them.
    Returns the images' keys (pass them to webp_sizes to skip hashing again)."""
    arrays = list(arrays)
    keys = _keys(arrays)
    _submit(arrays, keys)
    return keys


def webp_sizes(arrays: list[np.ndarray], keys: list[bytes] | None = None) -> list[int]:
    """Lossless-WebP byte sizes of uint8 (H, W, C) arrays: prefetched encodes collected, the others run in the pool
    now (each distinct image once).  ``keys``: those :func:`prefetch` returned for the same arrays."""
    arrays = list(arrays)
    keys = _keys(arrays) if keys is None else list(keys)
    if len(keys) != len(arrays):
        raise ValueError(f"keys must hold one key per array, got {len(keys)} for {len(arrays)}")
    COUNTS["returned"] += len(keys)
    COUNTS["found_pending"] += sum(k in _PENDING for k in keys)
    _submit(arrays, keys)
    out = []
    try:
        for a, k in zip(arrays, keys):
            fut, j = _PENDING[k]
            try:
                out.append(fut.result()[j])
            except BrokenProcessPool:
                # A worker died (killed, out of memory): encode here and go on with threads.
                if _POOL["kind"] == "processes":
                    _use_threads()
                out.append(encode_webp([a])[0])
    finally:
        for k in keys:
            _PENDING.pop(k, None)
    return out


def discard_prefetched() -> int:
    """Forget the encodes started by :func:`prefetch` and never collected (cancelling those not started); their number."""
    futures = {fut for fut, _ in _PENDING.values()}
    n = len(_PENDING)
    _PENDING.clear()
    for fut in futures:
        fut.cancel()
    return n
