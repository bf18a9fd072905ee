"""Checking `SaliencyCallback`'s arguments, early, with errors that name the argument.

Each function raises a `TypeError`/`ValueError` naming the argument and the received value, or
returns the value the callback keeps. `is_chief` says whether this process writes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from saliency_callback.data.probes import Probes
from saliency_callback.maps import inputs as _inputs
from saliency_callback.maps.inputs import TargetSpec
from saliency_callback.shortcuts.alarm import ShortcutAlarm

NAME = "SaliencyCallback"


def check_class_names(class_names: Sequence[str] | None) -> list[str] | None:
    """`class_names` as a list of str, or `None`."""
    if class_names is None:
        return None
    if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
        raise TypeError(
            f"`{NAME}` expected `class_names` to be a sequence of str, received {class_names!r}"
        )
    return list(class_names)


def check_class_count(class_names: list[str] | None, n_classes: int | None) -> list[str] | None:
    """`class_names`, if the model (with `n_classes` classes, or `None`) has one per name."""
    if class_names is not None and n_classes is not None and len(class_names) != n_classes:
        raise ValueError(
            f"expected `class_names` of length {n_classes} (the model's classes), "
            f"received {len(class_names)}"
        )
    return class_names


def check_target(target: TargetSpec, probes: Probes) -> None:
    """Raises for a `target` that cannot name one class per probe."""
    if isinstance(target, str) and target == "label" and probes.labels is None:
        raise ValueError(f'`{NAME}` got target="label" but no `labels`; received labels=None')
    if not callable(target) and not isinstance(target, (str, int, np.integer)):
        _inputs.resolve_targets(target, len(probes), None, None)


def check_background_tests(background_tests: bool | None, probes: Probes) -> bool:
    """Whether the background tests run (default: on); warns about probes they leave out."""
    if background_tests is not None and not isinstance(background_tests, (bool, np.bool_)):
        raise TypeError(
            f"`{NAME}` expected `background_tests` to be a bool or None, received "
            f"{background_tests!r}"
        )
    masks = probes.masks
    # Without masks or boxes the tests run on object boxes proposed from the images at
    # `on_train_begin` (`probes.locate_objects`).
    enabled = True if background_tests is None else bool(background_tests)
    if enabled and masks is not None:
        area = masks.mean(axis=(1, 2))
        left_out = [int(i) for i in np.flatnonzero((area == 0) | (area == 1))]
        if left_out:
            warnings.warn(
                f"{NAME}: probes {left_out} have an empty mask or one covering the whole "
                "image; they are left out of the background tests (and of the mask "
                "metrics where empty).",
                stacklevel=3,
            )
    return enabled


def check_alarm(
    alarm: ShortcutAlarm | None, probes: Probes, background_tests: bool
) -> ShortcutAlarm | None:
    """The alarm, if the probes and tests give it the signal it watches."""
    if alarm is None:
        return None
    if not isinstance(alarm, ShortcutAlarm):
        raise TypeError(f"`{NAME}` expected `alarm` to be a ShortcutAlarm, received {alarm!r}")
    background_monitor = alarm.monitor.startswith("background/")
    if alarm.needs_masks and probes.masks is None and not background_monitor:
        raise ValueError(
            f"`{NAME}` got an alarm on {alarm.monitor!r}, which needs `masks` or `boxes`; "
            "received neither (proposed object boxes serve the background tests only)"
        )
    if background_monitor and not background_tests:
        raise ValueError(f"`{NAME}` got an alarm on {alarm.monitor!r} with background_tests=False")
    accuracy = alarm.monitor.endswith("accuracy") or alarm.monitor == "background/gap"
    if accuracy and probes.labels is None:
        raise ValueError(
            f"`{NAME}` got an alarm on {alarm.monitor!r}, which needs `labels`; received "
            "labels=None (background/flip_rate needs no labels)"
        )
    return alarm


def is_chief(model: Any) -> bool:
    """Whether this process should write (always, unless a non-chief multi-worker task)."""
    strategy = getattr(model, "distribute_strategy", None)
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    try:
        in_multi_worker = strategy.extended._in_multi_worker_mode()  # type: ignore[union-attr]
    except AttributeError:
        return True
    if not in_multi_worker:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief
