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


# The repository's results folder, found from this file so that a chapter run from any working directory
# (papermill from the repository root, JupyterLab, the book build) reads and writes the same files.
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "results"


def results_path(name: str | Path) -> Path:
    """Absolute path of ``name`` inside the repository's ``results/`` folder (refuses paths outside it)."""
    if not isinstance(name, (str, Path)) or str(name).strip() == "":
        raise ValueError(f"results file name={name!r} must be a non-empty file name inside results/, e.g. 'idgi_quick.json'")
    rel = Path(name)
    # Older papermill commands passed '../results/x.json' (relative to notebooks/): accept that spelling.
    parts = rel.parts
    for prefix in (("..", "results"), ("results",)):
        if parts[: len(prefix)] == prefix:
            rel = Path(*parts[len(prefix):]) if len(parts) > len(prefix) else Path()
            break
    p = (RESULTS_DIR / rel).resolve() if not rel.is_absolute() else rel.resolve()
    if p == RESULTS_DIR or RESULTS_DIR not in p.parents:
        raise ValueError(
            f"results file name={str(name)!r} resolves to {str(p)!r}, outside the repository's results folder "
            f"{str(RESULTS_DIR)!r}; pass a file name inside it, e.g. 'idgi_quick.json'"
        )
    return p


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


def save_json(file: str | Path, record: dict, overwrite: bool = False) -> Path:
    """Write ``record`` as indented JSON (numpy values converted), creating folders; never replaces a file unless ``overwrite``."""
    def convert(o):
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        if isinstance(o, (np.ndarray, torch.Tensor)):
            return o.tolist()
        raise TypeError(f"cannot store {type(o).__name__} in JSON")

    p = Path(file)
    refuse_overwrite(p, overwrite)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(record, indent=1, default=convert))
    return p


def refuse_overwrite(file: Path, overwrite: bool) -> None:
    """Raise FileExistsError when ``file`` exists and ``overwrite`` is not True (stored runs are evidence)."""
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite={overwrite!r} must be True or False")
    if file.exists() and not overwrite:
        raise FileExistsError(
            f"{str(file)!r} exists and would be replaced; pass overwrite=True (papermill: -p overwrite True) "
            f"to replace it, or choose a new file name"
        )


# The benchmark chapters' profiles.  'quick' (the default) is each chapter's own parameters cell, sized for a
# 2-core CPU; 'full' is the full reproduction, meant for a GPU: all nine offline photos, 16–128 steps
# (8–128 for the sweeps), k = 128, m = 3 calibration photos (disjoint from the 6 evaluated ones) and
# 256 points per pass (a GPU size, not yet measured on one: if it runs out of memory, the error names a smaller
# batch_size).  benchmarks/full_profile.py runs each chapter once per model.
PROFILES = ("quick", "full")
FULL_PROFILE = {
    "riemannopt": {"n_eval": 6, "n_calib": 3, "k": 128, "steps": [16, 32, 64, 128], "batch_size": 256},
    "idgi": {"n_images": 6, "n_calib": 3, "k": 128, "steps": 128, "batch_size": 256},
    "idgi_models": {"n_images": 9, "steps": 128, "batch_size": 256},  # its default models: all three
    "sweeps": {"n_images": 6, "n_calib": 3, "k": 128, "steps": [8, 16, 32, 64, 128], "batch_size": 256,
               "metrics": ["insertion_prob", "insertion_ratio", "deletion", "completeness", "sic_msssim", "aic_msssim"]},
    "stability": {"n_images": 9, "steps": 128, "batch_size": 256},
}


def apply_profile(chapter: str, profile: str, namespace: dict) -> dict:
    """Set ``profile``'s parameters of ``chapter`` in ``namespace`` (a notebook's globals()); returns them.

    'quick' changes nothing; 'full' replaces the parameters listed in FULL_PROFILE[chapter], so a value
    given for one of them with papermill is overridden (use profile='quick' to set them one by one)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile={profile!r}; accepted values: {', '.join(PROFILES)}")
    if chapter not in FULL_PROFILE:
        raise ValueError(f"chapter={chapter!r} has no profiles; accepted values: {', '.join(FULL_PROFILE)}")
    settings = dict(FULL_PROFILE[chapter]) if profile == "full" else {}
    namespace.update(settings)
    return settings


def stored_full_runs(chapter: str, folder: str | Path = RESULTS_DIR) -> list[dict]:
    """The committed full-profile records of ``chapter`` (``<chapter>_full_*.json`` in ``folder``), by name."""
    return [json.loads(f.read_text()) | {"file": f.name} for f in sorted(Path(folder).glob(f"{chapter}_full_*.json"))]


_SHOWN: list[str] = []


def show(markdown) -> None:
    """Display Markdown (text or an IPython Markdown object) and keep it for the chapter's results JSON (:func:`shown_tables`)."""
    from IPython.display import Markdown, display

    text = getattr(markdown, "data", markdown)
    _SHOWN.append(text)
    display(Markdown(text))


