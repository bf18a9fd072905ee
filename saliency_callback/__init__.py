"""See what a Keras image model looks at while it trains.

`SaliencyCallback` logs saliency overlays of a fixed probe set to TensorBoard every N epochs;
`compute_saliency` / `Explainer` are the engine behind it; `metrics` measures how much saliency
falls on the object; `datasets` generates a synthetic background-shortcut test bed.
"""

from saliency_callback.alarm import AlarmEvent, ShortcutAlarm
from saliency_callback.callback import SaliencyCallback
from saliency_callback.datasets import ShortcutData, make_shortcut_data, make_shortcut_splits
from saliency_callback.engine import Explainer, Explanation, compute_saliency
from saliency_callback.methods import (
    GradCAM,
    IntegratedGradients,
    Method,
    SmoothGrad,
    Vanilla,
)
from saliency_callback.metrics import chance_level, mass_in_mask, pointing_game, rank_in_mask

__version__ = "0.1.0"

__all__ = [
    "AlarmEvent",
    "Explainer",
    "Explanation",
    "GradCAM",
    "IntegratedGradients",
    "Method",
    "SaliencyCallback",
    "ShortcutAlarm",
    "ShortcutData",
    "SmoothGrad",
    "Vanilla",
    "__version__",
    "chance_level",
    "compute_saliency",
    "make_shortcut_data",
    "make_shortcut_splits",
    "mass_in_mask",
    "pointing_game",
    "rank_in_mask",
]
