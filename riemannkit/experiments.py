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
from . import schedule as S


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
