"""The chapters' experiments as functions: completeness tables and their provenance."""
from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import integrate as I
from . import metrics as M
from . import paths as P
from . import schedule as S
from . import evaluation as EV
from .idgi import path_and_idgi  # noqa: F401  (re-exported for the chapters)


def provenance(command: str | None = None, device: torch.device | str | None = None) -> dict:
    """Where a number came from: command, git commit, device, versions, date."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
            cwd=Path(__file__).parent, timeout=10,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {
        "command": command or " ".join(sys.argv),
        "git_commit": commit,
        "device": name,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if dev.type == "cuda" else None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def save_json(file: str | Path, record: dict) -> Path:
    """Write ``record`` as indented JSON (numpy values converted), creating folders."""
    def convert(o):
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        if isinstance(o, (np.ndarray, torch.Tensor)):
            return o.tolist()
        raise TypeError(f"cannot store {type(o).__name__} in JSON")

    p = Path(file)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(record, indent=1, default=convert))
    return p


def fit_schedules(
    model: nn.Module, x_calib: torch.Tensor, paths: list[str], steps: list[int], k: int,
    batch_size: int = 64, path_kwargs: dict | None = None,
) -> dict:
    """Algorithm 1 on the calibration images, then Powell for each n on the paper's bound ('alphas') and
    on the sup bound ('alphas_sup'): {path: {grid, gprime, alphas: {n: …}, alphas_sup: {n: …}}}."""
    path_kwargs = path_kwargs or {}
    out = {}
    for path in tqdm(paths, desc="Algorithm 1"):
        grid, gp = S.estimate_gprime(model, x_calib, path, k=k, batch_size=batch_size, **path_kwargs.get(path, {}))
        out[path] = {
            "grid": grid,
            "gprime": gp,
            "alphas": {n: S.fit_schedule(grid, gp, n) for n in steps},
            "alphas_sup": {n: S.fit_schedule(grid, gp, n, bound="sup") for n in steps},
        }
    return out


def completeness_table(
    model: nn.Module, x: torch.Tensor, rows: list[tuple[str, str, str]], steps: list[int],
    schedules: dict, batch_size: int = 64, path_kwargs: dict | None = None,
) -> dict:
    """Relative completeness error for each row (label, path, rule | 'riemannopt' | 'riemannopt-sup').

    Returns {label: {n: {"mean": per-image mean, "pooled": ratio of sums, "per_image": [...]}}}.
    """
    path_kwargs = path_kwargs or {}
    table: dict = {}
    bar = tqdm(total=len(rows) * len(steps), desc="completeness")
    for label, path, rule in rows:
        table[label] = {}
        for n in steps:
            kw = dict(path_kwargs.get(path, {}))
            if rule in ("riemannopt", "riemannopt-sup"):
                kw["alphas"] = schedules[path]["alphas" if rule == "riemannopt" else "alphas_sup"][n]
            else:
                kw.update(rule=rule, n=n)
            r = I.attribute(model, x, path=path, batch_size=batch_size, **kw)
            err = M.completeness_error(r.attr, r.f_input, r.f_baseline)
            table[label][n] = {
                "mean": float(err.mean()),
                "pooled": M.completeness_error_pooled(r.attr, r.f_input, r.f_baseline),
                "per_image": err.tolist(),
            }
            bar.update()
    bar.close()
    return table


def markdown_table(table: dict, steps: list[int], key: str = "mean", fmt: str = "{:.4f}") -> str:
    """A Markdown table: one row per label, one column per step count, the best of each column bold."""
    best = {n: min(table[r][n][key] for r in table) for n in steps}
    head = "| method | " + " | ".join(str(n) for n in steps) + " |\n|---|" + "---:|" * len(steps) + "\n"
    lines = []
    for label, row in table.items():
        cells = []
        for n in steps:
            s = fmt.format(row[n][key])
            cells.append(f"**{s}**" if row[n][key] == best[n] else s)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines)


# ------------------------------------------------------------------------------------------- IDGI
# The IDGI and stability chapters: every path with and without IDGI, from one pass of f and ∇f.
PATH_LABELS = {"ig": "IG", "blurig": "BlurIG", "guidedig": "GIG"}


def method_labels(paths: list[str]) -> list[str]:
    """Row labels 'IG', 'IG+IDGI', 'BlurIG', … in the study's order for the given paths."""
    out = []
    for p in paths:
        name = P.check_path_name(p)
        out += [PATH_LABELS[name], PATH_LABELS[name] + "+IDGI"]
    return out


