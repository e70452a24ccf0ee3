"""Fashion-MNIST loader (IDX files) and the cached small CNN."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from riemannkit import data as D
from riemannkit import models as M


def _write_idx(path, arr: np.ndarray, gz: bool = True) -> None:
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    raw = head + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


@pytest.fixture
def fake_fashion(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("t10k", 40)):
        imgs = rng.integers(0, 256, size=(n, 28, 28))
        labels = np.arange(n) % 10
        gz = split == "train"  # one split plain, one gzipped: both layouts are read
        suffix = ".gz" if gz else ""
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}", imgs, gz)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", labels, gz)
    return tmp_path


def test_read_idx_roundtrip(fake_fashion):
    x, y = D.load_fashion_mnist("test", root=fake_fashion)
    assert x.shape == (40, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert y.tolist() == [i % 10 for i in range(40)]
    x5, y5 = D.load_fashion_mnist("train", root=fake_fashion, limit=5)
    assert x5.shape == (5, 1, 28, 28) and y5.tolist() == [0, 1, 2, 3, 4]


def test_bad_split_limit_and_missing_folder(tmp_path, fake_fashion):
    with pytest.raises(ValueError, match="split.*train, test"):
        D.load_fashion_mnist("valid", root=fake_fashion)
    with pytest.raises(ValueError, match="limit"):
        D.load_fashion_mnist("test", root=fake_fashion, limit=0)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        D.load_fashion_mnist("test", root=tmp_path / "nowhere")


def test_env_variable_folder(monkeypatch, fake_fashion):
    monkeypatch.setenv("RIEMANNKIT_FASHION_MNIST", str(fake_fashion))
    monkeypatch.setattr(D, "FASHION_DIRS", ())
    assert D.load_fashion_mnist("test")[0].shape[0] == 40


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RIEMANNKIT_CACHE", str(tmp_path / "c"))
    assert D.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_augment_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 28, 28)
    assert torch.equal(M.augment_batch(x, "none", g), x)
    b = M.augment_batch(x, "brightness", g)
    assert b.shape == x.shape and float(b.min()) >= 0 and float(b.max()) <= 1 and not torch.equal(b, x)
    # Blur keeps the mass of an interior impulse (normalised kernel) and spreads it.
    imp = torch.zeros(4, 1, 28, 28)
    imp[:, :, 14, 14] = 1
    bl = M.augment_batch(imp, "blur", g)
    assert torch.allclose(bl.sum((1, 2, 3)), torch.ones(4), atol=1e-5)
    assert float(bl[:, 0, 14, 14].min()) < 1
    with pytest.raises(ValueError, match="augment.*none, brightness, blur"):
        M.augment_batch(x, "flip", g)


def test_fashion_cnn_shapes_and_bad_activation():
    for act in M.FASHION_ACTIVATIONS:
        assert M.fashion_cnn(act)(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match="activation.*relu, softplus"):
        M.fashion_cnn("tanh")


def test_fashion_classifier_trains_caches_and_reloads(monkeypatch, tmp_path, fake_fashion):
    monkeypatch.setenv("RIEMANNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RIEMANNKIT_FASHION_MNIST", str(fake_fashion))
    monkeypatch.setattr(D, "FASHION_DIRS", ())
    m1 = M.fashion_classifier(augment="blur", seed=3, device="cpu")
    assert not m1.training and not any(p.requires_grad for p in m1.parameters())
    file = tmp_path / "cache" / "fashion_cnn_relu_blur_e1_s3.pt"
    assert m1.info["file"] == str(file) and file.exists()
    meta = json.loads(file.with_suffix(".json").read_text())
    assert meta["augment"] == "blur" and 0 <= meta["test_accuracy"] <= 1
    m2 = M.fashion_classifier(augment="blur", seed=3, device="cpu")
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)  # m2 is loaded from m1's cache file: a copy
    with pytest.raises(ValueError, match="epochs"):
        M.fashion_classifier(epochs=0)
    with pytest.raises(ValueError, match="augment"):
        M.fashion_classifier(augment="rotate")


@pytest.mark.skipif(D._fashion_folder(None) is None, reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_files():
    x, y = D.load_fashion_mnist("test", limit=100)
    assert x.shape == (100, 1, 28, 28) and set(y.tolist()) <= set(range(10)) and len(set(y.tolist())) == 10
    xt, _ = D.load_fashion_mnist("train")
    assert xt.shape[0] == 60000
