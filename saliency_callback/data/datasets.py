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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

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


def _render_shapes(
    classes: NDArray[np.int64],
    center_y: NDArray[np.float64],
    center_x: NDArray[np.float64],
    radius: NDArray[np.float64],
    image_size: int,
    num_classes: int,
) -> NDArray[np.bool_]:
    """Renders one shape per image: `SHAPES[classes[i]]` at the given centre and size."""
    n = int(classes.shape[0])
    coords = np.arange(image_size, dtype=np.float64) + 0.5
    masks = np.zeros((n, image_size, image_size), dtype=bool)
    for cls in range(num_classes):
        idx = np.flatnonzero(classes == cls)
        if idx.size == 0:
            continue
        dy = coords[None, :, None] - center_y[idx, None, None]
        dx = coords[None, None, :] - center_x[idx, None, None]
        masks[idx] = _PREDICATES[cls](dy, dx, radius[idx, None, None])
    return masks


def _draw_masks(
    labels: NDArray[np.int64],
    image_size: int,
    num_classes: int,
    rng: np.random.Generator,
    radius_range: tuple[float, float] = _RADIUS_RANGE,
) -> NDArray[np.bool_]:
    """Draws one randomly placed and sized object per image, by class."""
    n = int(labels.shape[0])
    low, high = radius_range
    radius = rng.uniform(low, high, size=n) * image_size
    # Pixel centres sit at i + 0.5, so centres in [margin, S - margin] keep the
    # object inside the image with at least one background pixel around it.
    margin = _HALF_EXTENT * radius + 1.0
    center_y = rng.uniform(margin, image_size - margin, size=n)
    center_x = rng.uniform(margin, image_size - margin, size=n)
    return _render_shapes(labels, center_y, center_x, radius, image_size, num_classes)


def _draw_object_colors(
    n: int,
    avoid: NDArray[np.floating[Any]],
    rng: np.random.Generator,
    min_distance: float | NDArray[np.float64] = _MIN_COLOR_DISTANCE,
) -> NDArray[np.float32]:
    """Uniform RGB colours at least `min_distance` from every colour in `avoid`.

    `avoid` is `(m, 3)` (the same colours for every image) or `(n, m, 3)`;
    `min_distance` is a scalar or one distance per avoided colour, `(m,)`.
    """
    avoid = np.broadcast_to(avoid, (n, *avoid.shape[-2:]))
    colors = rng.uniform(0.0, 1.0, size=(n, 3))
    todo = np.arange(n)
    while True:
        dist = np.linalg.norm(colors[todo, None, :] - avoid[todo], axis=-1)
        todo = todo[(dist < min_distance).any(axis=1)]
        if todo.size == 0:
            return colors.astype(np.float32)
        colors[todo] = rng.uniform(0.0, 1.0, size=(todo.size, 3))


# --- Cue families other than the background tint -------------------------------------------
#
# These share a "neutral" background: a grey of random level, jittered per channel, drawn the
# same way for every class, so that only the family's cue carries the class.
_NEUTRAL_LEVEL = (0.35, 0.65)
# Object colours keep this distance from the neutral base colour (more than from the tints,
# because textured backgrounds swing around their base colour).
_MIN_BASE_DISTANCE = 0.4
# "background_texture": a grey sinusoidal grating of this amplitude, orientation
# `pi * c / num_classes` for cue class c, period `max(4, S / 8)` pixels and random phase.
_GRATING_AMPLITUDE = 0.15
# "blur": white Gaussian noise blurred (periodically, in Fourier space) with the cue class's
# sigma in pixels, then rescaled to exactly zero mean and this standard deviation per image.
_BLUR_SIGMAS = (0.0, 0.5, 0.8, 1.2, 1.7, 2.4)
_BLUR_STD = 0.1
# "distractor": the main object is smaller than in the other families so that a second,
# smaller shape always fits beside it, this many pixels apart (bounding boxes) or more.
_DISTRACTOR_MAIN_RADIUS = (0.16, 0.21)
_DISTRACTOR_RADIUS = (0.10, 0.12)
_DISTRACTOR_GAP = 2.0
_DISTRACTOR_MIN_IMAGE_SIZE = 32

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