def all_method_maps(
    model: nn.Module, x: torch.Tensor, paths: list[str] = ("ig", "blurig", "guidedig"), n: int = 16,
    target=None, output: str = "prob", batch_size: int = 64, path_kwargs: dict | None = None,
) -> dict[str, I.Attribution]:
    """{'IG': …, 'IG+IDGI': …, 'BlurIG': …, …}: each path's left-rule map and its IDGI map at n steps."""
    if isinstance(paths, str) or not len(paths):
        raise ValueError(f"paths must be a non-empty list of path names ({', '.join(P.PATH_NAMES)}), got {paths!r}")
    names = [P.check_path_name(p) for p in paths]
    maps = EV.method_maps(model, x, [m for p in names for m in (p, p + "+idgi")], n, None, target, output,
                          batch_size, path_kwargs)
    return {PATH_LABELS[k.split("+")[0]] + ("+IDGI" if k.endswith("+idgi") else ""): v for k, v in maps.items()}


def completeness_by_method(maps: dict[str, I.Attribution]) -> dict[str, torch.Tensor]:
    """Per-image relative completeness error (B,) of each map in ``maps``."""
    return {k: M.completeness_error(r.attr, r.f_input, r.f_baseline) for k, r in maps.items()}


def jpeg_stability_table(
    model: nn.Module, x: torch.Tensor, paths: list[str] = ("ig", "blurig", "guidedig"), n: int = 16,
    quality: int = 75, target=None, output: str = "prob", batch_size: int = 64, reduce: str = "sum",
    path_kwargs: dict | None = None,
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, I.Attribution]]:
    """The study's Table 5: per method, MSE, −ln MSE and relative error (B,) between the maps of x and of its JPEG copy.

    Both copies are 8-bit and explained for the clean image's class (``target``, default its top-1);
    the maps of all methods come from one :func:`all_method_maps` call on [x; JPEG(x)], and the MSE from
    :func:`riemannkit.metrics.jpeg_stability` (sum-normalised maps).  Returns (table, maps of [x; JPEG(x)]).
    """
    x = M._check_images(x).detach().cpu().float()
    if int(quality) != quality or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in [1, 100], got {quality!r}")
    b = x.shape[0]
    xq = M._to_uint8(x).to(x.dtype) / 255
    xj = M.jpeg_round_trip(xq, int(quality))
    _, target = I._prepare(model, xq, target, batch_size)
    both = torch.cat([xq, xj])
    maps = all_method_maps(model, both, paths, n, target.repeat(2), output, batch_size, path_kwargs)
    table = {}
    for label, r in maps.items():
        def saliency_fn(img: torch.Tensor, attr: torch.Tensor = r.attr) -> torch.Tensor:
            if torch.equal(img, xq):
                return attr[:b]
            if torch.equal(img, xj):
                return attr[b:]
            raise RuntimeError("jpeg_stability passed images other than x and its JPEG copy")

        mse, nlog = M.jpeg_stability(saliency_fn, x, int(quality), reduce)
        table[label] = {"mse": mse, "neg_log_mse": nlog, "relative": relative_map_error(r.attr[:b], r.attr[b:], xq, reduce)}
    return table, maps


