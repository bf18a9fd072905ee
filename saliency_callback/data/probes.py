"""The probe set: fixed images, optional labels and foreground masks, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from saliency_callback.maps import inputs as _inputs
from saliency_callback.maps import metrics as _metrics

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


@dataclass(frozen=True)
class ObjectRegions:
    """Where each probe's object is, for the background tests: given, or proposed.

    Attributes:
        masks: bool `(N, H, W)`: the regions the tests keep as "object". Given masks as they
            are; proposals as their filled boxes (a box keeps all of the object inside, at the
            price of some background: the tests stay box-based); empty for probes left out.
        boxes: int64 `(N, 4)` `(x0, y0, x1, y1)` of each region (for display), or `None` for
            given masks.
        usable: bool `(N,)`: probes with a plausible region (given masks: all).
        source: `"given"` (masks or boxes from the user) or `"proposed"` (from the image by
            `saliency_callback.shortcuts.proposals`, never by the model).
        method: The proposal method, or `None` for given masks.
        error: Why no proposal could be made at all (OpenCV missing), or `None`.
        pixels: bool `(N, H, W)`: the proposals' own pixel masks (empty where left out), for
            tests that want them instead of boxes; `None` for given masks.
    """

    masks: np.ndarray
    boxes: np.ndarray | None
    usable: np.ndarray
    source: str
    method: str | None = None
    error: str | None = None
    pixels: np.ndarray | None = None

    @property
    def left_out(self) -> list[int]:
        """Probes without a plausible region."""
        return [int(i) for i in np.flatnonzero(~self.usable)]

    def describe(self) -> str:
        """One sentence for the summaries' descriptions: where the regions come from."""
        if self.source == "given":
            return "Object regions: the masks or boxes given to the callback."
        if self.error:
            return f"Object regions: none (object proposals are unavailable: {self.error})."
        used = int(self.usable.sum())
        text = (
            f"Object regions: **proposed** from the images alone (`{self.method}`, "
            f"`saliency_callback.shortcuts.proposals`; boxes, not given masks), plausible for "
            f"{used} of "
            f"{len(self.usable)} probes"
        )
        if self.left_out:
            text += f"; left out of the background tests: probes {self.left_out}"
        return text + ". Check them in `saliency/probe_boxes`; pass `boxes=` or `masks=` to fix."

    def warning(self) -> str | None:
        """What the user must know about regions that could not be proposed, or `None`."""
        if self.source == "given":
            return None
        if not self.usable.any():
            why = (
                f"object proposals are unavailable ({self.error})"
                if self.error
                else "no plausible object found in any probe image (e.g. whole-image textures)"
            )
            return (
                f"{why}, so the background tests and any background alarm cannot run "
                "(`saliency/alarm_message` says so; `saliency/alarm` is not written). Pass "
                "`boxes=` or `masks=`, or `background_tests=False`."
            )
        if self.left_out:
            return (
                f"no plausible object found in probes {self.left_out} (object boxes are "
                "proposed from the images, never from the model); they are left out of the "
                "background tests. See `saliency/probe_boxes`; pass `boxes=` or `masks=` to "
                "include them."
            )
        return None


def locate_objects(probes: Probes) -> ObjectRegions:
    """The probes' object regions: the given masks, else boxes proposed from the raw images.

    Proposals never look at a model (see `saliency_callback.shortcuts.proposals`). Probes without a
    plausible proposal get an empty region, which the background tests leave out.
    """
    if probes.masks is not None:
        return ObjectRegions(probes.masks, None, np.ones(len(probes), bool), "given")
    from saliency_callback.shortcuts.proposals import propose_masks

    try:
        proposed = propose_masks(probes.raw)
    except ImportError as err:  # no usable OpenCV: no proposals, never a crash
        none = np.zeros(len(probes), bool)
        return ObjectRegions(
            np.zeros(probes.images.shape[:3], bool), None, none, "proposed", None, str(err)
        )
    usable = ~proposed.fallback
    keep = usable[:, None, None]
    return ObjectRegions(
        proposed.box_masks & keep,
        proposed.boxes,
        usable,
        "proposed",
        proposed.method,
        pixels=proposed.masks & keep,
    )
