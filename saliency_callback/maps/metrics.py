"""Localisation metrics: how much of a saliency map falls on the object.

Every function takes a batch of saliency maps of shape `(N, H, W)` and a batch
of foreground masks of the same shape, and returns one float64 value per image,
shape `(N,)`. An image whose mask is empty gets `NaN` (the question "how much
saliency is on the object" has no answer without an object), so aggregate with
`np.nanmean`.

All metrics share the same chance level: a map that ignores the object (for
example i.i.d. noise, or a constant map) scores the mask's area fraction in
expectation, which `chance_level` returns. A model that has learned a
background shortcut scores at or below chance; one that looks at the object
scores well above it.

The functions are pure numpy (plus `scipy.ndimage` for the pointing-game
tolerance), vectorised over the batch, and cheap enough to run every epoch on a
few dozen 64x64 maps.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = [
    "chance_level",
    "check_maps_and_masks",
    "check_masks",
    "hotspot",
    "mass_in_mask",
    "masks_from_boxes",
    "pointing_game",
    "rank_in_mask",
]

_RANK_MSG = "expected `{name}` of rank 3 (N, H, W), received shape {shape}"
_SHAPE_MSG = "expected `masks` of shape {expected}, received {received}"
_MAPS_DTYPE_MSG = "expected `maps` with an integer or float dtype, received dtype {dtype}"
_MAPS_FINITE_MSG = (
    "expected `maps` to contain only finite values, received {nan} NaN and {inf} infinite values"
)
_MASKS_DTYPE_MSG = "expected `masks` with a boolean, integer or float dtype, received dtype {dtype}"
_MASKS_BINARY_MSG = (
    "expected `masks` to be boolean or to contain only 0 and 1, received values such as {values}"
)
_TOLERANCE_TYPE_MSG = "expected `tolerance` to be an int, received {value!r} of type {type}"
_TOLERANCE_VALUE_MSG = "expected `tolerance` >= 0, received {value}"


def check_masks(masks: ArrayLike) -> NDArray[np.bool_]:
    """Validates a batch of foreground masks and returns it as booleans.

    Args:
        masks: Array of shape `(N, H, W)`. Boolean, or integer/float arrays
            containing only 0 and 1 (converted to boolean).

    Returns:
        A boolean array of shape `(N, H, W)`.

    Raises:
        TypeError: If `masks` has a dtype other than bool, integer or float.
        ValueError: If `masks` is not rank 3, or contains values other than
            0 and 1 (including NaN).

    Example:

    >>> check_masks([[[0, 1], [1, 0]]]).dtype
    dtype('bool')
    """
    arr = np.asarray(masks)
    if arr.dtype.kind not in "biuf":
        raise TypeError(_MASKS_DTYPE_MSG.format(dtype=arr.dtype))
    if arr.ndim != 3:
        raise ValueError(_RANK_MSG.format(name="masks", shape=arr.shape))
    if arr.dtype.kind == "b":
        return arr
    is_binary = (arr == 0) | (arr == 1)
    if not is_binary.all():
        bad = np.unique(arr[~is_binary])[:5]
        raise ValueError(_MASKS_BINARY_MSG.format(values=bad.tolist()))
    return arr == 1


def masks_from_boxes(boxes: ArrayLike, shape: tuple[int, int, int]) -> NDArray[np.bool_]:
    """Turns pixel boxes into foreground masks.

    Box `i` is `(x0, y0, x1, y1)` in pixels (x to the right, y down), with the end
    excluded, as in slicing: the mask is `True` on rows `y0 <= y < y1` and columns
    `x0 <= x < x1`. Values are rounded to whole pixels. A box with `x0 == x1` or
    `y0 == y1` gives an empty mask.

    Args:
        boxes: Array of shape `(N, 4)`, integer or float.
        shape: `(N, H, W)` of the masks to build.

    Returns:
        A boolean array of shape `(N, H, W)`.

    Raises:
        TypeError: If `boxes` is not numeric.
        ValueError: If `boxes` is not `(N, 4)`, holds NaN/inf, or a box is inverted
            (`x1 < x0` or `y1 < y0`) or reaches outside the image.

    Example:

    >>> masks_from_boxes([[1, 0, 3, 1]], (1, 2, 4)).astype(int)
    array([[[0, 1, 1, 0],
            [0, 0, 0, 0]]])
    """
    arr = np.asarray(boxes)
    n, height, width = shape
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"expected `boxes` to be a numeric (N, 4) array, received dtype {arr.dtype}"
        )
    if arr.shape != (n, 4):
        raise ValueError(
            f"expected `boxes` of shape ({n}, 4) as (x0, y0, x1, y1) pixels, one per image; "
            f"received shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("expected finite `boxes`, received NaN or inf values")
    b = np.rint(arr).astype(np.int64)
    x0, y0, x1, y1 = b.T
    inverted = np.flatnonzero((x1 < x0) | (y1 < y0))
    if len(inverted):
        i = int(inverted[0])
        raise ValueError(
            f"expected `boxes` as (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1; received "
            f"boxes[{i}]={arr[i].tolist()} (inverted)"
        )
    outside = np.flatnonzero((x0 < 0) | (y0 < 0) | (x1 > width) | (y1 > height))
    if len(outside):
        i = int(outside[0])
        raise ValueError(
            f"expected `boxes` inside the {width}x{height} image (0 <= x0 <= x1 <= {width}, "
            f"0 <= y0 <= y1 <= {height}); received boxes[{i}]={arr[i].tolist()}"
        )
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    return (
        (rows >= y0[:, None, None])
        & (rows < y1[:, None, None])
        & (cols >= x0[:, None, None])
        & (cols < x1[:, None, None])
    )


def _masks(maps: ArrayLike, masks: ArrayLike | None, boxes: ArrayLike | None) -> ArrayLike:
    """The masks of a metric call given `masks=` or `boxes=` (exactly one)."""
    if (masks is None) == (boxes is None):
        raise ValueError(
            "expected exactly one of `masks` and `boxes`, received "
            f"{'both' if masks is not None else 'neither'}"
        )
    if boxes is None:
        return masks  # type: ignore[return-value]
    shape = np.shape(maps)
    if len(shape) != 3:
        raise ValueError(_RANK_MSG.format(name="maps", shape=shape))
    return masks_from_boxes(boxes, shape)  # type: ignore[arg-type]


def check_maps_and_masks(
    maps: ArrayLike, masks: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Validates a batch of saliency maps and matching masks.

    Args:
        maps: Saliency maps of shape `(N, H, W)` with an integer or float
            dtype. Every value must be finite.
        masks: Foreground masks of the same shape as `maps`; see
            `check_masks` for the accepted dtypes.

    Returns:
        A tuple `(maps, masks)`: the maps as float64 and the masks as bool,
        both of shape `(N, H, W)`.

    Raises:
        TypeError: If `maps` is not an integer or float array (booleans are
            rejected), or `masks` has an unsupported dtype.
        ValueError: If either argument is not rank 3, their shapes differ,
            `maps` contains NaN or infinite values, or `masks` is not binary.

    Example:

    >>> maps, masks = check_maps_and_masks(np.ones((2, 4, 4)), np.zeros((2, 4, 4)))
    >>> maps.dtype, masks.dtype
    (dtype('float64'), dtype('bool'))
    """
    maps_arr = np.asarray(maps)
    if maps_arr.dtype.kind not in "iuf":
        raise TypeError(_MAPS_DTYPE_MSG.format(dtype=maps_arr.dtype))
    if maps_arr.ndim != 3:
        raise ValueError(_RANK_MSG.format(name="maps", shape=maps_arr.shape))
    maps_arr = maps_arr.astype(np.float64, copy=False)
    finite = np.isfinite(maps_arr)
    if not finite.all():
        n_nan = int(np.isnan(maps_arr).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise ValueError(_MAPS_FINITE_MSG.format(nan=n_nan, inf=n_inf))
    masks_arr = check_masks(masks)
    if masks_arr.shape != maps_arr.shape:
        raise ValueError(_SHAPE_MSG.format(expected=maps_arr.shape, received=masks_arr.shape))
    return maps_arr, masks_arr


def _check_tolerance(tolerance: int) -> int:
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Integral):
        raise TypeError(_TOLERANCE_TYPE_MSG.format(value=tolerance, type=type(tolerance).__name__))
    if tolerance < 0:
        raise ValueError(_TOLERANCE_VALUE_MSG.format(value=tolerance))
    return int(tolerance)


