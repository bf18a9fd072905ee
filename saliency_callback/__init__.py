"""See what a Keras image model looks at while it trains.

The public surface: the saliency engine (`compute_saliency`, `Explainer` and the methods).
"""

from saliency_callback.engine import Explainer, Explanation, compute_saliency
from saliency_callback.methods import (
    GradCAM,
    IntegratedGradients,
    Method,
    SmoothGrad,
    Vanilla,
)

__version__ = "0.1.0"

__all__ = [
    "Explainer",
    "Explanation",
    "GradCAM",
    "IntegratedGradients",
    "Method",
    "SmoothGrad",
    "Vanilla",
    "__version__",
    "compute_saliency",
]