def shown_tables() -> list[str]:
    """The Markdown tables :func:`show` displayed since the kernel started (clear() it to start over)."""
    return _SHOWN


def render_full_runs(chapter: str, folder: str | Path = RESULTS_DIR) -> int:
    """Display the committed full-profile runs of ``chapter``: provenance, then the tables they showed; returns their number."""
    from IPython.display import Markdown, display

    runs = stored_full_runs(chapter, folder)
    for rec in runs:
        pv = rec.get("provenance", {})
        display(Markdown(
            f"**Full-profile run `{rec['file']}`**: {pv.get('device')}, torch {pv.get('torch')}, CUDA {pv.get('cuda')}, "
            f"commit {pv.get('git_commit')}, {pv.get('date')}, wall time {rec.get('wall_s', '?')} s; "
            f"command: `{pv.get('command')}`."
        ))
        for table in rec.get("tables_markdown", []):
            display(Markdown(table))
    if not runs:
        display(Markdown(
            f"*No full-profile run of this chapter is committed yet (`results/{chapter}_full_*.json`): the full "
            "profile is GPU work and no GPU was available to the machines that built this book. "
            "`python benchmarks/full_profile.py` makes and stores it.*"
        ))
    return len(runs)


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
PATH_LABELS = {"ig": "IG", "blurig": "BlurIG", "guidedig": "GIG", "samp": "SAMP", "manifold": "MIG"}


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
    _, target = I.prepare(model, xq, target, batch_size)
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
        _, target = I.prepare(model, x, None, batch_size)
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


