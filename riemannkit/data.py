"""Images as (B, 3, H, W) float tensors in [0, 1].

Offline default: the real photographs that ship inside scikit-image, scikit-learn and matplotlib.
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
    """Return ``(images, names)``: the shipped photos (``source='shipped'``) or an image folder path."""
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
            f"image folder source={str(source)!r} does not exist; pass 'shipped' for the offline "
            f"photos or an ImageNet-style folder (one sub-folder of images per class)"
        )
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(root))
    if len(ds) == 0:
        raise FileNotFoundError(f"image folder source={str(source)!r} holds no images")
    n = len(ds) if limit is None else min(limit, len(ds))
    paths = [ds.samples[i][0] for i in range(n)]
    imgs = [_to_tensor(Image.open(p).convert("RGB"), size) for p in paths]
    return torch.stack(imgs), [Path(p).name for p in paths]
