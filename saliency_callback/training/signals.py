"""What the callback measures at a logged epoch from the maps, and what the alarm may watch.

`map_scalars` turns an `Explanation` into the scalars written to TensorBoard (confidence,
probe accuracy, hotspot, and with masks the mask metrics) and fills `Signals`, what the alarm
can watch. The background tests' signals are added by `training.background_wiring`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from saliency_callback.maps import metrics as _metrics
from saliency_callback.maps import postprocess
from saliency_callback.maps.engine import Explanation
from saliency_callback.maps.postprocess import Reduction
from saliency_callback.shortcuts import background as _background

Signals = dict[str, tuple[float, np.ndarray | None, float | None]]
"""What the alarm can watch: signal -> (mean, per-probe values or None, chance level or None)."""

Record = Callable[..., None]
"""`record(name, mean, to_logs=...)`: keeps a mean in the history (and in Keras's `logs`)."""


def map_scalars(
    result: Explanation,
    reduction: Reduction,
    label_ids: np.ndarray | None,
    masks: np.ndarray | None,
    chance: np.ndarray | None,
    record: Record,
    signals: Signals,
) -> dict[str, float]:
    """The scalars of one logged epoch's maps; fills `signals` and records the means."""
    conf = result.confidence
    scalars: dict[str, float] = {"saliency/confidence": float(conf.mean())}
    for i, c in enumerate(conf):
        scalars[f"saliency/confidence/probe_{i:02d}"] = float(c)
    if label_ids is not None:
        predicted = _background.predicted_classes(result.outputs)
        accuracy = float((predicted == label_ids).mean())
        scalars["saliency/probe_accuracy"] = accuracy
        signals["probe_accuracy"] = (accuracy, None, 1.0 / max(result.outputs.shape[1], 2))
    raw = result.reduced
    if raw is None:
        raw = postprocess.reduce_channels(result.attributions, reduction)
    score, hotspot_chance = _metrics.hotspot(raw)
    scalars["saliency/hotspot"], scalars["saliency/hotspot_chance"] = score, hotspot_chance
    signals["hotspot"] = (score, None, hotspot_chance)
    record("hotspot", score)
    if masks is not None:
        values = {
            "mass_in_mask": _metrics.mass_in_mask(raw, masks),
            "pointing_game": _metrics.pointing_game(raw, masks),
            "rank_in_mask": _metrics.rank_in_mask(raw, masks),
        }
        assert chance is not None
        for name, per_probe in values.items():
            valid = np.isfinite(per_probe)
            mean = float(per_probe[valid].mean()) if valid.any() else np.nan
            level = float(chance[valid].mean()) if valid.any() else np.nan
            scalars[f"saliency/{name}"] = mean
            signals[name] = (mean, per_probe, level)
            record(name, mean)
        for i, m in enumerate(values["mass_in_mask"]):
            scalars[f"saliency/mass_in_mask/probe_{i:02d}"] = float(m)
        measured = np.isfinite(chance)  # (every mask empty: NaN, without a warning)
        area = float(chance[measured].mean()) if measured.any() else np.nan
        scalars["saliency/mass_in_mask_chance"] = area
    return scalars
