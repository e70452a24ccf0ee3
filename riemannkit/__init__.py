"""riemannkit: accurate path-integral attributions (IG, BlurIG, Guided IG, SAMP, Manifold IG) for fewer gradient calls."""
from . import manifold as _manifold  # noqa: F401  (registers the "manifold" path first)
from .idgi import idgi_attribute
from .integrate import RULES, Attribution, Engine, attribute, rule_nodes, schedule_nodes, schedule_weights
from .metrics import completeness_error, completeness_error_pooled
from .paths import PATH_NAMES
from .schedule import (
    cubic_density_schedule, density_schedule, estimate_gderivatives, estimate_gprime, faithful_bound, fit_schedule,
    linear_schedule, load_schedule, paper_bound, save_schedule, RECIPES, fit_released_schedule, released_gprime_profile,
    released_attribute_args,
)

__version__ = "0.1.0"
__all__ = [
    "RULES", "PATH_NAMES", "idgi_attribute", "Attribution", "Engine", "attribute", "rule_nodes", "schedule_nodes", "schedule_weights",
    "completeness_error", "completeness_error_pooled", "estimate_gprime", "fit_schedule",
    "linear_schedule", "paper_bound", "faithful_bound", "density_schedule",
    "cubic_density_schedule", "estimate_gderivatives", "save_schedule", "load_schedule",
    "RECIPES", "fit_released_schedule", "released_gprime_profile", "released_attribute_args",
    "__version__",
]
