"""The book's Markdown tables: one formatter for values[row][column] with the better value bold, the narrowing of a
stored table for the page, and per-image layouts.

Study layer: computes no attribution.
"""
from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

import torch

from riemannkit import evaluation as EV
from riemannkit import scoring as S


# ------------------------------------------------------------------------- the IDGI study's metrics and sweeps
# How the book's tables and figures name the metrics: each metric's label in the one registry, riemannkit.scoring.
METRIC_LABELS = S.METRIC_LABELS


def sweep_values(sweep: Mapping[int, Mapping[str, Mapping[str, dict]]], metric: str) -> dict[str, dict[int, float]]:
    """{method: {n: value}} of one metric from a :func:`riemannkit.evaluation.step_sweep` result (methods lacking it skipped)."""
    out: dict[str, dict[int, float]] = {}
    for n, table in sweep.items():
        for name, row in table.items():
            if metric in row:
                out.setdefault(name, {})[n] = row[metric]["value"]
    if not out:
        raise ValueError(f"metric {metric!r} is not in the sweep; it holds {sorted({m for t in sweep.values() for r in t.values() for m in r})}")
    return out


def step_difference(values: Mapping[str, Mapping[int, float]], lo: int, hi: int) -> dict[str, float]:
    """{method: value(hi) − value(lo)}: the study's Table 4 (difference between 8 and 128 steps)."""
    out = {}
    for name, row in values.items():
        if lo not in row or hi not in row:
            raise ValueError(f"method {name!r} has no value at n={lo} and n={hi} (has {sorted(row)})")
        out[name] = row[hi] - row[lo]
    return out


# ------------------------------------------------------------------------------------------ tables
ALIGN = {"l": "---", "r": "---:", "c": ":---:"}


def cell(text) -> str:
    """Text safe in one Markdown table cell: a '|' is escaped (once: an escaped one stays as it is) and a line break
    becomes a space."""
    return re.sub(r"(?<!\\)\|", r"\\|", str(text)).replace("\n", " ")


