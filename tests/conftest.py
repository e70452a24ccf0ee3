"""Shared tiny synthetic models for the riemannkit tests: every toy model lives here; only a fault injector
written for one test (a model that raises out-of-memory, returns NaN later, or returns the wrong output
form) stays next to that test.

All models are cheap ``nn.Module`` s on inputs such as (2, 3, 8, 8).  ``attribute`` casts images to
float32, so the models used through it are float32; the closed-form helpers (``grad``, ``f``) let the
tests compute exact answers in float64.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

# Make the package importable however pytest is started (it is not installed in the venv).
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHAPE = (3, 8, 8)
NFEAT = math.prod(SHAPE)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class LinearModel(nn.Module):
    """f_k(x) = w_k · flatten(x) + c_k, with ``n_out`` logits."""

    def __init__(self, shape=SHAPE, n_out: int = 2, seed: int = 0, dtype=torch.float32):
        super().__init__()
        self.shape = tuple(shape)
        nfeat = math.prod(self.shape)
        self.lin = nn.Linear(nfeat, n_out, dtype=dtype)
        g = _gen(seed)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(n_out, nfeat, generator=g, dtype=dtype))
            self.lin.bias.copy_(torch.randn(n_out, generator=g, dtype=dtype))

    def forward(self, x):
        return self.lin(x.flatten(1))

    def w(self, target: int = 0) -> torch.Tensor:
        return self.lin.weight[target].detach().view(self.shape)


class QuadraticModel(nn.Module):
    """One logit f(x) = ½ xᵀQx + bᵀx over the flattened image (Q symmetric)."""

    def __init__(self, shape=SHAPE, seed: int = 1, scale: float = 1.0):
        super().__init__()
        self.shape = tuple(shape)
        nfeat = math.prod(self.shape)
        g = _gen(seed)
        m = torch.randn(nfeat, nfeat, generator=g, dtype=torch.float64)
        q = (m + m.T) / (2 * math.sqrt(nfeat)) * scale
        self.Q = nn.Parameter(q.float(), requires_grad=False)
        self.b = nn.Parameter(torch.randn(nfeat, generator=g).float(), requires_grad=False)
        self.Q64, self.b64 = q, self.b.detach().double()

    def forward(self, x):
        v = x.flatten(1)
        return (0.5 * ((v @ self.Q) * v).sum(1) + v @ self.b).unsqueeze(1)

    def f(self, x: torch.Tensor) -> torch.Tensor:
        v = x.double().flatten(1)
        return 0.5 * ((v @ self.Q64) * v).sum(1) + v @ self.b64

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        v = x.double().flatten(1)
        return (v @ self.Q64 + self.b64).view(x.shape)

    def hess_dot(self, d: torch.Tensor) -> torch.Tensor:
        """Q d per image, shaped like d."""
        return (d.double().flatten(1) @ self.Q64).view(d.shape)


class CubicModel(nn.Module):
    """One logit f(x) = (v · x)³ / 6, so on the IG path from 0, |g'(α)| grows linearly in α."""

    def __init__(self, shape=SHAPE, seed: int = 2):
        super().__init__()
        self.shape = tuple(shape)
        v = torch.randn(math.prod(self.shape), generator=_gen(seed), dtype=torch.float64)
        v = v / v.norm()
        self.v = nn.Parameter(v.float(), requires_grad=False)
        self.v64 = v

    def forward(self, x):
        return ((x.flatten(1) @ self.v) ** 3 / 6).unsqueeze(1)


class ConvNet(nn.Module):
    """A tiny non-linear classifier: conv → tanh → pool → linear, 3 classes."""

    def __init__(self, seed: int = 3):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(self.pool(torch.tanh(3 * self.conv(x))).flatten(1))


class LinearDecoder(nn.Module):
    """g(z) = A z + c reshaped to an image (so J_g = A everywhere): the manifold path's simplest decoder."""

    def __init__(self, d: int = 4, shape=SHAPE, seed: int = 0, dtype=torch.float32):
        super().__init__()
        self.shape = tuple(shape)
        n = math.prod(self.shape)
        self.A = nn.Parameter(torch.randn(n, d, generator=_gen(seed), dtype=dtype) / math.sqrt(d))
        self.c = nn.Parameter(0.5 + 0.1 * torch.randn(n, generator=_gen(seed + 1), dtype=dtype))

    def forward(self, z):
        return (z @ self.A.T + self.c).view(-1, *self.shape)


class LinearLogits(nn.Module):
    """logits = W flatten(x) + c: a constant gradient w_t."""

    def __init__(self, seed: int = 1):
        super().__init__()
        g = _gen(seed)
        self.w = nn.Parameter(torch.randn(2, NFEAT, generator=g), requires_grad=False)
        self.c = nn.Parameter(torch.randn(2, generator=g), requires_grad=False)

    def forward(self, x):
        return x.flatten(1) @ self.w.T + self.c


class Ridge(nn.Module):
    """logit_0 = relu(v·x − c), logit_1 = 0: zero gradient until the path crosses v·x = c."""

    def __init__(self, v: torch.Tensor, c: float):
        super().__init__()
        self.v = nn.Parameter(v.flatten().clone(), requires_grad=False)
        self.c = c

    def forward(self, x):
        z = torch.relu(x.flatten(1) @ self.v - self.c)
        return torch.stack([z, torch.zeros_like(z)], 1)


