"""The chapters' experiments as functions: completeness tables and their provenance."""
from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import integrate as I
from . import metrics as M
from . import paths as P
from . import schedule as S
from .idgi import GUIDED_KWARGS, idgi_combine


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


def path_and_idgi(
    model: nn.Module, x: torch.Tensor, path: str = "ig", n: int = 16, alphas=None, target=None,
    output: str = "prob", batch_size: int = 64, **path_kwargs,
) -> tuple[I.Attribution, I.Attribution]:
    """(left-rule path attribution, its IDGI version) from f and ∇f at the same points, computed once.

    Equals ``rk.attribute(..., rule='left')`` / ``attribute(..., alphas=)`` and ``idgi_attribute`` with
    the same arguments, for the gradient evaluations of one of them (n per image plus f(x)).
    """
    path = P.check_path_name(path)
    if output not in I.OUTPUTS:
        raise ValueError(f"unknown output={output!r}; accepted values: {', '.join(I.OUTPUTS)}")
    x, target = I._prepare(model, x, target, batch_size)
    if x.shape[0] > batch_size:
        # More images than one batch holds: a batch of images at a time (a per-image baseline follows).
        base = path_kwargs.get("baseline")
        per_image = base is not None and torch.as_tensor(base).shape == x.shape
        parts = []
        for i in range(0, x.shape[0], batch_size):
            kw = dict(path_kwargs)
            if per_image:
                kw["baseline"] = torch.as_tensor(base)[i : i + batch_size]
            parts.append(path_and_idgi(model, x[i : i + batch_size], path, n, alphas, target[i : i + batch_size],
                                       output, batch_size, **kw))
        return tuple(  # type: ignore[return-value]
            I.Attribution(*(torch.cat([getattr(p[j], f) for p in parts]) for f in I.Attribution._fields[:4]),
                          parts[0][j].n_gradients)
            for j in range(2)
        )
    nodes = I.check_alphas(alphas) if alphas is not None else I.rule_nodes("left", n)[0]
    weights = I.schedule_weights(nodes)
    with torch.no_grad():
        f_input = I.target_output(model, x, target, output)
    if path == "guidedig":
        extra = set(path_kwargs) - set(GUIDED_KWARGS)
        if extra:
            raise ValueError(f"path='guidedig' does not take {sorted(extra)}; accepted: {sorted(GUIDED_KWARGS)}")
        values: list[torch.Tensor] = []

        def grad_fn(pts: torch.Tensor) -> torch.Tensor:
            f, g = I.values_and_gradients(model, pts, target, output)
            values.append(f)
            return g

        grads, deltas = P.guided_ig(grad_fn, x, nodes, **path_kwargs)
        plain = (grads * deltas).sum(0)
        attr, lost = idgi_combine(grads, torch.cat([torch.stack(values), f_input.unsqueeze(0)]))
        f_baseline = values[0]
    else:
        fn = P.path_function(path, **path_kwargs)
        w = weights.to(device=x.device, dtype=x.dtype)
        a_dev = nodes.to(device=x.device, dtype=x.dtype)
        b = x.shape[0]
        per = max(1, batch_size // b)
        plain = torch.zeros_like(x)
        attr = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
        lost = torch.zeros(b, dtype=torch.float64, device=x.device)
        pending, f_baseline = None, None
        for s in range(0, len(nodes), per):
            pts, vel = fn(x, a_dev[s : s + per])
            a = pts.shape[0]
            f, g = I.values_and_gradients(model, pts.reshape(a * b, *x.shape[1:]), target.repeat(a), output)
            f, g = f.view(a, b), g.view(a, b, *x.shape[1:])
            plain += torch.tensordot(w[s : s + a], g * vel, dims=1)
            if f_baseline is None:
                f_baseline = f[0]
            # A chunk's last IDGI step needs f at the next chunk's first point: combine one chunk behind.
            if pending is not None:
                da, dl = idgi_combine(pending[1], torch.cat([pending[0], f[:1]]))
                attr, lost = attr + da, lost + dl
            pending = (f, g)
        da, dl = idgi_combine(pending[1], torch.cat([pending[0], f_input.unsqueeze(0)]))
        attr, lost = attr + da, lost + dl
    if bool((lost != 0).any()):
        warnings.warn(f"IDGI: zero-gradient steps with non-zero Δf lost {lost.tolist()} of f(x) − f(x')",
                      RuntimeWarning, stacklevel=2)
    k = len(nodes)
    return (I.Attribution(plain, f_input, f_baseline, target, k),
            I.Attribution(attr.to(x.dtype), f_input, f_baseline, target, k))


def all_method_maps(
    model: nn.Module, x: torch.Tensor, paths: list[str] = ("ig", "blurig", "guidedig"), n: int = 16,
    target=None, output: str = "prob", batch_size: int = 64, path_kwargs: dict | None = None,
) -> dict[str, I.Attribution]:
    """{'IG': …, 'IG+IDGI': …, 'BlurIG': …, …}: each path's left-rule map and its IDGI map at n steps."""
    path_kwargs = path_kwargs or {}
    if not len(paths):
        raise ValueError("paths must name at least one path ('ig', 'blurig', 'guidedig')")
    unknown = set(path_kwargs) - set(P.PATH_NAMES)
    if unknown:
        raise ValueError(f"path_kwargs has unknown path(s) {sorted(unknown)}; accepted keys: {', '.join(P.PATH_NAMES)}")
    maps = {}
    for p in tqdm(list(paths), desc="paths"):
        name = P.check_path_name(p)
        plain, idgi = path_and_idgi(model, x, name, n, None, target, output, batch_size, **path_kwargs.get(name, {}))
        maps[PATH_LABELS[name]], maps[PATH_LABELS[name] + "+IDGI"] = plain, idgi
    return maps


def completeness_by_method(maps: dict[str, I.Attribution]) -> dict[str, torch.Tensor]:
    """Per-image relative completeness error (B,) of each map in ``maps``."""
    return {k: M.completeness_error(r.attr, r.f_input, r.f_baseline) for k, r in maps.items()}


def jpeg_stability_table(
    model: nn.Module, x: torch.Tensor, paths: list[str] = ("ig", "blurig", "guidedig"), n: int = 16,
    quality: int = 75, target=None, output: str = "prob", batch_size: int = 64, reduce: str = "sum",
    path_kwargs: dict | None = None,
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, I.Attribution]]:
    """The study's Table 5: per method, MSE and −ln MSE (B,) between the maps of x and of its JPEG copy.

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
        table[label] = {"mse": mse, "neg_log_mse": nlog}
    return table, maps


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
