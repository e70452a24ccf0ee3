"""Images as (B, 3, H, W) float tensors in [0, 1].

Offline: the real photographs that ship inside scikit-image, scikit-learn and matplotlib
(``'shipped'``), and the larger pool of photographs with human-checked ImageNet labels in the
repository's ``photos/`` folder (``'pool'``, see riemannkit.pool).
With ImageNet on disk: an ImageFolder-style directory (class sub-folders of JPEGs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

# Colour photos shipped in installed packages; each loader returns an RGB uint8 array.
SHIPPED = (
    "chelsea", "coffee", "astronaut", "rocket", "motorcycle", "hubble",
    "china", "flower", "grace_hopper",
)


def _shipped_array(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(Image.open(f).convert("RGB"))
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    if name == "hubble":
        return skimage.data.hubble_deep_field()
    return np.asarray(getattr(skimage.data, name)())[..., :3]


def shipped_names() -> tuple[str, ...]:
    """Names of the offline photos, in a fixed order."""
    return SHIPPED


def pool_names(model: str | None = None) -> tuple[str, ...]:
    """Names of the photo pool in a fixed order (only those ``model`` classifies correctly if given)."""
    from .pool import pool_names as names

    return names(model)


def pool_labels(names: list[str] | None = None) -> list[int]:
    """Human ImageNet labels of the pool photos ``names`` (default: ``pool_names()``), in order."""
    from .pool import pool_labels as labels

    return labels(names)


def _to_tensor(img: Image.Image, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` and centre-crop to ``size``×``size`` (bicubic, as torchvision)."""
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


def load_images(
    source: str = "shipped", size: int = 224, names: list[str] | None = None, limit: int | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Return ``(images, names)``: the shipped photos (``source='shipped'``), the photo pool
    (``source='pool'``, default names ``pool_names()``) or an image folder path."""
    from .validate import check_count

    size = check_count(size, "size")
    if limit is not None:
        limit = check_count(limit, "limit")  # a negative limit would silently drop photos from the end
    if source == "pool":
        from .pool import _check_names, open_photo

        chosen = list(pool_names()) if names is None else _check_names(names)
        if limit is not None:
            chosen = chosen[:limit]
        if not chosen:
            raise ValueError("names selects no pool photo; pass None for pool_names()")
        return torch.stack([_to_tensor(open_photo(n), size) for n in chosen]), chosen
    if source == "shipped":
        chosen = list(names) if names is not None else list(SHIPPED)
        bad = [n for n in chosen if n not in SHIPPED]
        if bad:
            raise ValueError(f"unknown shipped image name(s) {bad}; accepted values: {', '.join(SHIPPED)}")
        if limit is not None:
            chosen = chosen[:limit]
        pics = [Image.fromarray(_shipped_array(n)).convert("RGB") for n in chosen]
        return torch.stack([_to_tensor(p, size) for p in pics]), chosen
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder source={str(source)!r} does not exist; pass 'shipped' or 'pool' for the "
            f"offline photos or an ImageNet-style folder (one sub-folder of images per class)"
        )
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(root))
    if len(ds) == 0:
        raise FileNotFoundError(f"image folder source={str(source)!r} holds no images")
    n = len(ds) if limit is None else min(limit, len(ds))
    paths = [ds.samples[i][0] for i in range(n)]
    imgs = [_to_tensor(Image.open(p).convert("RGB"), size) for p in paths]
    return torch.stack(imgs), [Path(p).name for p in paths]


# Fashion-MNIST: Debian's dataset-fashion-mnist package installs the IDX files here (`make install`
# does it when apt-get is available); with a network torchvision downloads the same files.
FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def cache_dir() -> Path:
    """Folder for trained weights: $RIEMANNKIT_CACHE, else ~/.cache/riemannkit (created)."""
    import os

    root = Path(os.environ.get("RIEMANNKIT_CACHE", Path.home() / ".cache" / "riemannkit"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _read_idx(file: Path) -> np.ndarray:
    import gzip

    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if data[2] != 0x08:
        raise ValueError(f"{file} is not an unsigned-byte IDX file")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _fashion_folder(root: str | Path | None) -> Path | None:
    import os

    candidates = [root] if root is not None else [os.environ.get("RIEMANNKIT_FASHION_MNIST"), *FASHION_DIRS]
    for c in candidates:
        if c is None:
            continue
        c = Path(c)
        for sub in (c, c / "FashionMNIST" / "raw"):
            if all((sub / f).exists() or (sub / f[:-3]).exists() for files in _FASHION_FILES.values() for f in files):
                return sub
    return None


def load_fashion_mnist(
    split: str = "test", root: str | Path | None = None, limit: int | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST ``(x, y)``: x (N, 1, 28, 28) float32 in [0, 1], y (N,) class indices (FASHION_CLASSES).

    Looks in ``root``, else $RIEMANNKIT_FASHION_MNIST, else Debian's /usr/share/datasets/fashion-mnist;
    with ``download=True`` (needs a network) torchvision fetches the files into ``root`` or the cache."""
    if split not in _FASHION_FILES:
        raise ValueError(f"unknown split={split!r}; accepted values: {', '.join(_FASHION_FILES)}")
    if limit is not None and (int(limit) != limit or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    folder = _fashion_folder(root)
    if folder is None and download:
        from torchvision.datasets import FashionMNIST

        target = Path(root) if root is not None else cache_dir() / "fashion-mnist"
        FashionMNIST(str(target), train=True, download=True)
        FashionMNIST(str(target), train=False, download=True)
        folder = _fashion_folder(target)
    if folder is None:
        where = str(root) if root is not None else ", ".join(FASHION_DIRS) + " or $RIEMANNKIT_FASHION_MNIST"
        raise FileNotFoundError(
            f"Fashion-MNIST IDX files not found in {where}; install Debian's package "
            f"(apt-get install dataset-fashion-mnist), pass root= a folder holding them, or download=True with a network"
        )
    img_file, lab_file = (folder / f if (folder / f).exists() else folder / f[:-3] for f in _FASHION_FILES[split])
    imgs, labels = _read_idx(img_file), _read_idx(lab_file)
    if limit is not None:
        imgs, labels = imgs[:limit], labels[:limit]
    x = torch.from_numpy(imgs.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))
