"""The probe set: fixed images, optional labels and foreground masks, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from saliency_callback import inputs as _inputs
from saliency_callback import metrics as _metrics

DEFAULT_NUM_PROBES = 16
"""Probes taken from a dataset when `num_probes` is not given. From
`benchmarks/bench_detection.py` (docs/detection.md, "How many probes"): with 16 probes the
default alarm catches models that lose half their accuracy on disagreeing backgrounds by the
third epoch, and its false alarms stay at the level's rate; 32 or 64 probes catch smaller harms
sooner (narrower bounds) at two to four times the cost of the background tests."""


@dataclass(frozen=True)
class Probes:
    """Validated probe arrays.

    Attributes:
        raw: The images as given (for display: uint8 stays uint8), `(N, H, W, C)`.
        images: float32 `(N, H, W, C)` for the model (never rescaled).
        labels: `(N,)` or `(N, K)` labels as given, or `None`.
        masks: bool `(N, H, W)` foreground masks, or `None`.
    """

    raw: np.ndarray
    images: np.ndarray
    labels: np.ndarray | None
    masks: np.ndarray | None

    def __len__(self) -> int:
        return len(self.images)


def _take_from_dataset(dataset: Any, num_probes: int) -> tuple[Any, Any, Any]:
    import tensorflow as tf

    spec = dataset.element_spec
    first = spec[0] if isinstance(spec, (tuple, list)) else spec
    if not isinstance(first, tf.TensorSpec):
        raise TypeError(
            "expected a `tf.data.Dataset` of images or (images, labels[, masks]) tuples, "
            f"received element_spec={spec}"
        )
    if first.shape.rank == 4:  # batched: take examples, not batches
        dataset = dataset.unbatch()
    parts: list[list[np.ndarray]] = []
    for element in dataset.take(num_probes):
        items = element if isinstance(element, (tuple, list)) else (element,)
        if not parts:
            parts = [[] for _ in items]
        for store, item in zip(parts, items, strict=True):
            store.append(np.asarray(item))
    if not parts:
        raise ValueError("expected a non-empty `images` dataset, received an empty one")
    arrays = [np.stack(p) for p in parts] + [None, None]
    return arrays[0], arrays[1], arrays[2]


def check_masks(masks: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Checks foreground masks against the probe images' `(N, H, W)`.

    Raises:
        TypeError, ValueError: For non-numeric masks, a shape mismatch or non-binary values.
    """
    arr = _inputs.to_numpy(masks, "masks")
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.shape != shape:
        raise ValueError(f"expected `masks` of shape {shape}, received {arr.shape}")
    return _metrics.check_masks(arr)


def load_probes(
    images: Any,
    labels: Any = None,
    masks: Any = None,
    num_probes: int | None = None,
    *,
    boxes: Any = None,
) -> Probes:
    """Reads and validates the probe set once.

    Args:
        images: `(N, H, W, C)`/`(N, H, W)` array or tensor, or a `tf.data.Dataset` yielding
            images or `(images, labels[, masks])`, batched or not.
        labels: Optional labels `(N,)` (class ids, or values for regression) or one-hot
            `(N, K)`; taken from the dataset when it yields them.
        masks: Optional foreground masks `(N, H, W)`, bool or 0/1.
        boxes: Instead of `masks`, `(N, 4)` pixel boxes `(x0, y0, x1, y1)` (end excluded),
            turned into masks (see `metrics.masks_from_boxes`).
        num_probes: How many examples to take (the first ones). Defaults to all of an array, or
            16 from a dataset.

    Raises:
        TypeError, ValueError: For bad images, labels, masks or `num_probes`.
    """
    if num_probes is not None and (
        isinstance(num_probes, bool)
        or not isinstance(num_probes, (int, np.integer))
        or num_probes < 1
    ):
        raise ValueError(f"expected `num_probes` to be a positive int, received {num_probes!r}")
    if type(images).__name__.endswith("Dataset") and hasattr(images, "element_spec"):
        images, ds_labels, ds_masks = _take_from_dataset(images, num_probes or DEFAULT_NUM_PROBES)
        labels = ds_labels if labels is None else labels
        masks = ds_masks if masks is None else masks
    elif num_probes is not None:
        images = _inputs.to_numpy(images, "images")[:num_probes]
        labels = None if labels is None else _inputs.to_numpy(labels, "labels")[:num_probes]
        masks = None if masks is None else _inputs.to_numpy(masks, "masks")[:num_probes]
    raw = _inputs.to_numpy(images, "images")
    x = _inputs.check_images(raw)
    if raw.ndim == 3:
        raw = raw[..., None]
    label_arr = None
    if labels is not None:
        label_arr = _inputs.to_numpy(labels, "labels")
        if len(label_arr) != len(x):
            raise ValueError(
                f"expected `labels` of length {len(x)} (one per probe image), received "
                f"{len(label_arr)}"
            )
    if boxes is not None:
        if masks is not None:
            raise ValueError("expected `masks` or `boxes`, received both")
        boxes = _inputs.to_numpy(boxes, "boxes")
        if num_probes is not None:
            boxes = boxes[:num_probes]
        masks = _metrics.masks_from_boxes(boxes, x.shape[:3])
    mask_arr = None if masks is None else check_masks(masks, x.shape[:3])
    return Probes(raw, x, label_arr, mask_arr)