def _patch_size(image_size: int) -> int:
    """Side in pixels of the `cue="patch"` square in the top-left corner."""
    return max(2, image_size // 8)


def _frame_width(image_size: int) -> int:
    """Width in pixels of the `cue="frame"` border."""
    return max(1, image_size // 16)


def _grating_period(image_size: int) -> float:
    """Period in pixels of the `cue="background_texture"` stripes."""
    return max(4.0, image_size / 8)


def _neutral_base(n: int, rng: np.random.Generator) -> NDArray[np.float32]:
    level = rng.uniform(*_NEUTRAL_LEVEL, size=(n, 1))
    jitter = rng.uniform(-_TINT_JITTER, _TINT_JITTER, size=(n, 3))
    return (level + jitter).astype(np.float32)


def _uniform_centers(
    radius: NDArray[np.float64], image_size: int, inset: float, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Centres keeping the object's box at least `1 + inset` pixels from the image edge."""
    margin = _HALF_EXTENT * radius + 1.0 + inset
    center_y = rng.uniform(margin, image_size - margin)
    center_x = rng.uniform(margin, image_size - margin)
    return center_y, center_x


def _patch_centers(
    radius: NDArray[np.float64],
    image_size: int,
    rng: np.random.Generator,
    widest_radius: float = _RADIUS_RANGE[1],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Uniform centres whose object box stays clear of the top-left patch.

    The box keeps a pixel of background from the patch where that always fits (image_size
    >= 20); at smaller sizes it may touch the patch, but never covers it.
    """
    half = _HALF_EXTENT * radius
    size = _patch_size(image_size)
    # The largest object's box leaves `image_size - 2 * widest` pixels along each axis; keep a
    # pixel of background between it and the patch wherever that leaves a pixel to spare.
    widest = _HALF_EXTENT * widest_radius * image_size + 1.0
    gap = 1.0 if image_size - 2 * widest >= size + 2 else 0.0
    center_y, center_x = _uniform_centers(radius, image_size, 0.0, rng)
    while True:
        bad = np.flatnonzero((center_y - half < size + gap) & (center_x - half < size + gap))
        if bad.size == 0:
            return center_y, center_x
        center_y[bad], center_x[bad] = _uniform_centers(radius[bad], image_size, 0.0, rng)


def _distractor_layout(
    n: int, image_size: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], ...]:
    """Sizes and centres of the main object and the distractor, boxes `_DISTRACTOR_GAP` apart."""
    main_r = rng.uniform(*_DISTRACTOR_MAIN_RADIUS, size=n) * image_size
    dist_r = rng.uniform(*_DISTRACTOR_RADIUS, size=n) * image_size
    need = _HALF_EXTENT * (main_r + dist_r) + _DISTRACTOR_GAP
    main_y, main_x = _uniform_centers(main_r, image_size, 0.0, rng)
    dist_y, dist_x = _uniform_centers(dist_r, image_size, 0.0, rng)
    while True:
        bad = np.flatnonzero((np.abs(main_y - dist_y) < need) & (np.abs(main_x - dist_x) < need))
        if bad.size == 0:
            return main_r, main_y, main_x, dist_r, dist_y, dist_x
        main_y[bad], main_x[bad] = _uniform_centers(main_r[bad], image_size, 0.0, rng)
        dist_y[bad], dist_x[bad] = _uniform_centers(dist_r[bad], image_size, 0.0, rng)


def _grating(
    cue_classes: NDArray[np.int64], image_size: int, num_classes: int, rng: np.random.Generator
) -> NDArray[np.float32]:
    n = int(cue_classes.shape[0])
    theta = np.pi * cue_classes / num_classes
    phase = rng.uniform(0.0, 2 * np.pi, size=n)
    coords = np.arange(image_size, dtype=np.float64) + 0.5
    freq = 2 * np.pi / _grating_period(image_size)
    wave = np.sin(
        freq
        * (
            coords[None, None, :] * np.cos(theta)[:, None, None]
            + coords[None, :, None] * np.sin(theta)[:, None, None]
        )
        + phase[:, None, None]
    )
    wave -= wave.mean(axis=(1, 2), keepdims=True)
    return (_GRATING_AMPLITUDE * wave).astype(np.float32)


def _blurred_noise(
    cue_classes: NDArray[np.int64], image_size: int, rng: np.random.Generator
) -> NDArray[np.float32]:
    n = int(cue_classes.shape[0])
    white = rng.standard_normal((n, image_size, image_size))
    sigma = np.asarray(_BLUR_SIGMAS)[cue_classes]
    fy = np.fft.fftfreq(image_size)[:, None]
    fx = np.fft.rfftfreq(image_size)[None, :]
    transfer = np.exp(-2 * np.pi**2 * sigma[:, None, None] ** 2 * (fy**2 + fx**2))
    field = np.fft.irfft2(np.fft.rfft2(white) * transfer, s=(image_size, image_size))
    field -= field.mean(axis=(1, 2), keepdims=True)
    field *= _BLUR_STD / field.std(axis=(1, 2), keepdims=True)
    return field.astype(np.float32)


def _generate_family(
    cue: str,
    labels: NDArray[np.int64],
    cue_classes: NDArray[np.int64],
    image_size: int,
    num_classes: int,
    rng: np.random.Generator,
    radius_range: tuple[float, float] = _RADIUS_RANGE,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Images (before pixel noise) and main-object masks of every cue but the tint."""
    n = int(labels.shape[0])
    size = image_size
    tints = BACKGROUND_TINTS[:num_classes]
    distractor = None
    if cue == "distractor":
        main_r, main_y, main_x, dist_r, dist_y, dist_x = _distractor_layout(n, size, rng)
        distractor = _render_shapes(cue_classes, dist_y, dist_x, dist_r, size, num_classes)
    else:
        radius = rng.uniform(*radius_range, size=n) * size
        main_r = radius
        if cue == "patch":
            main_y, main_x = _patch_centers(radius, size, rng, radius_range[1])
        elif cue == "frame":
            main_y, main_x = _uniform_centers(radius, size, float(_frame_width(size)), rng)
        else:
            main_y, main_x = _uniform_centers(radius, size, 0.0, rng)
    masks = _render_shapes(labels, main_y, main_x, main_r, size, num_classes)

    base = _neutral_base(n, rng)
    images = np.broadcast_to(base[:, None, None, :], (n, size, size, 3)).copy()
    if cue == "background_texture":
        images += _grating(cue_classes, size, num_classes, rng)[..., None]
    elif cue == "blur":
        images += _blurred_noise(cue_classes, size, rng)[..., None]
    elif cue in ("patch", "frame"):
        jitter = rng.uniform(-_TINT_JITTER, _TINT_JITTER, size=(n, 3)).astype(np.float32)
        color = (tints[cue_classes] + jitter)[:, None, None, :]
        region = np.zeros((size, size), dtype=bool)
        if cue == "patch":
            region[: _patch_size(size), : _patch_size(size)] = True
        else:
            width = _frame_width(size)
            region[:width] = region[-width:] = True
            region[:, :width] = region[:, -width:] = True
        images = np.where(region[None, :, :, None], color, images)

    avoid = np.concatenate([np.broadcast_to(tints, (n, *tints.shape)), base[:, None, :]], axis=1)
    min_distance = np.array([_MIN_COLOR_DISTANCE] * num_classes + [_MIN_BASE_DISTANCE])
    objects = _draw_object_colors(n, avoid, rng, min_distance)
    if distractor is not None:
        others = _draw_object_colors(n, avoid, rng, min_distance)
        images = np.where(distractor[..., None], others[:, None, None, :], images)
    images = np.where(masks[..., None], objects[:, None, None, :], images)
    return images.astype(np.float32, copy=False), masks


def _generate(
    n: int,
    image_size: int,
    num_classes: int,
    agreement: float,
    noise: float,
    rng: np.random.Generator,
    cue: str = "background_color",
    radius_range: tuple[float, float] = _RADIUS_RANGE,
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
        masks = _draw_masks(labels, image_size, num_classes, rng, radius_range)
        jitter = rng.uniform(-_TINT_JITTER, _TINT_JITTER, size=(n, 3)).astype(np.float32)
        backgrounds = tints[background_classes] + jitter
        objects = _draw_object_colors(n, tints, rng)
        images = np.where(
            masks[..., None], objects[:, None, None, :], backgrounds[:, None, None, :]
        ).astype(np.float32, copy=False)
    else:
        images, masks = _generate_family(
            cue, labels, background_classes, image_size, num_classes, rng, radius_range
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
    if cue == "distractor" and image_size < _DISTRACTOR_MIN_IMAGE_SIZE:
        raise ValueError(
            _CUE_SIZE_MSG.format(minimum=_DISTRACTOR_MIN_IMAGE_SIZE, cue=cue, value=image_size)
        )
    return cue


def _check_object_area(object_area: Any, cue: str) -> tuple[float, float]:
    """The radius range (fraction of the side) for `object_area`, `None` for the default."""
    if object_area is None:
        return _RADIUS_RANGE
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
