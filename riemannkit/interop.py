"""Use a riemannkit left-rule schedule with Captum's IntegratedGradients.

Captum's public ``IntegratedGradients.attribute`` takes only named rules (``method='riemann_left'``,
``'riemann_right'``, ``'riemann_middle'``, ``'riemann_trapezoid'``, ``'gausslegendre'``) with
``n_steps`` equally spaced or Gauss–Legendre nodes; it has no argument for a custom set of alphas.
The private ``IntegratedGradients._attribute(inputs, baselines, target, additional_forward_args,
n_steps, method, step_sizes_and_alphas=(step_sizes, alphas))`` does take one, and its public
``attribute`` calls it.  :func:`captum_attribute` calls that private method: it is pinned to the
signature of Captum 0.9.0 (``captum/attr/_core/integrated_gradients.py``), checked against
``riemannkit.attribute`` in ``tests/test_interop.py``, and refuses other Captum versions unless
``check_version=False``.
"""
from __future__ import annotations

import inspect

from . import integrate as I

CAPTUM_VERSION = "0.9.0"  # the version whose private IntegratedGradients._attribute this module calls


def captum_step_sizes_and_alphas(alphas) -> tuple[list[float], list[float]]:
    """``(step_sizes, alphas)`` of a left-rule schedule in the form of Captum's ``step_sizes_and_alphas``.

    ``alphas`` is a riemannkit schedule (α_0 = 0 < α_1 < … < α_{n−1} < 1, validated by
    :func:`riemannkit.integrate.check_alphas`); the step sizes are the left-rule weights
    α_{i+1} − α_i with α_n = 1, so they sum to 1.  Both are plain Python float lists, as Captum's own
    ``approximation_parameters`` builders return them.
    """
    a, w = I.schedule_nodes("left", alphas)
    return w.tolist(), a.tolist()


def captum_attribute(ig, inputs, baselines, target, alphas, additional_forward_args=None, check_version: bool = True):
    """Captum ``IntegratedGradients`` attributions with a custom left-rule schedule ``alphas``.

    ``ig`` is a ``captum.attr.IntegratedGradients`` (its ``forward_func`` decides the output: logits,
    or wrap the model in a softmax for probabilities, as riemannkit's ``output='prob'``).  ``inputs`` and
    ``baselines`` are tensors (or tuples of tensors, as Captum accepts); ``baselines=None`` is the zero
    baseline.  Returns what ``ig.attribute`` returns (a tensor for a tensor input, a tuple for a tuple).

    Captum has no public argument for custom alphas, so this calls the private
    ``ig._attribute(..., n_steps=len(alphas), step_sizes_and_alphas=...)`` that ``ig.attribute`` uses
    internally (Captum 0.9.0).  Captum's ``internal_batch_size`` and ``return_convergence_delta`` are
    not available on this route; the delta is ``attr.sum() − (f(x) − f(baseline))`` if needed.
    Captum multiplies the step sizes in float32 (``torch.tensor(step_sizes).float()``), so results
    agree with ``riemannkit.attribute(..., alphas=...)`` to float32 round-off, not bit for bit.
    """
    import captum
    from captum._utils.common import _format_output, _is_tuple
    from captum.attr import IntegratedGradients
    from captum.attr._utils.common import _format_input_baseline

    if check_version and captum.__version__ != CAPTUM_VERSION:
        raise RuntimeError(
            f"captum_attribute calls the private IntegratedGradients._attribute of captum {CAPTUM_VERSION}; "
            f"captum {captum.__version__} is installed (pass check_version=False to try it anyway)"
        )
    if not isinstance(ig, IntegratedGradients):
        raise TypeError(f"ig must be a captum.attr.IntegratedGradients, got {type(ig).__name__}")
    params = inspect.signature(ig._attribute).parameters
    if "step_sizes_and_alphas" not in params:
        raise RuntimeError("this captum's IntegratedGradients._attribute has no step_sizes_and_alphas argument")
    step_sizes, a = captum_step_sizes_and_alphas(alphas)
    is_tuple = _is_tuple(inputs)
    formatted_inputs, formatted_baselines = _format_input_baseline(inputs, baselines)
    attributions = ig._attribute(
        inputs=formatted_inputs,
        baselines=formatted_baselines,
        target=target,
        additional_forward_args=additional_forward_args,
        n_steps=len(a),
        method="riemann_left",  # unused when step_sizes_and_alphas is given
        step_sizes_and_alphas=(step_sizes, a),
    )
    return _format_output(is_tuple, attributions)
