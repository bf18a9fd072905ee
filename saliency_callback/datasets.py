"""A seeded synthetic test bed for background shortcuts.

Each image shows one object on a tinted, noisy background. The object's shape
is the class (circle, square, triangle, ...); its position, size and colour are
random and independent of the class, so the shape is the only cue that always
works. The background tint is a second, easier cue: for a chosen fraction of
images (`agreement`) it is the tint of the image's own class, for the rest the
tint of a different, randomly chosen class. A small CNN trained with high
agreement tends to read the tint instead of the shape; its saliency then falls
on the background, which the metrics in `saliency_callback.metrics` measure
against the exact object masks returned here.

Everything is drawn with numpy broadcasting over the batch (no per-image Python
loop), from `np.random.default_rng(seed)` only.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BACKGROUND_TINTS",
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

# Object size: every shape below has an area of about pi * r**2 and fits in a
# box of half-width 1.25 * r. With r drawn uniformly in this range (as a
# fraction of the image side), masks cover about 11% to 26% of the image
# (pixelation widens this to about 9% to 29% at 16x16).
_RADIUS_RANGE = (0.19, 0.28)
_HALF_EXTENT = 1.25
# Per-image uniform jitter of the tint, per channel.
_TINT_JITTER = 0.05
# Object colours are uniform in the RGB cube minus balls of this radius around
# every tint in use, so the object always contrasts with the background and
# its colour distribution is the same for every class.
_MIN_COLOR_DISTANCE = 0.3

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
        cue_agrees: Bool array of shape `(n,)`: whether the background carries
            the tint of the image's own class.
        background_classes: Int64 array of shape `(n,)`: the class whose tint
            the background carries (equal to `labels` where `cue_agrees`).
        class_names: Shape name of each class, e.g. `("circle", "square",
            "triangle")`.
        background_colors: Float32 array of shape `(num_classes, 3)`: the RGB
            tint of each class's background (before jitter and noise).
    """

    images: NDArray[np.float32]
    labels: NDArray[np.int64]
    masks: NDArray[np.bool_]
    cue_agrees: NDArray[np.bool_]
    background_classes: NDArray[np.int64]
    class_names: tuple[str, ...]
    background_colors: NDArray[np.float32]

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


# Shape predicates. `dy` and `dx` are offsets from the object's centre, shaped
# (m, S, 1) and (m, 1, S); `r` is the size, shaped (m, 1, 1). Each returns an
# (m, S, S) boolean mask with an area of about pi * r**2, within 1.25 * r of
# the centre along each axis.
_Predicate = Callable[[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]], Any]


def _circle(dy: NDArray[np.float64], dx: NDArray[np.float64], r: NDArray[np.float64]) -> Any:
    return dy**2 + dx**2 <= r**2


def _square(dy: NDArray[np.float64], dx: NDArray[np.float64], r: NDArray[np.float64]) -> Any:
    half = 0.5 * np.sqrt(np.pi) * r
    return (np.abs(dy) <= half) & (np.abs(dx) <= half)


def _triangle(dy: NDArray[np.float64], dx: NDArray[np.float64], r: NDArray[np.float64]) -> Any:
    # Upward-pointing, base and height 2.5 * r, centred on its bounding box.
    half = _HALF_EXTENT * r
    depth = dy + half  # 0 at the apex, 2 * half at the base
    return (depth >= 0) & (depth <= 2 * half) & (np.abs(dx) <= 0.5 * depth)


def _cross(dy: NDArray[np.float64], dx: NDArray[np.float64], r: NDArray[np.float64]) -> Any:
    arm, width = 1.2 * r, 0.4 * r
    ady, adx = np.abs(dy), np.abs(dx)
    return ((ady <= width) & (adx <= arm)) | ((adx <= width) & (ady <= arm))


def _ring(dy: NDArray[np.float64], dx: NDArray[np.float64], r: NDArray[np.float64]) -> Any:
    d2 = dy**2 + dx**2
    return (d2 <= (_HALF_EXTENT * r) ** 2) & (d2 >= (0.75 * r) ** 2)


def _diamond(dy: NDArray[np.float64], dx: NDArray[np.float64], r: NDArray[np.float64]) -> Any:
    return np.abs(dy) + np.abs(dx) <= _HALF_EXTENT * r


_PREDICATES: tuple[_Predicate, ...] = (_circle, _square, _triangle, _cross, _ring, _diamond)


