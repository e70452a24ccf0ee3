"""riemannkit.models and riemannkit.data, including the one (module-scoped) real offline model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import riemannkit as rk
from riemannkit import data as D
from riemannkit import models as M


@pytest.fixture(scope="module")
def lite0():
    """EfficientNet-Lite0 on CPU and the two shipped photos 'chelsea' and 'coffee' at 224 (loaded once)."""
    model, size, classes = M.load_model("efficientnet_lite0", "cpu")
    x, names = D.load_images(size=size, names=["chelsea", "coffee"])
    return model, size, classes, x, names


# ---------------------------------------------------------------- 10. the real offline model


def test_lite0_model_properties_and_predictions(lite0):
    model, size, classes, x, names = lite0
    assert size == 224 and len(classes) == 1000
    assert names == ["chelsea", "coffee"]
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    top = [classes[i] for i in logits.argmax(-1).tolist()]
    assert "cat" in top[0].lower(), top  # 'Egyptian cat'
    assert top[1] == "espresso", top


def test_lite0_completeness_error_falls_with_n(lite0):
    model, _, _, x, _ = lite0
    coffee = x[1:]
    errs = []
    for n in (16, 256):
        a = rk.attribute(model, coffee, path="ig", rule="left", n=n, batch_size=16)
        assert a.n_gradients == n and a.attr.shape == coffee.shape
        assert float(a.f_input) > 0.5  # the predicted class's probability
        errs.append(float(rk.completeness_error(a.attr, a.f_input, a.f_baseline).mean()))
    assert errs[1] < errs[0] / 4, errs  # left rule: O(1/n), here a 16× larger n


# ---------------------------------------------------------------- models without the network


def test_unknown_model_name():
    with pytest.raises(ValueError, match="model"):
        M.load_model("nope", "cpu")


def test_normalized_wrapper():
    net = torch.nn.Identity()
    mod = M.Normalized(net, (0.5, 0.25, 0.0), (0.5, 0.25, 2.0))
    x = torch.rand(2, 3, 4, 4)
    expected = (x - torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(mod(x), expected)
    assert {n for n, _ in mod.named_buffers()} == {"mean", "std"}


def test_resolve_device_and_classes():
    assert M.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert M.resolve_device("auto").type == expected
    classes = M.imagenet_classes()
    assert len(classes) == 1000 and classes[0] == "tench" and "espresso" in classes


# ---------------------------------------------------------------- data


def test_shipped_names_and_small_load():
    assert D.shipped_names() == D.SHIPPED and "coffee" in D.shipped_names()
    x, names = D.load_images(size=32, names=["coffee", "rocket"], limit=1)
    assert names == ["coffee"] and x.shape == (1, 3, 32, 32)
    assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert float(x.std()) > 0.05  # a real photo, not a constant


def test_unknown_shipped_name():
    with pytest.raises(ValueError, match="unknown shipped image"):
        D.load_images(names=["coffee", "nope"])


def test_missing_image_folder():
    with pytest.raises(FileNotFoundError, match="source"):
        D.load_images("/nonexistent")


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls, w, h in [("a", 40, 20), ("b", 24, 30)]:
        (tmp_path / cls).mkdir()
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / cls / f"{cls}.png")
    x, names = D.load_images(str(tmp_path), size=16)
    assert x.shape == (2, 3, 16, 16) and names == ["a.png", "b.png"]
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    x1, names1 = D.load_images(str(tmp_path), size=16, limit=1)
    assert names1 == ["a.png"]
    torch.testing.assert_close(x1[0], x[0])


def test_to_tensor_resize_and_centre_crop():
    # a 40×20 image, left half black and right half white: the centre crop straddles the edge
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, 20:] = 255
    t = D._to_tensor(Image.fromarray(arr), 10)
    assert t.shape == (3, 10, 10)
    assert float(t[:, :, 0].max()) < 0.05 and float(t[:, :, -1].min()) > 0.95
