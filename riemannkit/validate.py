"""Input checks at the public boundary, one per kind of input; each error names the parameter and what is accepted.

Ground floor: imports only torch and numpy, so every module can use it.

Decisions (documented in the README and tested in tests/test_validation.py):
- images are float tensors (B, C, H, W) with finite values in [0, 1]; uint8 images, [0, 255] floats and
  [-1, 1] or mean/std-normalised images are refused with the conversion to apply;
- a model is *evaluated in eval mode* for the call (BatchNorm uses its running statistics, Dropout is off)
  and every submodule's training flag is restored afterwards: the caller's model is never left changed,
  and a map never depends on ``batch_size`` through batch statistics;
- a model must return (N, classes) logits, with at least 2 classes when f is a softmax probability;
- targets are integer class indices in range; counts (n, k, batch sizes) are integers >= 1, never bool.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import operator
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

# Values this far outside [0, 1] still count as in range: resizing and blurs in float32 round at ~1e-7.
RANGE_SLACK = 1e-5


class LiveNames(Sequence):
    """The names of a registry, read live from it on every use (a name registered later shows too); behaves as
    the tuple of names (``in``, ``+``, ``==``, ``join``): what error messages list as the accepted values."""

    def __init__(self, names: Callable[[], tuple[str, ...]]):
        self._names = names

    def __getitem__(self, i):
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __add__(self, other) -> tuple:
        return self._names() + tuple(other)

    def __radd__(self, other) -> tuple:
        return tuple(other) + self._names()

    def __eq__(self, other) -> bool:
        return self._names() == tuple(other) if isinstance(other, (tuple, list, LiveNames)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


class LiveMapping(Mapping):
    """A registry's {name: value} table, read live from it on every use (an entry registered later shows too):
    what the book's tables and figures take their labels from."""

    def __init__(self, table: Callable[[], dict]):
        self._table = table

    def __getitem__(self, key):
        return self._table()[key]

    def __iter__(self) -> Iterator:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return repr(self._table())


def check_images(x, name: str = "x") -> torch.Tensor:
    """``x`` as a float tensor (B, C, H, W) with finite values in [0, 1], or a ValueError that says how to fix it."""
    x = check_image_form(x, name)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds NaN or Inf values; images must be finite values in [0, 1]")
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
        if lo >= 0 and 2 < hi <= 255:
            fix = f"it looks like 0..255 pixel values: pass {name} / 255"
        elif -1 - RANGE_SLACK <= lo < -0.1 and hi <= 1 + RANGE_SLACK:
            fix = f"it looks like images scaled to [-1, 1]: pass ({name} + 1) / 2"
        elif lo < -0.1 and hi > 1.1:
            fix = ("it looks like mean/std-normalised images: pass the [0, 1] images and let the model normalise "
                   "(riemannkit.models.Normalized wraps a classifier that expects normalised input)")
        else:
            fix = f"clip or rescale it into [0, 1] (e.g. {name}.clamp(0, 1)) if the excess is rounding"
        raise ValueError(f"{name} must hold values in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; {fix}")
    return x


def check_image_form(x, name: str = "x") -> torch.Tensor:
    """``x`` as a float tensor (B, C, H, W) (numpy converted): :func:`check_images` without the value checks,
    which need a host sync (see :class:`DeviceChecks`)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of images (B, C, H, W) in [0, 1], got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(
            f"{name} has dtype {x.dtype}; riemannkit takes float images in [0, 1]: convert 8-bit images with "
            f"{name}.float() / 255"
        )
    if x.ndim != 4:
        raise ValueError(f"{name} must be a (B, C, H, W) batch of images, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} holds no images (shape {tuple(x.shape)})")
    return x


def image_values_ok(x: torch.Tensor) -> torch.Tensor:
    """A boolean tensor on ``x``'s device: every value finite and in [0, 1] (within RANGE_SLACK); no host sync."""
    lo, hi = torch.aminmax(x.detach())
    return torch.isfinite(x).all() & (lo >= -RANGE_SLACK) & (hi <= 1 + RANGE_SLACK)


