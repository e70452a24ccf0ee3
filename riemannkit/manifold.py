"""Manifold Integrated Gradients (Zaher et al.): IG along a geodesic of a VAE's decoded latent manifold.

A VAE decoder g: R^d → images spans a d-dimensional surface ("the data manifold") in pixel space.  Its
pullback metric M(z) = J_g(z)ᵀ J_g(z) measures a latent curve by the length of its decoded image, and
a geodesic between two latent codes is a curve of least decoded energy

    E[z] = ∫₀¹ ||d/dα g(z(α))||² dα  ≈  (T − 1) Σ_{i=0}^{T−2} ||g(z_{i+1}) − g(z_i)||²

(the discrete curve energy of T knots z_0 … z_{T−1} at α = i/(T−1), with z_0 and z_{T−1} fixed).  The
straight line in latent space decodes to a curve that may cut across regions of low density; the
geodesic bends around them.  :func:`geodesic` minimises the discrete energy, batched over images.

The attribution path (``path='manifold'`` in :func:`riemannkit.attribute`) decodes the piecewise-linear
interpolation z(α) of the knots and adds a residual that makes the endpoints exact:

    γ(α) = g(z(α)) + (1 − α)(x' − g(z_0)) + α (x − g(z_{T−1})),
    γ'(α) = J_g(z(α)) z'(α) + (x − g(z_{T−1})) − (x' − g(z_0)),

so γ(0) = x', γ(1) = x and the path integral of ∇f(γ)·γ' telescopes to f(x) − f(x') (completeness
holds for the exact integral).  ``residual=False`` is the reference's path between the two
*reconstructions* g(z_0) and g(z_{T−1}); then completeness holds for f(g(z_{T−1})) − f(g(z_0)) only.
The velocity is exact: a forward-mode Jacobian-vector product (torch.func.jvp), batched over
alphas × images.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch import nn

from . import paths as P
from . import validate as V

MANIFOLD_KWARGS = ("decoder", "knots", "baseline", "residual")


# ---------------------------------------------------------------- the VAE


class ConvVAE(nn.Module):
    """Convolutional VAE for (N, 1, 28, 28) images in [0, 1]; smooth (SiLU) so the decoder's Jacobian is.

    ``encode(x) -> (mu, logvar)`` each (N, latent_dim); ``decode(z) -> (N, 1, 28, 28)`` in (0, 1)."""

    def __init__(self, latent_dim: int = 16, width: int = 32):
        super().__init__()
        if int(latent_dim) != latent_dim or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        self.latent_dim, self.width = int(latent_dim), int(width)
        w = self.width
        self.enc = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.SiLU(),            # 14×14
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.SiLU(),        # 7×7
            nn.Flatten(), nn.Linear(2 * w * 49, 2 * self.latent_dim),
        )
        self.dec = nn.Sequential(
            nn.Linear(self.latent_dim, 2 * w * 49), nn.SiLU(), nn.Unflatten(1, (2 * w, 7, 7)),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.SiLU(),  # 14×14
            nn.ConvTranspose2d(w, 1, 4, 2, 1),                 # 28×28
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dec(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode(z), mu, logvar


def vae_loss(model: ConvVAE, x: torch.Tensor) -> torch.Tensor:
    """Negative ELBO per image (Bernoulli likelihood summed over pixels + KL to N(0, I)), batch mean."""
    rec, mu, logvar = model(x)
    bce = nn.functional.binary_cross_entropy(rec, x, reduction="sum")
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
    return (bce + kl) / x.shape[0]


def train_vae(
    epochs: int = 1,
    seed: int = 0,
    device: str | torch.device = "auto",
    latent_dim: int = 16,
    width: int = 32,
    limit: int | None = 20000,
    batch_size: int = 128,
    lr: float = 2e-3,
    retrain: bool = False,
) -> ConvVAE:
    """Eval-mode :class:`ConvVAE` on Fashion-MNIST train images, loaded from ``data.cache_dir()`` or trained
    (Adam, ``epochs`` passes over the first ``limit`` training images, None = all 60k) and cached.

    The cache file name holds every hyper-parameter.  ``model.info`` holds them, the test-set negative
    ELBO per image and the training time."""
    from . import data as D
    from .models import cached_model, train_minibatches

    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if limit is not None and (int(limit) != limit or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    tag = f"d{int(latent_dim)}_w{int(width)}_e{int(epochs)}_n{limit or 'all'}_b{int(batch_size)}_lr{lr:g}_s{int(seed)}"
    torch.manual_seed(seed)
    net = ConvVAE(latent_dim, width)

    def train(net: ConvVAE) -> dict:
        x, _ = D.load_fashion_mnist("train", limit=limit)
        gen = torch.Generator().manual_seed(seed)
        seconds = train_minibatches(net, x.shape[0], lambda idx: vae_loss(net, x[idx]), int(epochs), int(batch_size), lr, gen)
        xt, _ = D.load_fashion_mnist("test", limit=2000)
        with torch.no_grad():
            test_loss = float(vae_loss(net, xt))
        return {
            "latent_dim": int(latent_dim), "width": int(width), "epochs": int(epochs), "limit": limit,
            "batch_size": int(batch_size), "lr": lr, "seed": int(seed), "test_neg_elbo": round(test_loss, 2),
            "train_seconds": round(seconds, 1), "torch": torch.__version__,
        }

    return cached_model(net, f"fashion_vae_{tag}", train, device, retrain)


# ---------------------------------------------------------------- geodesics


def _check_knots(knots, name: str = "knots") -> torch.Tensor:
    if not torch.is_tensor(knots) or knots.ndim != 3:
        shape = tuple(knots.shape) if torch.is_tensor(knots) else type(knots).__name__
        raise ValueError(f"{name} must be a (B, T, d) tensor of latent knots, got {shape}")
    if knots.shape[1] < 2:
        raise ValueError(f"{name} must hold T >= 2 knots per image, got T = {knots.shape[1]}")
    return knots


def linear_knots(z0: torch.Tensor, z1: torch.Tensor, T: int = 20) -> torch.Tensor:
    """T equispaced latent points from z0 to z1 (each (B, d)): (B, T, d), the geodesic's initialisation."""
    if int(T) != T or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    if z0.shape != z1.shape or z0.ndim != 2:
        raise ValueError(f"z0 and z1 must both be (B, d), got {tuple(z0.shape)} and {tuple(z1.shape)}")
    t = torch.linspace(0, 1, int(T), dtype=z0.dtype, device=z0.device).view(1, -1, 1)
    knots = z0.unsqueeze(1) + t * (z1 - z0).unsqueeze(1)
    knots[:, 0], knots[:, -1] = z0, z1  # the endpoints exactly, not z0 + 1·(z1 − z0)
    return knots