def _dilate(masks: NDArray[np.bool_], tolerance: int) -> NDArray[np.bool_]:
    """Dilates each `(H, W)` mask by a Euclidean disk of radius `tolerance`."""
    if tolerance == 0 or masks.size == 0:
        return masks
    offsets = np.arange(-tolerance, tolerance + 1)
    disk = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= tolerance**2
    # A leading axis of size 1 keeps the dilation from leaking between images.
    dilated: NDArray[np.bool_] = ndimage.binary_dilation(masks, structure=disk[None])
    return dilated


def _safe_divide(
    numerator: NDArray[np.float64], denominator: NDArray[np.float64], valid: ArrayLike
) -> NDArray[np.float64]:
    """`numerator / denominator` where `valid`, NaN elsewhere, without warnings."""
    out = np.full(numerator.shape, np.nan, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=np.asarray(valid, dtype=bool))
    return out


def mass_in_mask(
    maps: ArrayLike, masks: ArrayLike | None = None, *, boxes: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Relevance mass accuracy: the share of saliency mass inside the mask.

    For each image, `sum(map * mask) / sum(map)`, computed on the non-negative
    part of the map: negative values are clipped to 0 first, so evidence
    *against* the class neither adds to nor cancels mass. This is the
    "relevance mass accuracy" of Arras et al., "CLEVR-XAI: A benchmark dataset
    for the ground truth evaluation of neural network explanations" (2022).

    Args:
        maps: Saliency maps of shape `(N, H, W)`, integer or float, finite.
        masks: Foreground masks of shape `(N, H, W)`, boolean or 0/1.
        boxes: Instead of `masks`, `(N, 4)` pixel boxes `(x0, y0, x1, y1)` (see
            `masks_from_boxes`).

    Returns:
        Float64 array of shape `(N,)` with values in `[0, 1]`. `NaN` where the
        mask is empty or the clipped map has no mass (all values <= 0).

    Raises:
        TypeError: On unsupported dtypes (see `check_maps_and_masks`).
        ValueError: On wrong ranks, mismatched shapes, non-finite maps or
            non-binary masks.

    Example:

    >>> maps = np.array([[[1.0, 1.0], [2.0, -5.0]]])
    >>> masks = np.array([[[True, False], [True, False]]])
    >>> mass_in_mask(maps, masks)
    array([0.75])
    """
    maps_arr, masks_arr = check_maps_and_masks(maps, _masks(maps, masks, boxes))
    positive = np.clip(maps_arr, 0.0, None)
    total = positive.sum(axis=(1, 2))
    inside = np.where(masks_arr, positive, 0.0).sum(axis=(1, 2))
    valid = (total > 0) & masks_arr.any(axis=(1, 2))
    return _safe_divide(inside, total, valid)


def pointing_game(
    maps: ArrayLike,
    masks: ArrayLike | None = None,
    tolerance: int = 0,
    *,
    boxes: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Pointing game: whether the map's maximum falls on the object.

    Each image scores 1.0 if its maximum lies inside the mask and 0.0
    otherwise. With `tolerance > 0` the mask is first dilated by a Euclidean
    disk of that radius in pixels (every pixel within distance `tolerance` of
    the object counts as a hit), as in Zhang et al., "Top-down neural attention
    by excitation backprop" (2016), who use 15 pixels.

    Ties: when several pixels share the maximum value, the score is the
    fraction of those tied maxima that lie inside the (dilated) mask, i.e. the
    expected score under random tie-breaking. A constant map therefore scores
    the (dilated) mask's area fraction, which is chance, not a free hit.
    Maxima are compared exactly (`map == map.max()`), on the raw, unclipped
    map.

    Args:
        maps: Saliency maps of shape `(N, H, W)`, integer or float, finite.
        masks: Foreground masks of shape `(N, H, W)`, boolean or 0/1.
        tolerance: Non-negative int, dilation radius in pixels.

    Returns:
        Float64 array of shape `(N,)` with values in `[0, 1]` (exactly 0.0 or
        1.0 unless there are ties). `NaN` where the mask is empty (before
        dilation).

    Raises:
        TypeError: On unsupported dtypes, or a non-int `tolerance`.
        ValueError: On wrong ranks, mismatched shapes, non-finite maps,
            non-binary masks, or a negative `tolerance`.

    Example:

    >>> maps = np.array([[[0.0, 0.0], [0.0, 1.0]], [[3.0, 3.0], [0.0, 0.0]]])
    >>> masks = np.array([[[0, 0], [0, 1]], [[1, 0], [0, 0]]])
    >>> pointing_game(maps, masks)
    array([1. , 0.5])
    """
    maps_arr, masks_arr = check_maps_and_masks(maps, _masks(maps, masks, boxes))
    tolerance = _check_tolerance(tolerance)
    n = maps_arr.shape[0]
    if maps_arr[0:1].size == 0:  # N == 0, or images with no pixels
        return np.full(n, np.nan, dtype=np.float64)
    flat = maps_arr.reshape(n, -1)
    target = _dilate(masks_arr, tolerance).reshape(n, -1)
    is_max = flat == flat.max(axis=1, keepdims=True)
    hits = (is_max & target).sum(axis=1).astype(np.float64)
    n_max = is_max.sum(axis=1).astype(np.float64)
    return _safe_divide(hits, n_max, masks_arr.any(axis=(1, 2)))


def rank_in_mask(
    maps: ArrayLike, masks: ArrayLike | None = None, *, boxes: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Relevance rank accuracy: the share of the top-K pixels on the object.

    With `K = mask.sum()`, takes the `K` pixels with the highest saliency and
    returns the fraction of them inside the mask (Arras et al., 2022). Pixels
    are ranked by their raw, unclipped values.

    Ties: if the K-th highest value is shared by several pixels, only some of
    them fit in the top K; each tied pixel is counted with the probability it
    would be picked under random tie-breaking. A constant map therefore scores
    the mask's area fraction (chance).

    Args:
        maps: Saliency maps of shape `(N, H, W)`, integer or float, finite.
        masks: Foreground masks of shape `(N, H, W)`, boolean or 0/1.
        boxes: Instead of `masks`, `(N, 4)` pixel boxes `(x0, y0, x1, y1)` (see
            `masks_from_boxes`).

    Returns:
        Float64 array of shape `(N,)` with values in `[0, 1]`. `NaN` where the
        mask is empty.

    Raises:
        TypeError: On unsupported dtypes (see `check_maps_and_masks`).
        ValueError: On wrong ranks, mismatched shapes, non-finite maps or
            non-binary masks.

    Example:

    >>> maps = np.array([[[4.0, 3.0], [2.0, 1.0]]])
    >>> masks = np.array([[[True, False], [True, False]]])
    >>> rank_in_mask(maps, masks)  # top-2 pixels are 4 (in) and 3 (out)
    array([0.5])
    """
    maps_arr, masks_arr = check_maps_and_masks(maps, _masks(maps, masks, boxes))
    n = maps_arr.shape[0]
    if maps_arr[0:1].size == 0:
        return np.full(n, np.nan, dtype=np.float64)
    flat = maps_arr.reshape(n, -1)
    inside = masks_arr.reshape(n, -1)
    n_pixels = flat.shape[1]
    k = inside.sum(axis=1)
    # The K-th highest value sits at ascending index P - K.
    kth_index = np.clip(n_pixels - k, 0, n_pixels - 1)
    kth_value = np.sort(flat, axis=1)[np.arange(n), kth_index][:, None]
    above = flat > kth_value
    tied = flat == kth_value
    n_above = above.sum(axis=1)
    n_tied = tied.sum(axis=1)  # >= 1: the K-th value itself
    # All pixels strictly above the K-th value are in the top K; the remaining
    # K - n_above slots go to a uniformly random subset of the tied pixels.
    expected_inside = (above & inside).sum(axis=1) + (k - n_above) * (tied & inside).sum(
        axis=1
    ) / n_tied
    return _safe_divide(expected_inside.astype(np.float64), k.astype(np.float64), k > 0)


def chance_level(masks: ArrayLike, tolerance: int = 0) -> NDArray[np.float64]:
    """Expected metric value for a map that ignores the object.

    This is the mask's area fraction `mask.sum() / (H * W)`: the expected
    score of `mass_in_mask`, `pointing_game` and `rank_in_mask` for a map
    whose values do not depend on the object (i.i.d. noise, a constant map,
    or a map that only looks at a background shortcut placed independently
    of the object). Scores at or below this level mean the map is not on the
    object.

    With `tolerance > 0` it returns the area fraction of the mask dilated as
    in `pointing_game(..., tolerance=tolerance)`, the chance level of that
    tolerant pointing game.

    Empty masks give `NaN` (not 0.0), matching the metrics, so that
    `metric - chance_level(masks)` is `NaN` exactly where the metric is and
    `np.nanmean` skips the same images in both.

    Args:
        masks: Foreground masks of shape `(N, H, W)`, boolean or 0/1.
        tolerance: Non-negative int, dilation radius in pixels (see
            `pointing_game`).

    Returns:
        Float64 array of shape `(N,)` with values in `(0, 1]`, `NaN` where the
        mask is empty.

    Raises:
        TypeError: If `masks` has an unsupported dtype or `tolerance` is not
            an int.
        ValueError: If `masks` is not rank 3 or not binary, or `tolerance`
            is negative.

    Example:

    >>> chance_level(np.array([[[1, 0], [0, 0]], [[1, 1], [1, 1]]]))
    array([0.25, 1.  ])
    """
    masks_arr = check_masks(masks)
    tolerance = _check_tolerance(tolerance)
    n, height, width = masks_arr.shape
    area = _dilate(masks_arr, tolerance).sum(axis=(1, 2)).astype(np.float64)
    n_pixels = np.full(n, float(height * width))
    return _safe_divide(area, n_pixels, masks_arr.any(axis=(1, 2)))


def _top_share(maps: NDArray[np.float64], count: int) -> NDArray[np.float64]:
    """Share of each (non-negative, sum-1) map's mass in its `count` highest pixels."""
    flat = maps.reshape(len(maps), -1)
    return np.partition(flat, flat.shape[1] - count, axis=1)[:, -count:].sum(axis=1)


def hotspot(
    maps: ArrayLike, top: float = 0.05, *, draws: int = 8, seed: int = 0
) -> tuple[float, float]:
    """How much the probes' saliency piles up at the same pixels, whatever the image: a
    mask-free signal of a fixed-position shortcut (a watermark, a corner tag, a border).

    Each map's non-negative part is scaled to sum 1 and pooled to at most 32 pixels per side
    (`HOTSPOT_SIDE`). With `P` the number of (pooled) pixels and
    `k = ceil(top * P)`, the score is the share of the *mean* map's mass in its `k` highest
    pixels, divided by the mean share of each map's mass in its own `k` highest pixels:

    - about 1 when every map peaks at the same pixels (averaging loses no concentration);
    - about `top / (each map's own share)` when the maps peak at unrelated places.

    The chance level is the same score after moving each map by a random circular shift
    (`draws` seeded draws, averaged): the maps keep their own shape but lose any common
    position. A model that reads objects placed at random scores near chance; one that reads a
    cue at a fixed place scores above it. Maps spread evenly over the whole image (a
    background colour, texture or blur shortcut) score near chance too: this signal cannot see
    shortcuts that have no position.

    Args:
        maps: Saliency maps `(N, H, W)`, finite, N >= 2 (maps with no positive mass are
            left out).
        top: The fraction of pixels that counts as the hotspot, in (0, 1). Defaults to `0.05`.
        draws: Random shifts averaged for the chance level. Defaults to `8`.
        seed: Seed of the shifts. Defaults to `0`.

    Returns:
        `(score, chance)`, both NaN with fewer than two usable maps.

    Example:
    >>> maps = np.zeros((8, 32, 32)); maps[:, :4, :4] = 1.0   # every map on the same corner
    >>> score, chance = hotspot(maps)
    >>> round(score, 2), chance < 0.5
    (1.0, True)
    """
    arr = np.asarray(maps)
    if arr.dtype.kind not in "iuf":
        raise TypeError(_MAPS_DTYPE_MSG.format(dtype=arr.dtype))
    if arr.ndim != 3:
        raise ValueError(_RANK_MSG.format(name="maps", shape=arr.shape))
    if not np.isfinite(arr).all():
        raise ValueError("expected `maps` to contain only finite values")
    if not 0 < top < 1:
        raise ValueError(f"expected `top` in (0, 1), received top={top}")
    pooled = _pool(np.clip(arr.astype(np.float32), 0.0, None), HOTSPOT_SIDE).astype(np.float64)
    total = pooled.sum(axis=(1, 2))
    positive = pooled[total > 0] / total[total > 0, None, None]
    n, height, width = positive.shape
    if n < 2:
        return math.nan, math.nan
    count = max(1, math.ceil(top * height * width))
    own = float(_top_share(positive, count).mean())
    score = float(_top_share(positive.mean(axis=0)[None], count)[0]) / own
    rng = np.random.default_rng(seed)
    flat, first = positive.ravel(), np.arange(n)[:, None, None] * (height * width)
    chance = []
    for _ in range(draws):  # each map moved by its own circular shift, in one gather
        dy, dx = rng.integers(0, height, n), rng.integers(0, width, n)
        rows = (np.arange(height)[None, :] - dy[:, None]) % height
        cols = (np.arange(width)[None, :] - dx[:, None]) % width
        # `take` of flat indices: the same copy as `positive[i, rows, cols]`, ~20x faster.
        moved = np.take(flat, first + rows[:, :, None] * width + cols[:, None, :])
        chance.append(float(_top_share(moved.mean(axis=0)[None], count)[0]) / own)
    return score, float(np.mean(chance))


HOTSPOT_SIDE = 32
"""`hotspot` pools maps to at most this many pixels per side (sums over square blocks): the
position of a hotspot survives, and the cost stays flat for large probes."""


def _pool(maps: NDArray[np.float32], side: int) -> NDArray[np.float32]:
    """Sums square blocks so that no side exceeds `side` (zero-padding ragged edges)."""
    n, height, width = maps.shape
    f = max(1, math.ceil(max(height, width) / side))
    if f == 1:
        return maps
    padded = np.pad(maps, ((0, 0), (0, -height % f), (0, -width % f)))
    h, w = int(padded.shape[1]) // f, int(padded.shape[2]) // f
    return padded.reshape(n, h, f, w, f).sum(axis=(2, 4))