def response_along_path(
    model: nn.Module, x: torch.Tensor, path: str, alphas, target=None, output: str = "prob", batch_size: int = 64, **path_kwargs
) -> torch.Tensor:
    """f(γ(α)) of shape (A, B) at each α of a closed-form path ('ig', 'blurig'), for each image's target."""
    x, target = I.prepare(model, x, target, batch_size)
    a = torch.as_tensor(alphas, dtype=torch.float64)
    fn = P.path_function(path, **path_kwargs)
    per = max(1, batch_size // x.shape[0])
    out = []
    with torch.no_grad():
        for chunk in a.split(per):
            pts = fn(x, chunk)[0]
            f = I.target_output(model, pts.reshape(-1, *x.shape[1:]), target.repeat(len(chunk)), output)
            out.append(f.view(len(chunk), x.shape[0]))
    return torch.cat(out)


def half_rise(alphas, values: torch.Tensor) -> torch.Tensor:
    """Per image, the first α where f(γ(α)) − f(γ(0)) reaches half of f(γ(1)) − f(γ(0)) (linear in between)."""
    a = torch.as_tensor(alphas, dtype=torch.float64)
    v = values.double()
    if v.ndim != 2 or v.shape[0] != len(a):
        raise ValueError(f"values must be (len(alphas), B) = ({len(a)}, B), got {tuple(v.shape)}")
    rel = (v - v[0]) / (v[-1] - v[0])
    above = rel >= 0.5
    j = above.double().argmax(0).clamp(min=1)  # first index reaching half (≥ 1 since rel[0] = 0)
    cols = torch.arange(v.shape[1])
    r0, r1 = rel[j - 1, cols], rel[j, cols]
    t = ((0.5 - r0) / (r1 - r0)).clamp(0, 1)
    return a[j - 1] + t * (a[j] - a[j - 1])


def gprime_summary(grid: np.ndarray, gprime: np.ndarray) -> dict:
    """Where the mean |g'| curve sits: the α of its peak and the α holding half of its mass."""
    grid, gprime = np.asarray(grid, dtype=float), np.asarray(gprime, dtype=float)
    if grid.ndim != 1 or grid.shape != gprime.shape or len(grid) < 2:
        raise ValueError(f"grid and gprime must be 1-D of the same length >= 2, got {grid.shape} and {gprime.shape}")
    # Algorithm 1's value at grid[j] stands for [grid[j], grid[j+1]) (the last for [grid[-1], 1]).
    edges = np.append(grid, 1.0)
    cum = np.concatenate([[0.0], np.cumsum(gprime * np.diff(edges))])
    return {"peak": float(grid[int(np.argmax(gprime))]), "median": float(np.interp(0.5 * cum[-1], cum, edges))}


# --------------------------------------------------------------------------------- generalisation
# Algorithm 1's curve for a set of images is the mean of the per-image curves, so per-image curves of
# a pool give the curve of any subset (any calibration-set size m) without new gradients.
def per_image_gprime(
    model: nn.Module, x: torch.Tensor, path: str = "ig", k: int = 64, target=None, output: str = "prob",
    batch_size: int = 64, **path_kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 1 on each image alone: ``(grid (k,), curves (B, k))``; their mean is Algorithm 1 on all B."""
    grid, curves, _ = S.per_image_derivatives(model, x, path, k, target, output, batch_size, **path_kwargs)
    return grid, curves


def schedule_distance(a, b) -> float:
    """Mean |a_i − b_i| of two sorted n-point schedules (the 1-Wasserstein distance of their point sets)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"schedules must be 1-D of the same length, got {a.shape} and {b.shape}")
    return float(np.mean(np.abs(np.sort(a) - np.sort(b))))


def subset_schedules(
    grid: np.ndarray, curves: np.ndarray, sizes: list[int], draws: int, n: int, bound: str = "paper", seed: int = 0
) -> dict[int, list[np.ndarray]]:
    """{m: [schedule fitted on the mean curve of m images drawn at random without replacement] × draws}."""
    rng = np.random.default_rng(seed)
    out = {}
    for m in sizes:
        if not 1 <= m <= len(curves):
            raise ValueError(f"calibration size m={m} must be between 1 and the pool's {len(curves)} images")
        picks = [rng.choice(len(curves), size=m, replace=False) for _ in range(draws if m < len(curves) else 1)]
        out[m] = [S.fit_schedule(grid, curves[p].mean(0), n, bound=bound) for p in picks]
    return out


def completeness_of_schedules(
    model: nn.Module, x: torch.Tensor, path: str, schedules: list, batch_size: int = 64, **path_kwargs
) -> np.ndarray:
    """(len(schedules), B) relative completeness errors of each schedule applied to every image of ``x``."""
    out = []
    for a in schedules:
        r = I.attribute(model, x, path, alphas=a, batch_size=batch_size, **path_kwargs)
        out.append(M.completeness_error(r.attr, r.f_input, r.f_baseline).cpu().numpy())
    return np.stack(out)


# --------------------------------------------------------------------------------- which schedule?
# Every rule and schedule at the same budget n = gradient evaluations per image.  A placement is
# 'uniform' (the rule's own nodes), a Powell fit of a left-rule bound ('paper' = RiemannOpt, 'faithful',
# 'sup'), or a continuum-optimal density: √|g'| for the left rule, |g''|^{1/3} for midpoint/trapezoid.
WHICH_METHODS: dict[str, tuple[str, str]] = {
    "left": ("left", "uniform"),
    "right": ("right", "uniform"),
    "midpoint": ("midpoint", "uniform"),
    "trapezoid": ("trapezoid", "uniform"),
    "Gauss–Legendre": ("gausslegendre", "uniform"),
    "left + RiemannOpt": ("left", "paper"),
    "left + faithful Powell": ("left", "faithful"),
    "left + sup Powell": ("left", "sup"),
    "left + √g′ density": ("left", "sqrt-density"),
    "midpoint + ∛g″ density": ("midpoint", "cubic-density"),
    "trapezoid + ∛g″ density": ("trapezoid", "cubic-density"),
}
# Adaptive paths (Guided IG, SAMP) take only the left rule, with or without a schedule.
WHICH_ADAPTIVE_METHODS = ("left", "left + RiemannOpt", "left + faithful Powell", "left + √g′ density")
PLACEMENTS = ("uniform", "paper", "faithful", "sup", "sqrt-density", "cubic-density")


def which_nodes(rule: str, placement: str, n: int, curves: dict, maxiter: int | None = None) -> dict:
    """``attribute`` keywords for ``rule`` with ``placement`` at exactly ``n`` gradient evaluations per image.

    ``curves`` holds Algorithm 1's ``grid``, ``gprime`` (|g'|) and ``gsecond`` (|g''|) for the path
    (:func:`riemannkit.schedule.estimate_gderivatives`).  The trapezoid rule spends n evaluations on
    n − 1 intervals (its nodes include α = 1).  ``maxiter``: Powell iterations for the fitted placements
    (None: :func:`riemannkit.schedule.fit_schedule`'s default, until converged)."""
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement={placement!r}; accepted values: {', '.join(PLACEMENTS)}")
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    n = int(n)
    if placement == "uniform":
        return {"rule": rule, "n": n}
    grid, g1 = curves["grid"], curves["gprime"]
    if placement in ("paper", "faithful", "sup"):
        if rule != "left":
            raise ValueError(f"placement={placement!r} fits a left-rule bound; got rule={rule!r}")
        init = "density" if placement == "faithful" else "linear"
        return {"rule": "left", "alphas": S.fit_schedule(grid, g1, n, bound=placement, init=init, maxiter=maxiter)}
    if placement == "sqrt-density":
        if rule != "left":
            raise ValueError(f"placement='sqrt-density' is the left rule's optimum; got rule={rule!r}")
        return {"rule": "left", "alphas": S.density_schedule(n, grid, g1, power=0.5)}
    if rule not in ("midpoint", "trapezoid"):
        raise ValueError(f"placement='cubic-density' is for rule='midpoint' or 'trapezoid'; got rule={rule!r}")
    intervals = n if rule == "midpoint" else n - 1
    return {"rule": rule, "alphas": S.cubic_density_schedule(intervals, grid, curves["gsecond"])}


def which_schedule_study(
    model: nn.Module, x_calib: torch.Tensor, x_eval: torch.Tensor, paths: dict[str, dict], budgets: list[int],
    k: int = 64, methods: dict[str, list[str]] | None = None, batch_size: int = 64, fit_maxiter: int | None = None,
) -> dict:
    """Relative completeness error of every rule/schedule in :data:`WHICH_METHODS` for each path and budget.

    ``paths``: {path: path kwargs}.  Algorithm 1 (|g'| and |g''| from one set of gradients,
    :func:`riemannkit.schedule.estimate_gderivatives`) runs on ``x_calib``; the errors are measured on
    ``x_eval``.  ``methods``: {path: [labels]} (default: all for closed-form paths,
    :data:`WHICH_ADAPTIVE_METHODS` for adaptive ones).  Returns {"curves": {path: {grid, gprime, gsecond}},
    "errors": {path: {label: {n: per-image errors (B,)}}}, "alphas": {path: {label: {n: schedule}}},
    "seconds": {"calibration", "fit", "evaluation"}}; each entry's evaluations per image are checked to be n.
    """
    import time

    methods = dict(methods or {})
    out = {"curves": {}, "errors": {}, "alphas": {}, "seconds": {"calibration": 0.0, "fit": 0.0, "evaluation": 0.0}}
    bar = tqdm(total=sum(len(methods.get(p) or (WHICH_ADAPTIVE_METHODS if p in P.ADAPTIVE_PATHS else WHICH_METHODS))
                         for p in paths) * len(budgets), desc="which schedule")
    for path, kw in paths.items():
        labels = list(methods.get(path) or (WHICH_ADAPTIVE_METHODS if path in P.ADAPTIVE_PATHS else WHICH_METHODS))
        bad = [m for m in labels if m not in WHICH_METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; accepted values: {', '.join(WHICH_METHODS)}")
        t0 = time.perf_counter()
        grid, g1, g2 = S.estimate_gderivatives(model, x_calib, path, k=k, batch_size=batch_size, **kw)
        out["seconds"]["calibration"] += time.perf_counter() - t0
        curves = {"grid": grid, "gprime": g1, "gsecond": g2}
        out["curves"][path] = curves
        out["errors"][path], out["alphas"][path] = {}, {}
        for label in labels:
            rule, placement = WHICH_METHODS[label]
            out["errors"][path][label], out["alphas"][path][label] = {}, {}
            for n in budgets:
                t0 = time.perf_counter()
                nodes = which_nodes(rule, placement, n, curves, fit_maxiter)
                t1 = time.perf_counter()
                r = I.attribute(model, x_eval, path, batch_size=batch_size, **nodes, **kw)
                out["seconds"]["fit"] += t1 - t0
                out["seconds"]["evaluation"] += time.perf_counter() - t1
                if r.n_gradients != n:
                    raise RuntimeError(f"{path} {label}: {r.n_gradients} gradient evaluations for budget n={n}")
                out["errors"][path][label][n] = M.completeness_error(r.attr, r.f_input, r.f_baseline).cpu().numpy()
                if "alphas" in nodes:
                    out["alphas"][path][label][n] = np.asarray(nodes["alphas"])
                bar.update()
    bar.close()
    return out


def which_summary(errors: dict, stat: str = "mean") -> dict:
    """{path: {label: {n: mean (or median) over images}}} of :func:`which_schedule_study`'s errors."""
    if stat not in ("mean", "median"):
        raise ValueError(f"unknown stat={stat!r}; accepted values: mean, median")
    f = np.mean if stat == "mean" else np.median
    return {p: {m: {n: float(f(v)) for n, v in row.items()} for m, row in d.items()} for p, d in errors.items()}


def which_recommendation(summary: dict, budgets: list[int], reference: str = "left") -> list[dict]:
    """Per path and budget: the best method, its error, the reference's (left rule) error and their ratio."""
    rows = []
    for path, d in summary.items():
        for n in budgets:
            best = min(d, key=lambda m: d[m][n])
            ref = d[reference][n]
            rows.append({"path": path, "n": n, "best": best, "error": d[best][n], "reference": ref,
                         "factor": ref / d[best][n] if d[best][n] > 0 else float("inf")})
    return rows


# ------------------------------------------------------------------------ adaptive paths, fixed
# Guided IG's path depends on the gradients taken along it, so RiemannOpt's points change the path
# they are meant to sample.  The remedy measured here: build the path once on a fine grid of K steps,
# freeze it as a polyline, then integrate along the frozen path with any rule or schedule.
def guided_polyline(
    model: nn.Module, x: torch.Tensor, K: int = 128, target=None, output: str = "prob", batch_size: int = 64, **gig_kwargs
) -> torch.Tensor:
    """Guided IG's path on K linear steps as knots (K+1, B, C, H, W) from the baseline to ``x`` (K gradients)."""
    if int(K) != K or K < 1:
        raise ValueError(f"K must be a positive integer, got {K!r}")
    x, target = I.prepare(model, x, target, batch_size)
    grads, deltas = P.guided_ig(
        lambda pts: I.batched_gradients(model, pts, target, output, batch_size),
        x, I.rule_nodes("left", int(K))[0], **gig_kwargs,
    )
    start = P.check_baseline(x, gig_kwargs.get("baseline")).unsqueeze(0)
    return torch.cat([start, start + torch.cumsum(deltas, 0)])


def polyline_attribute(
    model: nn.Module, x: torch.Tensor, knots: torch.Tensor, rule: str = "left", n: int = 16, alphas=None,
    target=None, output: str = "prob", batch_size: int = 64,
) -> I.Attribution:
    """∫ ∇f(γ) ⊙ γ' along the polyline through ``knots`` (K+1, B, …) at α = j/K, by a rule (on a schedule's partition
    when ``alphas`` is given, as :func:`riemannkit.attribute`)."""
    x, target = I.prepare(model, x, target, batch_size)
    knots = knots.to(x)
    if knots.ndim != x.ndim + 1 or knots.shape[1:] != x.shape or knots.shape[0] < 2:
        raise ValueError(f"knots must be (K+1, *x.shape) with K >= 1, got {tuple(knots.shape)} for x {tuple(x.shape)}")
    # A polyline through image-space knots is the manifold path with the identity as decoder and no
    # endpoint residual: its points and velocity, chunking and rules are riemannkit.attribute's.
    flat = knots.movedim(0, 1).reshape(x.shape[0], knots.shape[0], -1)
    return I.attribute(
        model, x, "manifold", rule, n, alphas, target, output, batch_size,
        decoder=lambda z: z.view(-1, *x.shape[1:]), knots=flat, residual=False,
    )