def _draw_masks(
    labels: NDArray[np.int64], image_size: int, num_classes: int, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """Draws one randomly placed and sized object per image, by class."""
    n = int(labels.shape[0])
    low, high = _RADIUS_RANGE
    radius = rng.uniform(low, high, size=n) * image_size
    # Pixel centres sit at i + 0.5, so centres in [margin, S - margin] keep the
    # object inside the image with at least one background pixel around it.
    margin = _HALF_EXTENT * radius + 1.0
    center_y = rng.uniform(margin, image_size - margin, size=n)
    center_x = rng.uniform(margin, image_size - margin, size=n)
    coords = np.arange(image_size, dtype=np.float64) + 0.5
    masks = np.zeros((n, image_size, image_size), dtype=bool)
    for cls in range(num_classes):
        idx = np.flatnonzero(labels == cls)
        if idx.size == 0:
            continue
        dy = coords[None, :, None] - center_y[idx, None, None]
        dx = coords[None, None, :] - center_x[idx, None, None]
        masks[idx] = _PREDICATES[cls](dy, dx, radius[idx, None, None])
    return masks


def _draw_object_colors(
    n: int, tints: NDArray[np.float32], rng: np.random.Generator
) -> NDArray[np.float32]:
    """Uniform RGB colours at least `_MIN_COLOR_DISTANCE` from every tint."""
    colors = rng.uniform(0.0, 1.0, size=(n, 3))
    while True:
        dist = np.linalg.norm(colors[:, None, :] - tints[None, :, :], axis=-1)
        redraw = np.flatnonzero((dist < _MIN_COLOR_DISTANCE).any(axis=1))
        if redraw.size == 0:
            return colors.astype(np.float32)
        colors[redraw] = rng.uniform(0.0, 1.0, size=(redraw.size, 3))


def _generate(
    n: int,
    image_size: int,
    num_classes: int,
    agreement: float,
    noise: float,
    rng: np.random.Generator,
) -> ShortcutData:
    labels = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)

    n_agree = round(agreement * n)
    cue_agrees = np.zeros(n, dtype=bool)
    cue_agrees[rng.permutation(n)[:n_agree]] = True
    # A uniformly random *other* class for disagreeing images.
    offset = rng.integers(1, num_classes, size=n)
    background_classes = np.where(cue_agrees, labels, (labels + offset) % num_classes)

    masks = _draw_masks(labels, image_size, num_classes, rng)

    tints = BACKGROUND_TINTS[:num_classes]
    jitter = rng.uniform(-_TINT_JITTER, _TINT_JITTER, size=(n, 3)).astype(np.float32)
    backgrounds = tints[background_classes] + jitter
    objects = _draw_object_colors(n, tints, rng)
    images = np.where(
        masks[..., None], objects[:, None, None, :], backgrounds[:, None, None, :]
    ).astype(np.float32, copy=False)
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
    )


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
) -> ShortcutData:
    """Generates images whose background tint is a (partial) shortcut cue.

    Class `c` is the object shape `SHAPES[c]` (circle, square, triangle,
    cross, ring, diamond). Each image has one object with a random centre,
    a random size (the mask covers about 10% to 30% of the image; 11% to 26%
    at the default size) that never touches the image border, and a random
    colour drawn from the same distribution for every class: uniform RGB,
    excluding colours within 0.3 (Euclidean) of any background tint in use,
    so the object always contrasts with the background. The shape is
    therefore the only reliable cue.

    The background is the flat tint `BACKGROUND_TINTS[b]` of a class `b`,
    jittered by up to +-0.05 per channel per image. Exactly
    `round(agreement * n)` randomly chosen images (Python rounding, half to
    even) have `b` equal to their label; the others get a uniformly random
    different class. Gaussian pixel noise of standard deviation `noise` is
    added to the whole image (object included), then values are clipped to
    `[0, 1]`.

    `agreement` near 1 makes the tint an easy shortcut; `1 / num_classes`
    makes it uninformative; `0.0` makes it always misleading, a held-out
    split for testing whether a model relies on the shortcut. Labels are
    balanced: each class appears `n // num_classes` or one more times, in
    random order.

    Args:
        n: Number of images, >= 1.
        image_size: Side `S` of the square images in pixels, >= 16.
        num_classes: Number of classes (shapes), between 2 and `len(SHAPES)`
            (6).
        agreement: Fraction of images, in `[0, 1]`, whose background carries
            their own class's tint.
        seed: Seed for `np.random.default_rng`; the same arguments and seed
            always give the same data.
        noise: Standard deviation of the Gaussian pixel noise, >= 0. With
            `noise=0` every background pixel of an image has the same colour.

    Returns:
        A `ShortcutData` with `images` float32 `(n, S, S, 3)` in `[0, 1]`,
        `labels` int64 `(n,)`, `masks` bool `(n, S, S)` (exactly the object's
        pixels), `cue_agrees` bool `(n,)`, `background_classes` int64 `(n,)`,
        `class_names` and `background_colors` float32 `(num_classes, 3)`.

    Raises:
        TypeError: If `n`, `image_size` or `num_classes` is not an int, or
            `agreement` or `noise` is not a real number.
        ValueError: If `n < 1`, `image_size < 16`, `num_classes` is outside
            `[2, 6]`, `agreement` is outside `[0, 1]`, or `noise` is negative
            or not finite.

    Example:

    >>> data = make_shortcut_data(8, image_size=32, agreement=0.75, seed=1)
    >>> data.images.shape, data.masks.shape, int(data.cue_agrees.sum())
    ((8, 32, 32, 3), (8, 32, 32), 6)
    >>> data.class_names
    ('circle', 'square', 'triangle')
    """
    args = _check_args(n, image_size, num_classes, agreement, noise)
    return _generate(*args, rng=np.random.default_rng(seed))


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
) -> tuple[ShortcutData, ShortcutData]:
    """Generates a shortcut-laden training split and a balanced test split.

    The training split has `agreement` (default 0.95): the background tint is
    a strong shortcut. The test split has `test_agreement` (default 0.5):
    half of its images agree and half disagree, so accuracy on
    `test.cue_agrees` versus `~test.cue_agrees` shows how much a model relies
    on the background. Both splits come from independent streams derived from
    `seed` with `np.random.SeedSequence(seed).spawn(2)`, so they never share
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

    Returns:
        A tuple `(train, test)` of `ShortcutData`; see `make_shortcut_data`.

    Raises:
        TypeError: As `make_shortcut_data`, naming the offending argument.
        ValueError: As `make_shortcut_data`, naming the offending argument
            (`n_train`, `n_test`, `agreement`, `test_agreement`, ...).

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
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    train = _generate(*train_args, rng=np.random.default_rng(train_seq))
    test = _generate(*test_args, rng=np.random.default_rng(test_seq))
    return train, test