class RegionModel(nn.Module):
    """Two logits [a·(Σ_{p∈R} x[0, p]) + b, 0]: p(class 0) depends only on channel 0 inside region R."""

    def __init__(self, region: torch.Tensor, a: float, b: float, mean: bool = False):
        super().__init__()
        self.register_buffer("region", region.float())
        self.a, self.b = a, b
        self.norm = float(region.sum()) if mean else 1.0

    def forward(self, x):
        z = self.a * (x[:, 0] * self.region).flatten(1).sum(1) / self.norm + self.b
        return torch.stack([z, torch.zeros_like(z)], 1)


class MLPDecoder(nn.Module):
    """A small smooth non-linear decoder (tanh MLP, sigmoid output)."""

    def __init__(self, d: int = 4, shape=(1, 8, 8), seed: int = 0, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(seed)
        self.shape = shape
        self.net = nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, math.prod(shape))).to(dtype)

    def forward(self, z):
        return torch.sigmoid(2 * self.net(z)).view(-1, *self.shape)


class SmoothNet(nn.Module):
    """A smooth non-linear classifier on 1×8×8 images: 3 logits (the manifold tests' classifier)."""

    def __init__(self, seed=5):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 16, 3)

    def forward(self, x):
        return self.fc(nn.functional.avg_pool2d(torch.tanh(2 * self.conv(x)), 2).flatten(1))


class BNDropNet(nn.Module):
    """A classifier with BatchNorm and Dropout, the two layers whose training mode changes a map."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(self.drop(torch.tanh(self.bn(self.conv(x)))).flatten(1))


# ----------------------------------------------------------------------------------------- models in training mode


class ScalarModel(nn.Module):
    """A 1-feature model f(u) = exp(sin(3u)) on (N, 1, 1, 1) inputs (one logit)."""

    def __init__(self):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(3.0), requires_grad=False)

    def forward(self, x):
        return torch.exp(torch.sin(self.k * x.flatten(1)))


class NaNModel(nn.Module):
    """A model whose output and gradient are NaN."""

    def __init__(self, shape=SHAPE):
        super().__init__()
        self.lin = nn.Linear(math.prod(shape), 2)

    def forward(self, x):
        return self.lin(x.flatten(1)) * torch.tensor(float("nan"))


class SteepModel(nn.Module):
    """Two logits (0, A·σ(k(v·x / v·1 − c))): on the IG path from black to x, f rises by A in a window of width ~1/k
    around α = c / (v·x / v·1), and the integrand g(α) = f'(α) (v ⊙ x)/(v·x) is one fixed map times a spike, so the
    exact attribution is (v ⊙ x)/(v·x) · (f(x) − f(0))."""

    def __init__(self, shape=SHAPE, k: float = 200.0, c: float = 0.3, amplitude: float = 5.0, seed: int = 4):
        super().__init__()
        self.shape, self.k, self.c, self.amplitude = tuple(shape), float(k), float(c), float(amplitude)
        self.v = nn.Parameter(torch.rand(math.prod(self.shape), generator=_gen(seed)) + 0.1, requires_grad=False)

    def forward(self, x):
        z = self.amplitude * torch.sigmoid(self.k * (x.flatten(1) @ self.v / self.v.sum() - self.c))
        return torch.stack([torch.zeros_like(z), z], 1)

    def exact(self, x: torch.Tensor, f_input: torch.Tensor, f_baseline: torch.Tensor) -> torch.Tensor:
        """The exact IG map (from black) of the logit of class 1."""
        vx = self.v.double().view(self.shape) * x.double()
        return vx / vx.flatten(1).sum(1).view(-1, 1, 1, 1) * (f_input - f_baseline).double().view(-1, 1, 1, 1)

    def spike(self, x: torch.Tensor) -> torch.Tensor:
        """Where the spike sits on each image's IG path: α = c / (v·x / v·1)."""
        return self.c / (x.double().flatten(1) @ self.v.double() / float(self.v.sum()))


class Counting(nn.Module):
    """Wraps a model and records the batch size of every forward call."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return self.inner(x)


@pytest.fixture
def images() -> torch.Tensor:
    """Two (3, 8, 8) images in [0, 1], float32."""
    return torch.rand(2, *SHAPE, generator=_gen(10))


@pytest.fixture
def baseline() -> torch.Tensor:
    """A non-zero baseline for the two images."""
    return 0.5 * torch.rand(2, *SHAPE, generator=_gen(11))


@pytest.fixture
def linear_model() -> LinearModel:
    return LinearModel().eval()


@pytest.fixture
def quad_model() -> QuadraticModel:
    return QuadraticModel().eval()


@pytest.fixture
def cubic_model() -> CubicModel:
    return CubicModel().eval()


@pytest.fixture
def conv_model() -> ConvNet:
    return ConvNet().eval()


@pytest.fixture
def scalar_model() -> ScalarModel:
    return ScalarModel().eval()


@pytest.fixture
def nan_model() -> NaNModel:
    return NaNModel().eval()


@pytest.fixture
def counting():
    """Factory: ``counting(model)`` wraps a model to count its forward calls."""
    return Counting


@pytest.fixture
def model_classes():
    """The model classes above, for tests that need a non-default shape or seed."""
    import types

    return types.SimpleNamespace(
        Linear=LinearModel, Quadratic=QuadraticModel, Cubic=CubicModel, Conv=ConvNet,
        Scalar=ScalarModel, NaN=NaNModel, Counting=Counting,
    )


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