def curve_energy(decoder, knots: torch.Tensor) -> torch.Tensor:
    """Discrete curve energy (T − 1) Σ_i ||g(z_{i+1}) − g(z_i)||² per image (B,) of knots (B, T, d).

    The factor T − 1 makes it approximate ∫₀¹ ||d/dα g(z(α))||² dα, which is ≥ (decoded length)², with
    equality for a curve of constant speed: the straight line between the decoded endpoints has energy
    ||g(z_{T−1}) − g(z_0)||²."""
    knots = _check_knots(knots)
    b, t, d = knots.shape
    imgs = decoder(knots.reshape(b * t, d)).reshape(b, t, -1)
    return (t - 1) * (imgs[:, 1:] - imgs[:, :-1]).pow(2).sum(-1).sum(-1)


def curve_length(decoder, knots: torch.Tensor) -> torch.Tensor:
    """Decoded length Σ_i ||g(z_{i+1}) − g(z_i)|| per image (B,)."""
    knots = _check_knots(knots)
    b, t, d = knots.shape
    with torch.no_grad():
        imgs = decoder(knots.reshape(b * t, d)).reshape(b, t, -1)
    return (imgs[:, 1:] - imgs[:, :-1]).norm(dim=-1).sum(-1)


class Geodesic(NamedTuple):
    knots: torch.Tensor  # (B, T, d), the lowest-energy knots found (endpoints z0, z1 unchanged)
    energy: torch.Tensor  # (steps + 1, B) energy before each step and after the last one