def table(header: Sequence, rows: Sequence[Sequence], align: str | None = None) -> str:
    """The one Markdown pipe table: ``header`` cells, ``rows`` of cells (each its ``str``, '|' escaped), ``align`` one
    letter per column ('l' left, 'r' right, 'c' centre; default: the first column left, the others right)."""
    header = [cell(h) for h in header]
    if not header:
        raise ValueError("header must name at least one column")
    align = align if align is not None else "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or any(a not in ALIGN for a in align):
        raise ValueError(f"align={align!r} must hold one of {', '.join(ALIGN)} per column ({len(header)} columns)")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(ALIGN[a] for a in align) + "|"]
    for i, row in enumerate(rows):
        row = [cell(c) for c in row]
        if len(row) != len(header):
            raise ValueError(f"rows[{i}] has {len(row)} cells for {len(header)} columns: {row}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# The one table formatter (values[row][column]), the narrowing of a stored table for the page, and two per-image
# layouts of {method: values (B,)}.
def fold_constant_columns(md: str) -> str:
    """A Markdown table narrowed to fit the page: a one-row table becomes a column of names and values; otherwise the
    columns with one value in every row go into a line above it.  Model keys become their short labels.  Text that is
    not a single pipe table is returned as it is."""
    from riemannkit.models import MODEL_LABELS

    lines = [ln for ln in md.strip().splitlines() if ln.strip()]
    if len(lines) < 3 or not all(ln.lstrip().startswith("|") for ln in lines) or "---" not in lines[1]:
        return md
    # Cells are split on unescaped pipes only: table() writes a '|' inside a cell as a backslash and a pipe.
    split = lambda ln: [c.strip() for c in re.split(r"(?<!\\)\|", ln.strip()[1:-1] if ln.strip().endswith("|") else ln.strip()[1:])]  # noqa: E731
    head, rows = split(lines[0]), [[MODEL_LABELS.get(c, c) for c in split(ln)] for ln in lines[2:]]
    if any(len(r) != len(head) for r in rows):
        return md
    if len(rows) == 1:
        return table(["", ""], list(zip(head, rows[0])), "lr")
    letter = {v: k for k, v in ALIGN.items()}
    align = [letter.get(a.replace(" ", ""), "c" if a.startswith(":") and a.endswith(":") else "r" if a.endswith(":") else "l")
             for a in split(lines[1])]
    const = [j for j in range(len(head)) if len({r[j] for r in rows}) == 1]
    keep = [j for j in range(len(head)) if j not in const] or list(range(len(head)))
    out = ["*In every row: " + "; ".join(f"{head[j]} {rows[0][j]}" for j in const) + ".*", ""] if const and keep != list(range(len(head))) else []
    out.append(table([head[j] for j in keep], [[r[j] for j in keep] for r in rows], "".join(align[j] for j in keep)))
    return "\n".join(out)


def markdown_table(
    values: Mapping[str, Mapping],
    rows: Sequence[str],
    columns: Sequence,
    labels: Mapping[str, str] | None = None,
    higher_is_better: bool = True,
    bold: str = "pair",
    fmt: str = "{:.3f}",
    column_names: Mapping | None = None,
) -> str:
    """Markdown table of values[row][column] (NaN or missing: 'n/a'); bold the better of each method
    and its '+idgi' twin (``bold='pair'``), the best of each column ('column') or nothing ('none')."""
    if bold not in ("pair", "column", "none"):
        raise ValueError(f"unknown bold={bold!r}; accepted values: pair, column, none")
    labels = labels or EV.LABELS
    column_names = column_names or {}

    def get(r, c) -> float:
        v = values.get(r, {}).get(c, math.nan)
        return float(v) if v is not None else math.nan

    def better(a: float, b: float) -> bool:
        return a > b if higher_is_better else a < b

    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = get(r, c)
            if math.isnan(v):
                cells.append("n/a")
                continue
            s = fmt.format(v)
            if bold == "column":
                others = [get(o, c) for o in rows if not math.isnan(get(o, c))]
                win = all(not better(o, v) for o in others)
            elif bold == "pair":
                twin = r[: -len("+idgi")] if r.endswith("+idgi") else r + "+idgi"
                w = get(twin, c) if twin in rows else math.nan
                win = not math.isnan(w) and better(v, w)
            else:
                win = False
            cells.append(f"**{s}**" if win else s)
        body.append([labels.get(r, r), *cells])
    return table(["method", *(column_names.get(c, c) for c in columns)], body)


def mean_spread_table(rows: dict[str, torch.Tensor], header: str, fmt: str = "{:.2f}", best: str = "max") -> str:
    """Markdown table 'method | header': mean ± sample std over images per row, the best mean bold."""
    if best not in ("max", "min"):
        raise ValueError(f"unknown best={best!r}; accepted values: max, min")
    stats = {}
    for k, v in rows.items():
        v = torch.as_tensor(v, dtype=torch.float64).flatten()
        stats[k] = (float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0)
    pick = (max if best == "max" else min)(m for m, _ in stats.values())
    cells = {k: f"{fmt.format(m)} ± {fmt.format(s)}" for k, (m, s) in stats.items()}
    return table(["method", header], [[k, f"**{c}**" if stats[k][0] == pick else c] for k, c in cells.items()])


def per_image_markdown(rows: dict[str, torch.Tensor], names: list[str], fmt: str = "{:.1e}") -> str:
    """Markdown table: one row per method, one column per image, then the mean over the images."""
    for k, v in rows.items():
        if torch.as_tensor(v).numel() != len(names):
            raise ValueError(f"rows[{k!r}] has {torch.as_tensor(v).numel()} values for {len(names)} names")
    rows_out = []
    for k, v in rows.items():
        v = torch.as_tensor(v, dtype=torch.float64).flatten()
        rows_out.append([k, *(fmt.format(float(e)) for e in v), fmt.format(float(v.mean()))])
    return table(["method", *names, "mean"], rows_out)
