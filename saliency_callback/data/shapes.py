"""Drawing the synthetic beds' objects: shape masks, their sizes and colours (`datasets`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Object size: every shape below has an area of about pi * r**2 and fits in a
# box of half-width 1.25 * r. With r drawn uniformly in this range (as a
# fraction of the image side), masks cover about 11% to 26% of the image
# (pixelation widens this to about 9% to 29% at 16x16).
RADIUS_RANGE = (0.19, 0.28)
HALF_EXTENT = 1.25
# Per-image uniform jitter of the tint, per channel.
TINT_JITTER = 0.05
# Object colours are uniform in the RGB cube minus balls of this radius around
# every tint in use, so the object always contrasts with the background and
# its colour distribution is the same for every class.
MIN_COLOR_DISTANCE = 0.3

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
    half = HALF_EXTENT * r
    depth = dy + half  # 0 at the apex, 2 * half at the base
    return (depth >= 0) & (depth <= 2 * half) & (np.abs(dx) <= 0.5 * depth)


def _cross(dy: NDArray[np.float64], dx: NDArray[np.float64], r: NDArray[np.float64]) -> Any:
    arm, width = 1.2 * r, 0.4 * r
    ady, adx = np.abs(dy), np.abs(dx)
    return ((ady <= width) & (adx <= arm)) | ((adx <= width) & (ady <= arm))


def _ring(dy: NDArray[np.float64], dx: NDArray[np.float64], r: NDArray[np.float64]) -> Any:
    d2 = dy**2 + dx**2
    return (d2 <= (HALF_EXTENT * r) ** 2) & (d2 >= (0.75 * r) ** 2)


def _diamond(dy: NDArray[np.float64], dx: NDArray[np.float64], r: NDArray[np.float64]) -> Any:
    return np.abs(dy) + np.abs(dx) <= HALF_EXTENT * r


_PREDICATES: tuple[_Predicate, ...] = (_circle, _square, _triangle, _cross, _ring, _diamond)


def render_shapes(
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


def draw_masks(
    labels: NDArray[np.int64],
    image_size: int,
    num_classes: int,
    rng: np.random.Generator,
    radius_range: tuple[float, float] = RADIUS_RANGE,
) -> NDArray[np.bool_]:
    """Draws one randomly placed and sized object per image, by class."""
    n = int(labels.shape[0])
    low, high = radius_range
    radius = rng.uniform(low, high, size=n) * image_size
    # Pixel centres sit at i + 0.5, so centres in [margin, S - margin] keep the
    # object inside the image with at least one background pixel around it.
    margin = HALF_EXTENT * radius + 1.0
    center_y = rng.uniform(margin, image_size - margin, size=n)
    center_x = rng.uniform(margin, image_size - margin, size=n)
    return render_shapes(labels, center_y, center_x, radius, image_size, num_classes)


def draw_object_colors(
    n: int,
    avoid: NDArray[np.floating[Any]],
    rng: np.random.Generator,
    min_distance: float | NDArray[np.float64] = MIN_COLOR_DISTANCE,
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
