"""The background tests in the callback: built once per fit, run at each logged epoch.

`object_regions` finds the probes' objects once (given masks or boxes, else proposals that
never look at the model); `build_test` builds the `BackgroundTest` on them; `background_scalars`
runs the counterfactual probes forward at a logged epoch and scores them
(`saliency_callback.shortcuts.background`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from saliency_callback.data.probes import ObjectRegions, Probes, locate_objects
from saliency_callback.maps.engine import Explanation
from saliency_callback.output.box_panels import render_probe_boxes
from saliency_callback.output.render import Renderer
from saliency_callback.shortcuts import background as _background
from saliency_callback.shortcuts.alarm import MONITORS
from saliency_callback.training.signals import Record, Signals

NAME = "SaliencyCallback"
# Background signals that also go into Keras's `logs` (CSVLogger, History, EarlyStopping).
LOGGED_BACKGROUND = (
    "gap",
    "flip_rate",
    "reliance",
    "swap_change",
    "only_bg_accuracy",
    "harm",
    "harm_low",
    "harm_high",
)


def object_regions(probes: Probes) -> ObjectRegions:
    """The probes' object regions; warns about probes without a plausible one."""
    regions = locate_objects(probes)
    message = regions.warning()
    if message is not None:
        warnings.warn(f"{NAME}: {message}", stacklevel=4)
    return regions


def build_test(
    probes: Probes,
    regions: ObjectRegions,
    label_ids: np.ndarray | None,
    name: Callable[[int], str],
) -> _background.BackgroundTest | None:
    """The background test on the usable regions (`None` if none is usable); warns when every
    probe taking part has one class (no swap partners)."""
    if not regions.usable.any():
        return None
    test = _background.BackgroundTest.build(probes.images, regions.masks, label_ids)
    valid = test.valid
    taking_part = np.unique(label_ids[valid]) if label_ids is not None else np.zeros(0)
    if len(taking_part) == 1:
        warnings.warn(
            f"{NAME}: every probe in the background tests has class "
            f"{name(int(taking_part[0]))}; swapping backgrounds within one class "
            "cannot show whether the model reads the background, so flip_rate, reliance "
            "and gap are not measured (not logged). Add probes of other classes.",
            stacklevel=4,
        )
    return test


def background_panels(
    probes: Probes,
    regions: ObjectRegions,
    test: _background.BackgroundTest | None,
    renderer: Renderer,
    display_range: tuple[float, float] | None,
) -> tuple[list[tuple[str, np.ndarray, str]], Any]:
    """The images written once (`saliency/probe_boxes`) and the background panels' stacks
    (original | only_fg | only_bg | mixed_rand) with their value range, or `None`."""
    boxes = render_probe_boxes(
        probes.raw,
        regions,
        value_range=display_range,
        min_tile=renderer.min_tile,
        max_tile=renderer.max_tile,
    )
    once = [("saliency/probe_boxes", boxes, regions.describe())]
    if test is None:
        return once, None
    stacks = [probes.images, *(test.images[v] for v in ("only_fg", "only_bg", "mixed_rand"))]
    return once, (stacks, display_range)


def background_scalars(
    test: _background.BackgroundTest,
    explainer: Any,
    probes: Probes,
    regions: ObjectRegions,
    result: Explanation,
    record: Record,
    signals: Signals,
    texts: Callable[[np.ndarray], list[str]],
) -> tuple[dict[str, float], list[list[str]]]:
    """Runs the counterfactual probes forward; returns their scalars and panel captions."""
    _, outputs = explainer.predict(test.batch)
    variants = test.split(outputs)
    regression = explainer.head.num_classes is None
    targets = probes.labels if regression else None
    values, per_probe = _background.score(
        test, result.outputs, variants, regression=regression, targets=targets
    )
    proposed = float(regions.source == "proposed")
    chance = values.get("only_bg_chance")
    per_probe_signal = per_probe.get("flip", per_probe.get("change"))
    scalars: dict[str, float] = {"saliency/background/proposed_boxes": proposed}
    for name, value in values.items():
        key = f"background/{name}"
        scalars[f"saliency/{key}"] = value
        if name == "only_bg_chance":
            continue
        has_chance = MONITORS.get(key, ("", None))[1] is not None
        per = per_probe.get("harm") if name.startswith("harm") else per_probe_signal
        signals[key] = (value, per, chance if has_chance else None)
        record(key, value, to_logs=name in LOGGED_BACKGROUND)
    outs = [result.outputs] + [variants[v] for v in ("only_fg", "only_bg", "mixed_rand")]
    return scalars, [texts(o) for o in outs]
