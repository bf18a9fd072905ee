"""The cue families other than the background tint (`datasets.make_shortcut_data(cue=...)`).

Neutral backgrounds, and the cue drawn on them: a patch, a frame, a grating, blur or a
distractor shape. `generate_family` draws the images and masks of one family.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from saliency_callback.data.shapes import (
    HALF_EXTENT,
    MIN_COLOR_DISTANCE,
    RADIUS_RANGE,
    TINT_JITTER,
    draw_object_colors,
    render_shapes,
)

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
DISTRACTOR_MIN_IMAGE_SIZE = 32


def _patch_size(image_size: int) -> int:
    """Side in pixels of the `cue="patch"` square in the top-left corner."""
    return max(2, image_size // 8)


def _frame_width(image_size: int) -> int:
    """Width in pixels of the `cue="frame"` border."""
    return max(1, image_size // 16)


def _grating_period(image_size: int) -> float:
    """Period in pixels of the `cue="background_texture"` stripes."""
    return max(4.0, image_size / 8)


def neutral_base(n: int, rng: np.random.Generator) -> NDArray[np.float32]:
    level = rng.uniform(*_NEUTRAL_LEVEL, size=(n, 1))
    jitter = rng.uniform(-TINT_JITTER, TINT_JITTER, size=(n, 3))
    return (level + jitter).astype(np.float32)


def _uniform_centers(
    radius: NDArray[np.float64], image_size: int, inset: float, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Centres keeping the object's box at least `1 + inset` pixels from the image edge."""
    margin = HALF_EXTENT * radius + 1.0 + inset
    center_y = rng.uniform(margin, image_size - margin)
    center_x = rng.uniform(margin, image_size - margin)
    return center_y, center_x


def _patch_centers(
    radius: NDArray[np.float64],
    image_size: int,
    rng: np.random.Generator,
    widest_radius: float = RADIUS_RANGE[1],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Uniform centres whose object box stays clear of the top-left patch.

    The box keeps a pixel of background from the patch where that always fits (image_size
    >= 20); at smaller sizes it may touch the patch, but never covers it.
    """
    half = HALF_EXTENT * radius
    size = _patch_size(image_size)
    # The largest object's box leaves `image_size - 2 * widest` pixels along each axis; keep a
    # pixel of background between it and the patch wherever that leaves a pixel to spare.
    widest = HALF_EXTENT * widest_radius * image_size + 1.0
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
    need = HALF_EXTENT * (main_r + dist_r) + _DISTRACTOR_GAP
    main_y, main_x = _uniform_centers(main_r, image_size, 0.0, rng)
    dist_y, dist_x = _uniform_centers(dist_r, image_size, 0.0, rng)
    while True:
        bad = np.flatnonzero((np.abs(main_y - dist_y) < need) & (np.abs(main_x - dist_x) < need))
        if bad.size == 0:
            return main_r, main_y, main_x, dist_r, dist_y, dist_x
        main_y[bad], main_x[bad] = _uniform_centers(main_r[bad], image_size, 0.0, rng)
        dist_y[bad], dist_x[bad] = _uniform_centers(dist_r[bad], image_size, 0.0, rng)


def grating(
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


def blurred_noise(
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


def generate_family(
    cue: str,
    labels: NDArray[np.int64],
    cue_classes: NDArray[np.int64],
    image_size: int,
    num_classes: int,
    rng: np.random.Generator,
    radius_range: tuple[float, float],
    tints: NDArray[np.float32],
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Images (before pixel noise) and main-object masks of every cue but the tint; `tints` are
    the classes' tints (`datasets.BACKGROUND_TINTS[:num_classes]`), which objects avoid."""
    n = int(labels.shape[0])
    size = image_size
    distractor = None
    if cue == "distractor":
        main_r, main_y, main_x, dist_r, dist_y, dist_x = _distractor_layout(n, size, rng)
        distractor = render_shapes(cue_classes, dist_y, dist_x, dist_r, size, num_classes)
    else:
        radius = rng.uniform(*radius_range, size=n) * size
        main_r = radius
        if cue == "patch":
            main_y, main_x = _patch_centers(radius, size, rng, radius_range[1])
        elif cue == "frame":
            main_y, main_x = _uniform_centers(radius, size, float(_frame_width(size)), rng)
        else:
            main_y, main_x = _uniform_centers(radius, size, 0.0, rng)
    masks = render_shapes(labels, main_y, main_x, main_r, size, num_classes)

    base = neutral_base(n, rng)
    images = np.broadcast_to(base[:, None, None, :], (n, size, size, 3)).copy()
    if cue == "background_texture":
        images += grating(cue_classes, size, num_classes, rng)[..., None]
    elif cue == "blur":
        images += blurred_noise(cue_classes, size, rng)[..., None]
    elif cue in ("patch", "frame"):
        jitter = rng.uniform(-TINT_JITTER, TINT_JITTER, size=(n, 3)).astype(np.float32)
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
    min_distance = np.array([MIN_COLOR_DISTANCE] * num_classes + [_MIN_BASE_DISTANCE])
    objects = draw_object_colors(n, avoid, rng, min_distance)
    if distractor is not None:
        others = draw_object_colors(n, avoid, rng, min_distance)
        images = np.where(distractor[..., None], others[:, None, None, :], images)
    images = np.where(masks[..., None], objects[:, None, None, :], images)
    return images.astype(np.float32, copy=False), masks