def relative_map_error(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """||â − b̂||² / (||â||² + ||b̂||²) per image of the channel-reduced, Σ|·|-normalised maps: 0 equal, ≈ 1 unrelated."""
    ra, rb = (M.reduce_saliency(m, x, reduce).flatten(1) for m in (a, b))
    na, nb = ra.abs().sum(1, keepdim=True), rb.abs().sum(1, keepdim=True)
    if (na == 0).any() or (nb == 0).any():
        raise ValueError("a or b holds an all-zero map: it cannot be normalised by Σ|map|")
    ra, rb = ra / na, rb / nb
    return (ra - rb).pow(2).sum(1) / (ra.pow(2).sum(1) + rb.pow(2).sum(1))


def relative_l2(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-image ||a − b|| / ||b|| (B,) for each key of ``b`` (e.g. the same maps on two devices)."""
    missing = set(b) - set(a)
    if missing:
        raise ValueError(f"a lacks the key(s) {sorted(missing)} of b")
    out = {}
    for k, ref in b.items():
        if tuple(a[k].shape) != tuple(ref.shape):
            raise ValueError(f"a[{k!r}] has shape {tuple(a[k].shape)}, b[{k!r}] has {tuple(ref.shape)}")
        d = (a[k].detach().double().cpu() - ref.detach().double().cpu()).flatten(1).norm(dim=1)
        out[k] = d / ref.detach().double().cpu().flatten(1).norm(dim=1)
    return out


def mean_spread_table(rows: dict[str, torch.Tensor], header: str, fmt: str = "{:.2f}", best: str = "max") -> str:
    """Markdown table 'method | header': mean ± sample std over images per row, the best mean bold."""
    if best not in ("max", "min"):
        raise ValueError(f"unknown best={best!r}; accepted values: max, min")
    stats = {}
    for k, v in rows.items():
        v = torch.as_tensor(v, dtype=torch.float64).flatten()
        stats[k] = (float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0)
    pick = (max if best == "max" else min)(m for m, _ in stats.values())
    lines = [f"| method | {header} |", "|---|---:|"]
    for k, (m, s) in stats.items():
        cell = f"{fmt.format(m)} ± {fmt.format(s)}"
        lines.append(f"| {k} | {'**' + cell + '**' if m == pick else cell} |")
    return "\n".join(lines)


def per_image_markdown(rows: dict[str, torch.Tensor], names: list[str], fmt: str = "{:.1e}") -> str:
    """Markdown table: one row per method, one column per image, then the mean over the images."""
    for k, v in rows.items():
        if torch.as_tensor(v).numel() != len(names):
            raise ValueError(f"rows[{k!r}] has {torch.as_tensor(v).numel()} values for {len(names)} names")
    lines = ["| method | " + " | ".join(names) + " | mean |", "|---|" + "---:|" * (len(names) + 1)]
    for k, v in rows.items():
        v = torch.as_tensor(v, dtype=torch.float64).flatten()
        lines.append(f"| {k} | " + " | ".join(fmt.format(float(e)) for e in v) + f" | {fmt.format(float(v.mean()))} |")
    return "\n".join(lines)


def cross_device_difference(
    model: nn.Module, x: torch.Tensor, devices: tuple[str, str] = ("cpu", "cuda"),
    paths: list[str] = ("ig", "blurig", "guidedig"), n: int = 16, target=None, output: str = "prob",
    batch_size: int = 64, path_kwargs: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Per method, ||map on devices[1] − map on devices[0]|| / ||map on devices[0]|| per image (B,)."""
    import copy

    if len(devices) != 2:
        raise ValueError(f"devices must name two devices, got {devices!r}")
    x = x.detach().cpu()
    if target is None:
        _, target = I._prepare(model, x, None, batch_size)
    target = torch.as_tensor(target).cpu()
    maps = []
    for d in devices:
        m = copy.deepcopy(model).to(torch.device(d)).eval()
        r = all_method_maps(m, x, paths, n, target, output, batch_size, path_kwargs)
        maps.append({k: v.attr.cpu() for k, v in r.items()})
        del m
    return relative_l2(maps[1], maps[0])


def mass_ratio(maps: dict[str, I.Attribution]) -> dict[str, torch.Tensor]:
    """Σ_i |attr_i| / |f(x) − f(x')| per image (B,) for each map: 1 when no attribution cancels."""
    out = {}
    for k, r in maps.items():
        delta = (r.f_input - r.f_baseline).double().abs().cpu()
        if (delta == 0).any():
            raise ValueError(f"maps[{k!r}]: f(x) − f(x') is 0 for some image, the ratio is undefined")
        out[k] = r.attr.detach().double().abs().flatten(1).sum(1).cpu() / delta
    return out


def concentration(attr: torch.Tensor, x: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """HW · Σ_p Ŝ_p² per image of the channel-reduced, Σ|·|-normalised map: 1 if all |Ŝ_p| are equal, HW for one pixel."""
    s = M.reduce_saliency(attr, x, reduce).flatten(1)
    norm = s.abs().sum(1, keepdim=True)
    if (norm == 0).any():
        raise ValueError("attr holds an all-zero map: it cannot be normalised by Σ|map|")
    return s.shape[1] * (s / norm).pow(2).sum(1)