def geodesic(
    decoder,
    z0: torch.Tensor,
    z1: torch.Tensor,
    T: int = 20,
    steps: int = 300,
    lr: float = 1e-2,
    optimizer: str = "adam",
    init: torch.Tensor | None = None,
) -> Geodesic:
    """Minimise the discrete curve energy of T knots from z0 to z1 (each (B, d)) over the T − 2 interior knots.

    Batched over images (their energies are independent, so one backward of the summed energy gives each
    image its own gradient).  ``optimizer='adam'`` (default, lr in latent units) or ``'gd'`` (plain
    gradient descent, the reference's choice with step 5e-5 on its unscaled energy of 192² images).
    Starts from the straight latent line (``linear_knots``) unless ``init`` (B, T, d) is given; returns
    for each image the knots of the lowest energy seen (so the returned energy never exceeds the
    initial one) and the energy history."""
    if optimizer not in ("adam", "gd"):
        raise ValueError(f"unknown optimizer={optimizer!r}; accepted values: adam, gd")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    knots = linear_knots(z0, z1, T) if init is None else _check_knots(init, "init").clone()
    knots = knots.detach()
    if init is not None and (knots.shape[0] != z0.shape[0] or knots.shape[2] != z0.shape[1]):
        raise ValueError(f"init must be (B, T, d) = ({z0.shape[0]}, T, {z0.shape[1]}), got {tuple(knots.shape)}")
    inner = knots[:, 1:-1].clone().requires_grad_(True)
    first, last = knots[:, :1], knots[:, -1:]
    opt = torch.optim.Adam([inner], lr=lr) if optimizer == "adam" else torch.optim.SGD([inner], lr=lr)
    best = knots.clone()
    best_e = torch.full((knots.shape[0],), math.inf, dtype=knots.dtype, device=knots.device)
    history = []
    with torch.enable_grad():
        for it in range(int(steps) + 1):
            e = curve_energy(decoder, torch.cat([first, inner, last], 1))
            ed = e.detach()
            history.append(ed)
            better = ed < best_e
            if bool(better.any()):
                best[better, 1:-1] = inner.detach()[better]
                best_e = torch.where(better, ed, best_e)
            if it == int(steps) or inner.shape[1] == 0:
                break
            (grad,) = torch.autograd.grad(e.sum(), inner)
            inner.grad = grad
            opt.step()
    return Geodesic(best, torch.stack(history))


