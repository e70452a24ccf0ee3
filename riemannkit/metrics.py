"""How well an attribution computes its integral."""
from __future__ import annotations

import torch


def completeness_error(attr: torch.Tensor, f_input: torch.Tensor, f_baseline: torch.Tensor) -> torch.Tensor:
    """Per-image relative error |Σ attr − (f(x) − f(x'))| / |f(x) − f(x')|."""
    delta = (f_input - f_baseline).double()
    if (delta == 0).any():
        raise ValueError("f(x) − f(x') is 0 for some image: the relative completeness error is undefined")
    total = attr.double().flatten(1).sum(1)
    return (total - delta).abs() / delta.abs()


def completeness_error_pooled(attr: torch.Tensor, f_input: torch.Tensor, f_baseline: torch.Tensor) -> float:
    """Ratio of sums Σ_b |Σ attr_b − Δf_b| / Σ_b |Δf_b| (RiemannOpt's pipeline, with a signed Δf)."""
    delta = (f_input - f_baseline).double()
    if (delta == 0).all():
        raise ValueError("f(x) − f(x') is 0 for every image: the pooled relative completeness error is undefined")
    total = attr.double().flatten(1).sum(1)
    return float((total - delta).abs().sum() / delta.abs().sum())
