"""Probe images made displayable: to `uint8` RGB, and scaled to a readable tile size."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from saliency_callback.output.checks import (
    RANGE_TOLERANCE,
    Float32Array,
    Uint8Array,
    check_positive_int,
    check_tiles,
    check_value_range,
)

# --------------------------------------------------------------------------- #
# Images.
# --------------------------------------------------------------------------- #


def _infer_range(lo: float, hi: float) -> tuple[float, float] | None:
    """Display range for float images whose values span [lo, hi]; None: per-image min/max."""
    tol = RANGE_TOLERANCE
    if lo >= -tol and hi <= 1.0 + tol:
        return 0.0, 1.0
    if lo >= -tol and hi <= 255.0 + tol:
        return 0.0, 255.0
    if lo >= -1.0 - tol and hi <= 1.0 + tol:
        return -1.0, 1.0
    return None


def _scale_to_uint8(
    f: npt.NDArray[np.float32], value_range: tuple[float, float] | None
) -> Uint8Array:
    """Maps float images (modified in place) to uint8 as described in `to_display_rgb`."""
    lo_all, hi_all = f.min(), f.max()  # NaN and inf propagate to these
    if not (np.isfinite(lo_all) and np.isfinite(hi_all)):
        np.nan_to_num(f, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        lo_all, hi_all = f.min(), f.max()
    vr = value_range if value_range is not None else _infer_range(float(lo_all), float(hi_all))
    if vr is not None:
        lo: Any = np.float32(vr[0])
        scale: Any = np.float32(255.0 / (vr[1] - vr[0]))
    else:  # per-image min/max
        lo = f.min(axis=(1, 2, 3), keepdims=True)
        span = f.max(axis=(1, 2, 3), keepdims=True) - lo
        scale = np.divide(np.float32(255.0), span, out=np.zeros_like(span), where=span > 0)
    # (f - lo) * scale, rounded half up, clipped to [0, 255]; in place.
    f *= scale
    f += np.float32(0.5) - lo * scale
    np.clip(f, 0.0, 255.0, out=f)
    return f.astype(np.uint8)


def to_display_rgb(
    images: npt.ArrayLike, value_range: tuple[float, float] | None = None
) -> Uint8Array:
    """Converts probe images to displayable `uint8` RGB.

    How values are mapped to 0..255:

    - `value_range=(low, high)` given: `low` -> 0 and `high` -> 255 (clipped),
      whatever the dtype.
    - otherwise, `uint8` images are used as they are;
    - otherwise (float or other integer dtypes) the range is inferred from the
      whole batch (with a 1e-3 tolerance for rounding):
      all values in [0, 1] -> [0, 1]; else all in [0, 255] -> [0, 255];
      else all in [-1, 1] -> [-1, 1]; else (e.g. mean/std-standardised inputs)
      each image is stretched by its own min/max (a constant image becomes black).

    NaN and infinite values are treated as 0. Grayscale images (rank 3, or one
    channel) are repeated into three equal channels.

    Args:
        images: Array of shape `(N, H, W)`, `(N, H, W, 1)` or `(N, H, W, 3)`.
        value_range: Optional `(low, high)` range of the input values.

    Returns:
        A `uint8` array of shape `(N, H, W, 3)`.

    Raises:
        ValueError: If the shape is not one of the above or `value_range` is invalid.
    """
    vr = check_value_range(value_range)
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            "expected `images` of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3), "
            f"received shape {np.asarray(images).shape}"
        )
    if x.dtype == np.uint8 and vr is None:
        out = x
    elif x.size == 0:
        out = np.zeros(x.shape, dtype=np.uint8)
    else:
        out = _scale_to_uint8(x.astype(np.float32), vr)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return out.copy() if out is x else np.ascontiguousarray(out)  # never alias the input


def tile_size(height: int, width: int, min_tile: int = 96, max_tile: int = 160) -> tuple[int, int]:
    """Computes the displayed size of one tile for probes of size `(height, width)`.

    - If the longer side exceeds `max_tile`, the tile is scaled down so that the
      longer side equals `max_tile` (aspect ratio kept, each side at least 1).
    - Otherwise the probe is scaled up by the smallest integer factor that makes
      the longer side at least `min_tile`, but no more than `max_tile` allows
      (e.g. 28x28 -> 112x112, 32x32 -> 96x96, 64x64 -> 128x128, 96x96 stays).

    Args:
        height: Probe height in pixels.
        width: Probe width in pixels.
        min_tile: Desired minimum length of the longer side.
        max_tile: Maximum length of the longer side.

    Returns:
        `(tile_height, tile_width)`.

    Raises:
        ValueError: If a size is not positive or `max_tile < min_tile`.
    """
    h = check_positive_int("height", height)
    w = check_positive_int("width", width)
    lo, hi = check_tiles(min_tile, max_tile)
    long_side = max(h, w)
    if long_side > hi:
        scale = hi / long_side
        return max(1, round(h * scale)), max(1, round(w * scale))
    factor = max(1, min(-(-lo // long_side), hi // long_side))
    return h * factor, w * factor


def upscale_nearest(images: npt.ArrayLike, factor: int) -> Uint8Array:
    """Upscales a stack by an integer factor, each pixel becoming a `factor` x `factor` block.

    Args:
        images: Array of shape `(N, H, W, C)`.
        factor: Positive integer scale factor.

    Returns:
        An array of shape `(N, H * factor, W * factor, C)` with the input's dtype.

    Raises:
        ValueError: If `factor` < 1 or `images` is not 4-D.
    """
    k = check_positive_int("factor", factor)
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"expected `images` of shape (N, H, W, C), received shape {x.shape}")
    if k == 1:
        return x.copy()
    return np.repeat(np.repeat(x, k, axis=2), k, axis=1)


def resize_stack(images: npt.ArrayLike, size: tuple[int, int]) -> Uint8Array:
    """Resizes a stack of `uint8` images to `size`.

    Exact integer upscales use nearest neighbour (`upscale_nearest`), so pixels of
    small probes stay crisp squares. Any other size uses Pillow's bilinear filter,
    which is antialiased when shrinking.

    Args:
        images: `uint8` array of shape `(N, H, W, C)` with C in {1, 3}.
        size: Target `(height, width)`.

    Returns:
        A `uint8` array of shape `(N, height, width, C)`.

    Raises:
        ValueError: If `images` does not have that shape or dtype.
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.dtype != np.uint8 or x.shape[-1] not in (1, 3):
        raise ValueError(
            "expected `images` as uint8 of shape (N, H, W, C) with C in {1, 3}, "
            f"received {x.dtype} of shape {x.shape}"
        )
    th = check_positive_int("height", size[0])
    tw = check_positive_int("width", size[1])
    n, h, w, c = x.shape
    if th % h == 0 and tw % w == 0 and th // h == tw // w:
        return upscale_nearest(x, th // h)
    out = np.empty((n, th, tw, c), dtype=np.uint8)
    for i in range(n):
        img = Image.fromarray(x[i, ..., 0] if c == 1 else x[i])
        resized = np.asarray(img.resize((tw, th), Image.Resampling.BILINEAR))
        out[i] = resized.reshape(th, tw, c)
    return out


def resize_maps(maps: Float32Array, size: tuple[int, int]) -> Float32Array:
    """Bilinear (antialiased) resize of float32 maps `(N, H, W)` with Pillow's "F" mode."""
    th, tw = size
    out = np.empty((maps.shape[0], th, tw), dtype=np.float32)
    for i, m in enumerate(maps):
        img = Image.fromarray(np.ascontiguousarray(m, dtype=np.float32))  # mode "F"
        out[i] = np.asarray(img.resize((tw, th), Image.Resampling.BILINEAR))
    return out