def encode_mean(vae: ConvVAE, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Posterior means μ(x) (N, d) of a VAE, without gradients."""
    with torch.no_grad():
        return torch.cat([vae.encode(c)[0] for c in x.split(batch_size)])


def geodesic_knots(
    vae: ConvVAE, x: torch.Tensor, baseline: torch.Tensor | None = None, T: int = 20, steps: int = 300,
    lr: float = 1e-2, optimizer: str = "adam",
) -> Geodesic:
    """Geodesic knots (B, T, d) from the encoding of the baseline (black by default) to that of each image."""
    baseline = P.check_baseline(x, baseline)
    return geodesic(vae.decode, encode_mean(vae, baseline), encode_mean(vae, x), T, steps, lr, optimizer)


# ---------------------------------------------------------------- the attribution path


def _check_decoded(g: torch.Tensor, x: torch.Tensor) -> None:
    if tuple(g.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"decoder output shape {tuple(g.shape[1:])} does not match the image shape {tuple(x.shape[1:])}")


def bind_manifold_path(
    x: torch.Tensor,
    checks: V.DeviceChecks | None = None,
    decoder=None,
    knots: torch.Tensor | None = None,
    baseline: torch.Tensor | None = None,
    residual: bool = True,
) -> P.Along:
    """The manifold path of ``x`` with its arguments checked and its decoded ends computed once:
    alphas -> (points, velocity), as :func:`manifold_path`."""
    if decoder is None or not callable(decoder):
        raise ValueError("path='manifold' needs decoder=, a callable mapping latents (N, d) to images (N, C, H, W)")
    if knots is None:
        raise ValueError("path='manifold' needs knots=, a (B, T, d) tensor of latent knots (riemannkit.manifold.geodesic)")
    knots = _check_knots(knots)
    b = x.shape[0]
    if knots.shape[0] != b:
        raise ValueError(f"knots must have one row per image: got {knots.shape[0]} rows for {b} images")
    knots = knots.to(device=x.device, dtype=x.dtype)
    t, d = knots.shape[1], knots.shape[2]
    if residual:
        baseline = P.check_baseline(x, baseline, checks)
        with torch.no_grad():
            ends = decoder(torch.cat([knots[:, 0], knots[:, -1]]))
        _check_decoded(ends, x)
        ends = ends.view(2, b, *x.shape[1:])
        r0, r1 = baseline - ends[0], x - ends[1]

    def along(alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = alphas.to(device=x.device, dtype=x.dtype)
        s = a * (t - 1)
        i = s.floor().long().clamp(0, t - 2)  # α = 1 uses the last segment
        u = (s - i.to(s)).view(-1, 1, 1)
        z_lo, z_hi = knots[:, i].transpose(0, 1), knots[:, i + 1].transpose(0, 1)  # (A, B, d)
        z = z_lo + u * (z_hi - z_lo)
        dz = (t - 1) * (z_hi - z_lo)
        na = len(a)
        with torch.no_grad(), warnings.catch_warnings():
            # torch's first jvp call scripts its decompositions and warns that torch.jit.script is deprecated
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
            g, jv = torch.func.jvp(decoder, (z.reshape(na * b, d),), (dz.reshape(na * b, d),))
        _check_decoded(g, x)
        pts, vel = g.view(na, b, *x.shape[1:]), jv.view(na, b, *x.shape[1:])
        if not residual:
            return pts, vel
        av = a.view(-1, *([1] * x.ndim))
        return pts + (1 - av) * r0 + av * r1, vel + (r1 - r0)

    return along


def manifold_path(
    x: torch.Tensor,
    alphas: torch.Tensor,
    decoder=None,
    knots: torch.Tensor | None = None,
    baseline: torch.Tensor | None = None,
    residual: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded piecewise-linear latent path through ``knots`` (B, T, d); points and velocity (A, B, C, H, W).

    With ``residual=True`` γ(α) = g(z(α)) + (1 − α)(x' − g(z_0)) + α(x − g(z_{T−1})), which starts at the
    baseline x' (black by default) and ends at x exactly; with ``residual=False`` γ(α) = g(z(α)), from
    g(z_0) to g(z_{T−1}) (the reference's path; ``baseline`` is then unused)."""
    P._check_alphas_tensor(alphas)
    return bind_manifold_path(x, None, decoder, knots, baseline, residual)(alphas)


# ---------------------------------------------------------------- a targeted attributional attack


@V.evaluates_model
def differentiable_ig(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor | None = None, n: int = 16,
    output: str = "prob",
) -> torch.Tensor:
    """Straight-line IG (midpoint rule, ``n`` nodes) that stays differentiable in ``x`` (create_graph=True).

    Its gradient with respect to x needs the model's second derivatives: a ReLU network has none (almost
    everywhere), so attack a smooth one (Softplus, SiLU, …)."""
    from . import integrate as I

    baseline = P.check_baseline(x, baseline).detach()
    a = ((torch.arange(n, dtype=x.dtype, device=x.device) + 0.5) / n).view(-1, *([1] * x.ndim))
    with torch.enable_grad():
        pts = (baseline + a * (x - baseline)).reshape(n * x.shape[0], *x.shape[1:])
        if not pts.requires_grad:
            pts.requires_grad_(True)
        f = I.target_output(model, pts, target.repeat(n), output)
        (g,) = torch.autograd.grad(f.sum(), pts, create_graph=True)
    return (x - baseline) * g.view(n, *x.shape).mean(0)


def saliency(attr: torch.Tensor) -> torch.Tensor:
    """Σ_c |attr| per pixel, divided by its sum over the image (B, H, W) (the reference's normalisation)."""
    s = attr.abs().sum(1)
    return s / s.flatten(1).sum(1).clamp_min(1e-30).view(-1, 1, 1)


def map_similarity(a: torch.Tensor, b: torch.Tensor, top: float = 0.1) -> dict[str, torch.Tensor]:
    """Per image: Pearson correlation of two saliency maps (B, H, W) and the top-k intersection (the
    fraction of the ``top`` most salient pixels of a that are also among the ``top`` most salient of b)."""
    u, v = a.flatten(1).double(), b.flatten(1).double()
    u, v = u - u.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
    pearson = (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1)).clamp_min(1e-30)
    k = max(1, int(round(top * a[0].numel())))
    ia, ib = a.flatten(1).topk(k, 1).indices, b.flatten(1).topk(k, 1).indices
    hit = torch.zeros_like(a.flatten(1), dtype=torch.bool)
    hit.scatter_(1, ib, True)
    inter = hit.gather(1, ia).double().mean(1)
    return {"pearson": pearson, "topk": inter}


