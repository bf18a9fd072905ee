"""A seeded synthetic test bed for background shortcuts.

Each image shows one object on a background. The object's shape is the class
(circle, square, triangle, ...); its position, size and colour are random and
independent of the class, so the shape is the only cue that always works. A
second, easier cue encodes a class too: for a chosen fraction of images
(`agreement`) the image's own class, for the rest a different, randomly chosen
class. A small CNN trained with high agreement tends to read the cue instead of
the shape; its saliency then falls off the object, which the metrics in
`saliency_callback.maps.metrics` measure against the exact object masks returned
here.

The cue comes in several families (`cue=`, see `CUES`): the background tint
(the default), a striped background texture, a corner patch, a border frame,
the blur level of a noise texture, and a second, smaller distractor shape.

Everything is drawn with numpy broadcasting over the batch (no per-image Python
loop), from `np.random.default_rng(seed)` only.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from saliency_callback.data.cues import DISTRACTOR_MIN_IMAGE_SIZE, generate_family
from saliency_callback.data.shapes import (
    RADIUS_RANGE,
    TINT_JITTER,
    draw_masks,
    draw_object_colors,
)

__all__ = [
    "BACKGROUND_TINTS",
    "CUES",
    "OBJECT_AREA_LIMITS",
    "RANDOM_SCALE",
    "SHAPES",
    "ShortcutData",
    "make_shortcut_data",
    "make_shortcut_splits",
]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring", "diamond")
"""Object shape of each class, in class-index order."""

BACKGROUND_TINTS: NDArray[np.float32] = np.array(
    [
        [0.80, 0.25, 0.25],  # red
        [0.25, 0.70, 0.30],  # green
        [0.25, 0.35, 0.85],  # blue
        [0.80, 0.75, 0.20],  # yellow
        [0.75, 0.30, 0.75],  # magenta
        [0.20, 0.70, 0.75],  # cyan
    ],
    dtype=np.float32,
)
BACKGROUND_TINTS.flags.writeable = False
"""RGB background tint (the shortcut cue) of each class, in class-index order (read-only)."""

MIN_IMAGE_SIZE = 16

OBJECT_AREA_LIMITS = (0.01, 0.3)
"""Bounds of `make_shortcut_data(object_area=...)`, as fractions of the image."""
RANDOM_SCALE: tuple[float, float] = (0.02, 0.3)
"""`object_area` of the random-scale family: objects from 2% to 30% of the image."""


_INT_TYPE_MSG = "expected `{name}` to be an int, received {value!r} of type {type}"
_INT_MIN_MSG = "expected `{name}` >= {minimum}, received {value}"
_NUM_CLASSES_MSG = "expected `num_classes` between 2 and {maximum}, received {value}"
_REAL_TYPE_MSG = "expected `{name}` to be a real number, received {value!r} of type {type}"
_UNIT_RANGE_MSG = "expected `{name}` in [0, 1], received {value}"
_NOISE_MSG = "expected `noise` to be finite and >= 0, received {value}"


@dataclass(frozen=True, eq=False)
class ShortcutData:
    """A batch of synthetic shortcut images with labels, masks and cue info.

    Attributes:
        images: Float32 array of shape `(n, S, S, 3)` with values in `[0, 1]`.
        labels: Int64 array of shape `(n,)`: the class, i.e. the object shape.
        masks: Bool array of shape `(n, S, S)`: exactly the object's pixels.
        cue_agrees: Bool array of shape `(n,)`: whether the cue encodes the
            image's own class.
        background_classes: Int64 array of shape `(n,)`: the class the cue
            encodes, for every cue family (the name dates from the tint cue;
            equal to `labels` where `cue_agrees`).
        class_names: Shape name of each class, e.g. `("circle", "square",
            "triangle")`.
        background_colors: Float32 array of shape `(num_classes, 3)`:
            `BACKGROUND_TINTS[:num_classes]`, the RGB colour of each class's
            cue (before jitter and noise) for the `"background_color"`,
            `"patch"` and `"frame"` cues; unused by the others.
        cue: The cue family, one of `CUES`.
    """

    images: NDArray[np.float32]
    labels: NDArray[np.int64]
    masks: NDArray[np.bool_]
    cue_agrees: NDArray[np.bool_]
    background_classes: NDArray[np.int64]
    class_names: tuple[str, ...]
    background_colors: NDArray[np.float32]
    cue: str = "background_color"

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(_INT_TYPE_MSG.format(name=name, value=value, type=type(value).__name__))
    if value < minimum:
        raise ValueError(_INT_MIN_MSG.format(name=name, minimum=minimum, value=value))
    return int(value)


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(_REAL_TYPE_MSG.format(name=name, value=value, type=type(value).__name__))
    fraction = float(value)
    if not 0.0 <= fraction <= 1.0:  # also rejects NaN
        raise ValueError(_UNIT_RANGE_MSG.format(name=name, value=value))
    return fraction


CUES: tuple[str, ...] = (
    "background_color",
    "background_texture",
    "patch",
    "frame",
    "blur",
    "distractor",
)
"""The cue families of `make_shortcut_data(cue=...)`."""

_CUE_MSG = "expected `cue` to be one of {names}, received {value!r}"
_CUE_SIZE_MSG = "expected `image_size` >= {minimum} with cue={cue!r}, received {value}"


def _generate(
    n: int,
    image_size: int,
    num_classes: int,
    agreement: float,
    noise: float,
    rng: np.random.Generator,
    cue: str = "background_color",
    radius_range: tuple[float, float] = RADIUS_RANGE,
) -> ShortcutData:
    labels = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)

    n_agree = round(agreement * n)
    cue_agrees = np.zeros(n, dtype=bool)
    cue_agrees[rng.permutation(n)[:n_agree]] = True
    # A uniformly random *other* class for disagreeing images.
    offset = rng.integers(1, num_classes, size=n)
    background_classes = np.where(cue_agrees, labels, (labels + offset) % num_classes)

    tints = BACKGROUND_TINTS[:num_classes]
    if cue == "background_color":
        masks = draw_masks(labels, image_size, num_classes, rng, radius_range)
        jitter = rng.uniform(-TINT_JITTER, TINT_JITTER, size=(n, 3)).astype(np.float32)
        backgrounds = tints[background_classes] + jitter
        objects = draw_object_colors(n, tints, rng)
        images = np.where(
            masks[..., None], objects[:, None, None, :], backgrounds[:, None, None, :]
        ).astype(np.float32, copy=False)
    else:
        images, masks = generate_family(
            cue, labels, background_classes, image_size, num_classes, rng, radius_range, tints
        )
    if noise > 0:
        images += np.float32(noise) * rng.standard_normal(images.shape, dtype=np.float32)
    np.clip(images, 0.0, 1.0, out=images)

    return ShortcutData(
        images=images,
        labels=labels,
        masks=masks,
        cue_agrees=cue_agrees,
        background_classes=background_classes.astype(np.int64, copy=False),
        class_names=SHAPES[:num_classes],
        background_colors=tints.copy(),
        cue=cue,
    )


def _check_cue(cue: Any, image_size: int) -> str:
    if not isinstance(cue, str) or cue not in CUES:
        raise ValueError(_CUE_MSG.format(names=", ".join(CUES), value=cue))
    if cue == "distractor" and image_size < DISTRACTOR_MIN_IMAGE_SIZE:
        raise ValueError(
            _CUE_SIZE_MSG.format(minimum=DISTRACTOR_MIN_IMAGE_SIZE, cue=cue, value=image_size)
        )
    return cue


def _check_object_area(object_area: Any, cue: str) -> tuple[float, float]:
    """The radius range (fraction of the side) for `object_area`, `None` for the default."""
    if object_area is None:
        return RADIUS_RANGE
    if cue == "distractor":
        raise ValueError(
            f"expected `object_area=None` with cue='distractor', received {object_area!r}"
        )
    try:
        low, high = (float(v) for v in object_area)
    except (TypeError, ValueError):
        raise TypeError(
            f"expected `object_area` to be a pair (low, high) of floats, received {object_area!r}"
        ) from None
    lo_limit, hi_limit = OBJECT_AREA_LIMITS
    if not lo_limit <= low <= high <= hi_limit:
        raise ValueError(
            f"expected `object_area` with {lo_limit} <= low <= high <= {hi_limit}, received "
            f"{object_area!r}"
        )
    return float(np.sqrt(low / np.pi)), float(np.sqrt(high / np.pi))


def _check_args(
    n: int,
    image_size: int,
    num_classes: int,
    agreement: float,
    noise: float,
    *,
    n_name: str = "n",
    agreement_name: str = "agreement",
) -> tuple[int, int, int, float, float]:
    n = _check_int(n_name, n, 1)
    image_size = _check_int("image_size", image_size, MIN_IMAGE_SIZE)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(
            _INT_TYPE_MSG.format(
                name="num_classes", value=num_classes, type=type(num_classes).__name__
            )
        )
    if not 2 <= num_classes <= len(SHAPES):
        raise ValueError(_NUM_CLASSES_MSG.format(maximum=len(SHAPES), value=num_classes))
    agreement = _check_fraction(agreement_name, agreement)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(_REAL_TYPE_MSG.format(name="noise", value=noise, type=type(noise).__name__))
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(_NOISE_MSG.format(value=noise))
    return n, image_size, int(num_classes), agreement, float(noise)


def make_shortcut_data(
    n: int,
    *,
    image_size: int = 48,
    num_classes: int = 3,
    agreement: float = 0.95,
    seed: int = 0,
    noise: float = 0.05,
    cue: str = "background_color",
    object_area: tuple[float, float] | None = None,
) -> ShortcutData:
    """Generates images whose background (or another cue) is a partial shortcut.

    Class `c` is the object shape `SHAPES[c]` (circle, square, triangle,
    cross, ring, diamond). Each image has one object with a random centre,
    a random size (the mask covers about 10% to 30% of the image; 11% to 26%
    at the default size; see `cue="distractor"` for the exception) that never
    touches the image border, and a random colour drawn from the same
    distribution for every class: uniform RGB, excluding colours within 0.3
    (Euclidean) of any background tint in use (and, for the cues other than
    the tint, within 0.4 of the image's base colour), so the object always
    contrasts with the background. The shape is therefore the only reliable
    cue. `masks` are exactly the object's pixels, and no cue ever overlaps
    the object.

    The cue encodes a class `b`. Exactly `round(agreement * n)` randomly
    chosen images (Python rounding, half to even) have `b` equal to their
    label; the others get a uniformly random different class. `cue` picks
    how `b` is shown (`S` is `image_size`, `K` is `num_classes`):

    - `"background_color"` (default): the background is the flat tint
      `BACKGROUND_TINTS[b]`, jittered by up to +-0.05 per channel per image.
    - The other cues draw a class-independent "neutral" base colour per
      image: a grey of level uniform in `[0.35, 0.65]`, jittered by up to
      +-0.05 per channel. Then:
    - `"background_texture"`: base plus a grey sinusoidal grating of
      amplitude 0.15, period `max(4, S / 8)` pixels, random phase and
      orientation `180 * b / K` degrees (0: vertical stripes), with its mean
      over the image removed, so the mean colour carries no information.
    - `"patch"`: base background with a square "token" of side
      `max(2, S // 8)` in the top-left corner, of colour
      `BACKGROUND_TINTS[b]` jittered as above. The object's bounding box
      stays clear of it (with a pixel of background in between from
      `S = 20` up).
    - `"frame"`: base background inside a border `max(1, S // 16)` pixels
      wide of colour `BACKGROUND_TINTS[b]` jittered as above; the object
      keeps a pixel of background from the frame.
    - `"blur"`: base plus a grey texture: white noise blurred with a
      Gaussian of standard deviation `(0, 0.5, 0.8, 1.2, 1.7, 2.4)[b]` pixels
      (periodic boundary; 0 means sharp), then rescaled to exactly zero mean
      and standard deviation 0.1 per image. Mean colour and contrast carry no
      class information, only the texture's grain (spatial spectrum) does.
      With 6 classes the coarsest levels are hard to tell apart at `S = 32`
      (a hand-written decoder gets about 96%); with 3 it is exact.
    - `"distractor"`: base background with a second, smaller object of shape
      `SHAPES[b]` and a random colour (same distribution as the object's),
      its bounding box at least 2 pixels from the object's. To make room
      both are smaller here: the object's radius is 0.16 to 0.21 of `S`
      (mask about 7% to 15% of the image), the distractor's 0.10 to 0.12.
      `masks` cover the main object only. Needs `S >= 32`.

    Gaussian pixel noise of standard deviation `noise` is added to the whole
    image (object included), then values are clipped to `[0, 1]`.

    `agreement` near 1 makes the cue an easy shortcut; `1 / num_classes`
    makes it uninformative (the cue class is then uniformly random,
    independent of the label), which gives a clean twin of a dataset
    with the same cue family; `0.0` makes it always misleading, a held-out
    split for testing whether a model relies on the shortcut. Labels are
    balanced: each class appears `n // num_classes` or one more times, in
    random order.

    Args:
        n: Number of images, >= 1.
        image_size: Side `S` of the square images in pixels, >= 16 (>= 32
            for `cue="distractor"`).
        num_classes: Number of classes (shapes), between 2 and `len(SHAPES)`
            (6).
        agreement: Fraction of images, in `[0, 1]`, whose cue encodes their
            own class.
        seed: Seed for `np.random.default_rng`; the same arguments and seed
            always give the same data.
        noise: Standard deviation of the Gaussian pixel noise, >= 0. With
            `noise=0` and `cue="background_color"` every background pixel of
            an image has the same colour.
        cue: The cue family, one of `CUES`: `"background_color"`,
            `"background_texture"`, `"patch"`, `"frame"`, `"blur"`,
            `"distractor"`. The default gives the same data as before the
            other families existed.
        object_area: `(low, high)`: draw each object's size so that its
            area (about `pi * r**2`) is uniform in radius between these
            fractions of the image, within `OBJECT_AREA_LIMITS` (0.01 to
            0.3); e.g. `RANDOM_SCALE` (0.02 to 0.3) for objects at a random
            position and scale. Defaults to `None`: the usual sizes (about
            11% to 26%), the same data as before this option. Not with
            `cue="distractor"`.

    Returns:
        A `ShortcutData` with `images` float32 `(n, S, S, 3)` in `[0, 1]`,
        `labels` int64 `(n,)`, `masks` bool `(n, S, S)` (exactly the object's
        pixels), `cue_agrees` bool `(n,)`, `background_classes` int64 `(n,)`
        (the class the cue encodes), `class_names`, `background_colors`
        float32 `(num_classes, 3)` and `cue`.

    Raises:
        TypeError: If `n`, `image_size` or `num_classes` is not an int, or
            `agreement` or `noise` is not a real number.
        ValueError: If `n < 1`, `image_size < 16`, `num_classes` is outside
            `[2, 6]`, `agreement` is outside `[0, 1]`, `noise` is negative
            or not finite, `cue` is not one of `CUES`, or `cue="distractor"`
            with `image_size < 32`.

    Example:

    >>> data = make_shortcut_data(8, image_size=32, agreement=0.75, seed=1)
    >>> data.images.shape, data.masks.shape, int(data.cue_agrees.sum())
    ((8, 32, 32, 3), (8, 32, 32), 6)
    >>> data.class_names
    ('circle', 'square', 'triangle')
    """
    args = _check_args(n, image_size, num_classes, agreement, noise)
    cue = _check_cue(cue, args[1])
    radius_range = _check_object_area(object_area, cue)
    return _generate(*args, rng=np.random.default_rng(seed), cue=cue, radius_range=radius_range)


def make_shortcut_splits(
    n_train: int,
    n_test: int,
    *,
    agreement: float = 0.95,
    test_agreement: float = 0.5,
    seed: int = 0,
    image_size: int = 48,
    num_classes: int = 3,
    noise: float = 0.05,
    cue: str = "background_color",
    object_area: tuple[float, float] | None = None,
) -> tuple[ShortcutData, ShortcutData]:
    """Generates a shortcut-laden training split and a balanced test split.

    The training split has `agreement` (default 0.95): the cue (the
    background tint by default, see `cue`) is a strong shortcut. The test
    split has `test_agreement` (default 0.5): exactly `round(test_agreement *
    n_test)` of its images agree and the rest disagree, so accuracy on
    `test.cue_agrees` versus `~test.cue_agrees` shows how much a model relies
    on the cue. Both splits use the same cue family and come from independent
    streams derived from `seed` with `np.random.SeedSequence(seed).spawn(2)`, so they never share
    images and are reproducible; the training split differs from
    `make_shortcut_data(n_train, seed=seed)`.

    Args:
        n_train: Number of training images, >= 1.
        n_test: Number of test images, >= 1.
        agreement: Cue agreement of the training split, in `[0, 1]`.
        test_agreement: Cue agreement of the test split, in `[0, 1]`.
        seed: Seed from which both splits' generators are derived.
        image_size: Side of the square images in pixels, >= 16.
        num_classes: Number of classes, between 2 and 6.
        noise: Standard deviation of the Gaussian pixel noise, >= 0.
        cue: The cue family of both splits, one of `CUES`; see
            `make_shortcut_data`.
        object_area: Object size range of both splits; see
            `make_shortcut_data`.

    Returns:
        A tuple `(train, test)` of `ShortcutData`; see `make_shortcut_data`.

    Raises:
        TypeError: As `make_shortcut_data`, naming the offending argument.
        ValueError: As `make_shortcut_data`, naming the offending argument
            (`n_train`, `n_test`, `agreement`, `test_agreement`, `cue`, ...).

    Example:

    >>> train, test = make_shortcut_splits(100, 40, seed=3)
    >>> int(train.cue_agrees.sum()), int(test.cue_agrees.sum())
    (95, 20)
    """
    train_args = _check_args(n_train, image_size, num_classes, agreement, noise, n_name="n_train")
    test_args = _check_args(
        n_test,
        image_size,
        num_classes,
        test_agreement,
        noise,
        n_name="n_test",
        agreement_name="test_agreement",
    )
    cue = _check_cue(cue, train_args[1])
    radius_range = _check_object_area(object_area, cue)
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    train = _generate(
        *train_args, rng=np.random.default_rng(train_seq), cue=cue, radius_range=radius_range
    )
    test = _generate(
        *test_args, rng=np.random.default_rng(test_seq), cue=cue, radius_range=radius_range
    )
    return train, test