class DeviceChecks:
    """Checks whose outcome is a boolean tensor on the device, collected during one call and read with one host
    sync at its end (:meth:`settle`), so that a GPU never waits for the host in the middle of a call.

    Each check carries the function that raises (or warns) with its message, run only when the check failed;
    checks are settled in the order they were added, errors before warnings."""

    def __init__(self) -> None:
        self._items: list[tuple[torch.Tensor, Callable[[], None], bool]] = []

    def add(self, ok: torch.Tensor, fail: Callable[[], None]) -> None:
        """Add the check ``ok`` (a boolean tensor); ``fail()`` raises the error when it is False."""
        self._items.append((ok.detach().reshape(()), fail, False))

    def warn_unless(self, ok: torch.Tensor, warn: Callable[[], None]) -> None:
        """Add a warning: ``warn()`` runs when ``ok`` is False (after every error check passed)."""
        self._items.append((ok.detach().reshape(()), warn, True))

    def images(self, x: torch.Tensor, name: str = "x") -> None:
        """Finite values in [0, 1] (:func:`check_images`' value checks), settled later."""
        self.add(image_values_ok(x), lambda: check_images(x, name))

    def target(self, target: torch.Tensor, n_classes: int) -> None:
        """Class indices in [0, n_classes) (:func:`check_target`'s range check), settled later."""
        ok = ((target >= 0) & (target < n_classes)).all() if target.numel() else torch.ones((), dtype=torch.bool)
        self.add(ok, lambda: check_target(target, target.shape[0], n_classes))

    def settle(self) -> None:
        """Read every check with one host sync; raise the first failed error check, then run failed warnings."""
        if not self._items:
            return
        items, self._items = self._items, []
        # Gather on the accelerator when there is one: copying a CPU flag there does not wait on its queue.
        dev = next((ok.device for ok, _, _ in items if ok.device.type != "cpu"), items[0][0].device)
        if bool(torch.stack([ok.to(dev, non_blocking=True) for ok, _, _ in items]).all()):
            return
        for ok, fail, warn in sorted(items, key=lambda t: t[2]):  # errors first, each in the order added
            if not bool(ok):
                fail()
        return


def check_count(value, name: str, minimum: int = 1, maximum: int | None = None, why_max: str = "") -> int:
    """``value`` as a Python int in [minimum, maximum]; bools, floats and strings are refused."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got the bool {value!r}")
    try:
        v = operator.index(value)  # ints and numpy/torch integer scalars; floats such as 3.0 are refused
    except TypeError:
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            v = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})") from None
    if v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}={v} exceeds the largest accepted value {maximum}{'; ' + why_max if why_max else ''}")
    return v


def check_logits(out, n_rows: int | None = None, output: str = "prob") -> torch.Tensor:
    """The model's output as (N, classes) logits (at least 2 classes for ``output='prob'``), or a ValueError saying what it returned."""
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"the model must return a tensor of logits (N, classes), got a {type(out).__name__}; wrap it so that it "
            f"returns the logits (e.g. lambda x: model(x)[0] or model(x)['logits'])"
        )
    if out.ndim != 2:
        raise ValueError(f"the model must return logits of shape (N, classes), got shape {tuple(out.shape)}")
    if out.shape[1] < 2 and output == "prob":
        raise ValueError(
            "the model returns a single logit per image, and output='prob' takes the softmax over classes, which is 1 "
            "for one class (an all-zero map): pass output='logit', or return two logits, e.g. torch.cat([-z, z], 1) / 2 "
            "for a binary model's logit z"
        )
    if out.shape[1] < 1:
        raise ValueError("the model returned logits with no class (shape (N, 0))")
    if n_rows is not None and out.shape[0] != n_rows:
        raise ValueError(f"the model returned {out.shape[0]} rows of logits for {n_rows} images")
    if not out.is_floating_point():
        raise ValueError(f"the model must return float logits, got dtype {out.dtype}")
    return out


def check_target(target, n_images: int, n_classes: int | None = None, device=None) -> torch.Tensor:
    """``target`` (one index, or one per image) as a long tensor (n_images,) of class indices in [0, n_classes)."""
    if isinstance(target, (bool, np.bool_)):
        raise ValueError(f"target must be integer class indices, got the bool {target!r}")
    if isinstance(target, (str, bytes)):
        raise ValueError(f"target={target!r} is text; accepted values: integer class indices (an int such as 3, a "
                         f"list of ints, or an integer tensor), one or one per image")
    try:
        t = torch.as_tensor(target)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"target={target!r} is not integer class indices ({err}); accepted values: an int, a list "
                         "of ints or an integer tensor, one or one per image") from None
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"target must be integer class indices, got {target!r} (dtype {t.dtype})")
    t = t.to(dtype=torch.long).to(device=device, non_blocking=True).reshape(-1)  # host-to-device: no wait on the queue
    if t.numel() == 1 and n_images > 1:
        t = t.expand(n_images)
    if t.shape[0] != n_images:
        raise ValueError(f"target has {t.shape[0]} entries for {n_images} images (give one, or one per image)")
    if n_classes is not None and t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"target must be class indices in [0, {n_classes - 1}] (the model has {n_classes} classes), got {hi if hi >= n_classes else lo}")
    return t


@contextlib.contextmanager
def eval_mode(model) -> Iterator[None]:
    """Run the block with ``model`` in eval mode, then restore every submodule's own training flag."""
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, was_training in modes:
            m.training = was_training


def evaluates_model(fn: Callable) -> Callable:
    """Decorate a public function whose ``model`` argument is evaluated: it runs in :func:`eval_mode`."""
    sig = inspect.signature(fn)
    index = list(sig.parameters).index("model")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        model = args[index] if len(args) > index else kwargs.get("model")
        with eval_mode(model):
            return fn(*args, **kwargs)

    return wrapper