class AttackResult(NamedTuple):
    x_adv: torch.Tensor  # (B, C, H, W), within eps of x (L∞), in [0, 1], same predicted class as x
    loss: torch.Tensor  # (steps + 1, B): ||saliency(IG(x_adv)) − target_map||² at each iterate
    accepted: torch.Tensor  # (B,) number of iterates that kept the class and lowered the loss


@V.evaluates_model
def targeted_ig_attack(
    model: nn.Module,
    x: torch.Tensor,
    target_map: torch.Tensor,
    eps: float = 0.1,
    steps: int = 20,
    step_size: float | None = None,
    n: int = 16,
    baseline: torch.Tensor | None = None,
    target=None,
) -> AttackResult:
    """PGD (L∞, sign steps) that moves IG's saliency map of x toward ``target_map`` (B, H, W) while the
    predicted class stays (Ghorbani et al.'s / Dombrowski et al.'s attack in MIG's targeted form).

    Loss: Σ_pixels (saliency(IG(x̃)) − target_map)², IG from :func:`differentiable_ig` (n midpoint nodes,
    softmax probability of the class of x).  Each step x̃ ← Π(x̃ − step_size·sign ∇loss) onto the ε-ball
    around x and [0, 1]; per image the iterate of lowest loss among those that keep the predicted class
    is returned (the reference instead penalises a change of the probability and stops when the class
    changes)."""
    from . import integrate as I

    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    step_size = eps / 8 if step_size is None else step_size
    x = x.detach()
    cls = I.predict(model, x) if target is None else torch.as_tensor(target, device=x.device).long().expand(x.shape[0])
    tm = target_map.detach().to(x)

    def loss_of(xa):
        return (saliency(differentiable_ig(model, xa, cls, baseline, n)) - tm).flatten(1).pow(2).sum(1)

    cur = x.clone()
    best = x.clone()
    best_loss = None  # the loss at x itself, set at the first iterate
    history = []
    accepted = torch.zeros(x.shape[0], dtype=torch.long)
    for it in range(int(steps) + 1):
        xa = cur.clone().requires_grad_(True)
        loss = loss_of(xa)
        (grad,) = torch.autograd.grad(loss.sum(), xa)
        ld = loss.detach()
        history.append(ld)
        keep = I.predict(model, cur) == cls
        if best_loss is None:
            best_loss = ld.clone()
        better = keep & (ld < best_loss)
        best[better], best_loss = cur[better], torch.where(better, ld, best_loss)
        accepted += better.long().cpu()
        if it == int(steps):
            break
        with torch.no_grad():
            cur = cur - step_size * grad.sign()
            cur = torch.min(torch.max(cur, x - eps), x + eps).clamp(0, 1)
    return AttackResult(best, torch.stack(history), accepted)


def manifold_breaks(decoder=None, knots: torch.Tensor | None = None, baseline=None, residual: bool = True) -> list[float]:
    """The knots' α = i/(T − 1): the path is linear in latent space between them, and its velocity jumps there."""
    if knots is None:
        return []
    t = int(_check_knots(torch.as_tensor(knots)).shape[1])
    return [i / (t - 1) for i in range(1, t - 1)]


P.register_path("manifold", manifold_path, MANIFOLD_KWARGS, bind=bind_manifold_path, breaks=manifold_breaks, label="MIG")
