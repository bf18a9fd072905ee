"""Turn saliency maps and probe images into coloured panels for TensorBoard.

Everything here is plain NumPy / SciPy / Matplotlib / Pillow; no TensorFlow import.

The pipeline used by `render_panels` is, for every probe image:

1. `to_display_rgb`: bring the user's image into displayable `uint8` RGB.
2. `gaussian_smooth`: smooth the saliency map (in probe pixels) and re-normalise it.
3. `colorize`: map the smoothed saliency through a Matplotlib colormap.
4. `overlay`: blend the heatmap over the image, weighted by the saliency itself.
5. `tile_size` / `resize_stack`: scale the three tiles to a readable size
   (integer nearest-neighbour upscaling for small probes, bilinear downscaling
   for large ones).
6. `draw_caption_strip`: optionally draw a one-line caption above the panel.

`make_grid` then packs all panels into a single image, ready for
`tf.summary.image` (shape `(1, H, W, 3)`, `uint8`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

__all__ = [
    "CAPTION_FONT_SIZE",
    "DEFAULT_COLORMAP",
    "DEFAULT_SIGNED_COLORMAP",
    "Renderer",
    "caption_height",
    "colorize",
    "draw_caption_strip",
    "gaussian_smooth",
    "make_grid",
    "overlay",
    "render_panels",
    "resize_stack",
    "tile_size",
    "to_display_rgb",
    "upscale_nearest",
    "validate_colormap",
]

DEFAULT_COLORMAP = "inferno"
"""Colormap used for ordinary (non-negative) saliency maps."""

DEFAULT_SIGNED_COLORMAP = "RdBu_r"
"""Diverging colormap used for signed maps (`signed=True`); white at 0."""

CAPTION_FONT_SIZE = 12
"""Font size (pixels) of panel captions."""

SEPARATOR_PX = 2
"""Width of the separator between the three tiles of a panel."""

BACKGROUND_RGB = (40, 40, 40)
"""Colour of tile separators and of the grid background (dark gray)."""

CAPTION_BG_RGB = (16, 16, 16)
CAPTION_FG_RGB = (235, 235, 235)
_CAPTION_MARGIN_X = 4
_ELLIPSIS = "..."  # ASCII, so that every font (including the bitmap fallback) has the glyphs.
_RANGE_TOLERANCE = 1e-3  # slack when inferring the value range of float images.

Uint8Array = npt.NDArray[np.uint8]
Float32Array = npt.NDArray[np.float32]


# --------------------------------------------------------------------------- #
# Argument validation (shared by the functions and by `Renderer`).
# --------------------------------------------------------------------------- #


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_sigma(sigma: Any) -> float:
    if not _is_real(sigma):
        raise TypeError(f"expected `sigma` to be a number, received {sigma!r}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"expected `sigma` >= 0 (pixels), received {sigma!r}")
    return float(sigma)


def _check_alpha(alpha: Any) -> float:
    if not _is_real(alpha):
        raise TypeError(f"expected `alpha` to be a number in [0, 1], received {alpha!r}")
    if not 0.0 <= alpha <= 1.0:  # also rejects NaN
        raise ValueError(f"expected `alpha` in [0, 1], received {alpha!r}")
    return float(alpha)


def _check_positive_int(name: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"expected `{name}` to be an integer, received {value!r}")
    if value < 1:
        raise ValueError(f"expected `{name}` >= 1, received {value!r}")
    return int(value)


def _check_tiles(min_tile: Any, max_tile: Any) -> tuple[int, int]:
    lo = _check_positive_int("min_tile", min_tile)
    hi = _check_positive_int("max_tile", max_tile)
    if hi < lo:
        raise ValueError(
            f"expected `max_tile` >= `min_tile`, received min_tile={lo}, max_tile={hi}"
        )
    return lo, hi


def _check_value_range(value_range: Any) -> tuple[float, float] | None:
    if value_range is None:
        return None
    try:
        lo, hi = value_range
    except (TypeError, ValueError):
        raise TypeError(
            f"expected `value_range` to be None or a pair (low, high), received {value_range!r}"
        ) from None
    if not (_is_real(lo) and _is_real(hi)):
        raise TypeError(f"expected `value_range` to hold two numbers, received {value_range!r}")
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(
            f"expected `value_range` = (low, high) with finite low < high, received {value_range!r}"
        )
    return float(lo), float(hi)


def validate_colormap(name: Any) -> str:
    """Checks that `name` is a registered Matplotlib colormap.

    Meant to be called by callers at construction time, so that a typo fails
    immediately instead of at the first rendering epoch.

    Args:
        name: Colormap name, e.g. `"inferno"`, `"viridis"`, `"jet"`, `"RdBu_r"`.

    Returns:
        The name, unchanged.

    Raises:
        TypeError: If `name` is not a string.
        ValueError: If no colormap of that name is registered in `matplotlib.colormaps`.
    """
    if not isinstance(name, str):
        raise TypeError(f"expected `colormap` to be a string, received {name!r}")
    if name not in matplotlib.colormaps:
        close = difflib.get_close_matches(name, list(matplotlib.colormaps), n=3)
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(
            f"unknown `colormap`, received {name!r}; expected a name registered in "
            f"`matplotlib.colormaps` such as 'inferno', 'viridis', 'magma' or 'jet'.{hint}"
        )
    return name


def _resolve_colormap(colormap: str | None, signed: bool) -> str:
    if colormap is None:
        return DEFAULT_SIGNED_COLORMAP if signed else DEFAULT_COLORMAP
    return validate_colormap(colormap)


def _as_maps(maps: npt.ArrayLike) -> Float32Array:
    arr = np.asarray(maps, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"expected `maps` of shape (N, H, W), received shape {arr.shape}")
    return arr


def _unit_maps(maps: npt.ArrayLike, signed: bool) -> Float32Array:
    """Maps as finite float32 clipped to [0, 1] (or [-1, 1] when `signed`); NaN -> 0."""
    arr = _as_maps(maps)
    lo = -1.0 if signed else 0.0
    return np.clip(np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=lo), lo, 1.0)


# --------------------------------------------------------------------------- #
# Maps: smoothing and colouring.
# --------------------------------------------------------------------------- #


def gaussian_smooth(maps: npt.ArrayLike, sigma: float, *, signed: bool = False) -> Float32Array:
    """Smooths each saliency map with a Gaussian, then re-normalises it.

    Raw gradient saliency is speckled; a light blur (about 1 pixel) makes the
    salient regions readable. All maps are filtered in one
    `scipy.ndimage.gaussian_filter` call with `sigma=(0, s, s)` (no mixing across
    maps) and `mode="reflect"`: the border is mirrored, so saliency near the edge
    is neither darkened (as with zero padding) nor smeared in from the other side
    (as with wrapping).

    After filtering, each map is re-normalised on its own: by min/max to [0, 1]
    (a constant map becomes all zeros), or, when `signed=True`, by its largest
    absolute value to [-1, 1] (so that 0 stays 0; an all-zero map stays zero).
    Remove NaN/inf first (`render_panels` does): the blur would spread them.

    Args:
        maps: Array of shape `(N, H, W)`, values normally in [0, 1] (or [-1, 1] for
            signed maps).
        sigma: Standard deviation of the Gaussian in probe pixels. `0` disables
            smoothing: the maps are returned unchanged (as a float32 copy,
            without re-normalisation).
        signed: Whether the maps are signed (see above).

    Returns:
        A `float32` array of shape `(N, H, W)`.

    Raises:
        ValueError: If `sigma` is negative or not finite, or `maps` is not 3-D.
        TypeError: If `sigma` is not a number.
    """
    s = _check_sigma(sigma)
    arr = _as_maps(maps)
    if s == 0:
        return arr.copy()
    out = ndimage.gaussian_filter(arr, sigma=(0.0, s, s), mode="reflect")
    if signed:
        scale = np.abs(out).max(axis=(1, 2), keepdims=True)
        return np.divide(out, scale, out=np.zeros_like(out), where=scale > 0)
    lo = out.min(axis=(1, 2), keepdims=True)
    span = out.max(axis=(1, 2), keepdims=True) - lo
    # A float32 blur of a constant map is constant only up to rounding; treat a
    # span that small as constant instead of amplifying the noise to [0, 1].
    tiny = 1e-5 * np.maximum(np.abs(lo), np.abs(lo + span))
    return np.divide(out - lo, span, out=np.zeros_like(out), where=span > tiny)


@functools.lru_cache(maxsize=32)
def _lut(name: str) -> Uint8Array:
    """256-entry RGB lookup table for a colormap (built once per name)."""
    cmap = matplotlib.colormaps[name]
    # Sample the centre of each of 256 equal bins. For the usual 256-colour maps
    # this returns exactly the colormap's own table, so `lut[min(int(256 x), 255)]`
    # equals `cmap(x, bytes=True)`.
    centres = (np.arange(256, dtype=np.float64) + 0.5) / 256.0
    lut = np.ascontiguousarray(cmap(centres, bytes=True)[:, :3], dtype=np.uint8)
    lut.flags.writeable = False
    return lut


def colorize(
    maps: npt.ArrayLike, colormap: str | None = None, *, signed: bool = False
) -> Uint8Array:
    """Maps saliency values to RGB colours.

    Values are clipped to [0, 1] (NaN counts as 0) and quantised the way
    Matplotlib does it (`min(int(256 * v), 255)`), then looked up in a 256-entry
    table built once per colormap name. For signed maps, [-1, 1] is mapped
    linearly onto the colormap, so 0 lands on its centre.

    Args:
        maps: Array of shape `(N, H, W)`.
        colormap: Name of a Matplotlib colormap. Defaults to `"inferno"`, or
            `"RdBu_r"` (diverging, white at 0) when `signed=True`.
        signed: Whether the maps are signed, in [-1, 1].

    Returns:
        A `uint8` array of shape `(N, H, W, 3)`.

    Raises:
        ValueError: If `colormap` is unknown or `maps` is not 3-D.
    """
    lut = _lut(_resolve_colormap(colormap, signed))
    return _colorize_unit(_unit_maps(maps, signed), lut, signed)


def _colorize_unit(unit: Float32Array, lut: Uint8Array, signed: bool) -> Uint8Array:
    """`colorize` for maps already clipped to [0, 1] (or [-1, 1] if `signed`)."""
    if signed:
        unit = (unit + np.float32(1.0)) * np.float32(0.5)
    idx = np.minimum(unit * np.float32(256.0), np.float32(255.0)).astype(np.uint8)
    return np.take(lut, idx, axis=0)  # several times faster than lut[idx]


def overlay(
    rgb: npt.ArrayLike,
    maps: npt.ArrayLike,
    heat: npt.ArrayLike,
    alpha: float = 0.5,
    *,
    signed: bool = False,
) -> Uint8Array:
    """Blends a heatmap over images, weighted per pixel by the saliency.

    `out = (1 - w) * rgb + w * heat` with `w = alpha * map` (`alpha * |map|` for
    signed maps; maps are clipped to [0, 1] / [-1, 1] first). Where the map is 0
    the result is exactly the original image; the most salient pixels get an
    `alpha` share of the heatmap colour.

    Args:
        rgb: `uint8` images, shape `(N, H, W, 3)`.
        maps: Saliency maps, shape `(N, H, W)`.
        heat: `uint8` heatmap colours, shape `(N, H, W, 3)` (see `colorize`).
        alpha: Maximum opacity of the heatmap, in [0, 1].
        signed: Whether the maps are signed, in [-1, 1].

    Returns:
        A `uint8` array of shape `(N, H, W, 3)`.

    Raises:
        ValueError: If `alpha` is outside [0, 1] or the shapes do not match.
    """
    a = _check_alpha(alpha)
    img = np.asarray(rgb)
    col = np.asarray(heat)
    m = _unit_maps(maps, signed)
    if img.ndim != 4 or img.shape[-1] != 3 or img.shape[:3] != m.shape or col.shape != img.shape:
        raise ValueError(
            "expected `rgb` and `heat` of shape (N, H, W, 3) and `maps` of shape (N, H, W), "
            f"received rgb {img.shape}, maps {m.shape}, heat {col.shape}"
        )
    if img.dtype != np.uint8 or col.dtype != np.uint8:
        raise ValueError(
            f"expected `rgb` and `heat` of dtype uint8, received {img.dtype} and {col.dtype}"
        )
    return _blend(img, m, col, a, signed)


def _blend(
    img: Uint8Array, unit: Float32Array, col: Uint8Array, alpha: float, signed: bool
) -> Uint8Array:
    """`overlay` for validated inputs (maps already clipped)."""
    w = np.float32(alpha) * (np.abs(unit) if signed else unit)
    base = img.astype(np.float32)
    out = col.astype(np.float32)
    out -= base
    out *= w[..., None]
    out += base  # == base exactly where w == 0
    out += np.float32(0.5)  # round half up; stays within [0, 255.5)
    return out.astype(np.uint8)


# --------------------------------------------------------------------------- #
# Images.
# --------------------------------------------------------------------------- #


def _infer_range(lo: float, hi: float) -> tuple[float, float] | None:
    """Display range for float images whose values span [lo, hi]; None: per-image min/max."""
    tol = _RANGE_TOLERANCE
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
    vr = _check_value_range(value_range)
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
    h = _check_positive_int("height", height)
    w = _check_positive_int("width", width)
    lo, hi = _check_tiles(min_tile, max_tile)
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
    k = _check_positive_int("factor", factor)
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
    th = _check_positive_int("height", size[0])
    tw = _check_positive_int("width", size[1])
    n, h, w, c = x.shape
    if th % h == 0 and tw % w == 0 and th // h == tw // w:
        return upscale_nearest(x, th // h)
    out = np.empty((n, th, tw, c), dtype=np.uint8)
    for i in range(n):
        img = Image.fromarray(x[i, ..., 0] if c == 1 else x[i])
        resized = np.asarray(img.resize((tw, th), Image.Resampling.BILINEAR))
        out[i] = resized.reshape(th, tw, c)
    return out


def _resize_maps(maps: Float32Array, size: tuple[int, int]) -> Float32Array:
    """Bilinear (antialiased) resize of float32 maps `(N, H, W)` with Pillow's "F" mode."""
    th, tw = size
    out = np.empty((maps.shape[0], th, tw), dtype=np.float32)
    for i, m in enumerate(maps):
        img = Image.fromarray(np.ascontiguousarray(m, dtype=np.float32))  # mode "F"
        out[i] = np.asarray(img.resize((tw, th), Image.Resampling.BILINEAR))
    return out


# --------------------------------------------------------------------------- #
# Captions.
# --------------------------------------------------------------------------- #


FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=8)
def _font(size: int) -> FontType:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 (needs FreeType)
    except (TypeError, OSError, ImportError, AttributeError):
        return ImageFont.load_default()


def caption_height(font_size: int = CAPTION_FONT_SIZE) -> int:
    """Height in pixels of a caption strip drawn with `font_size`.

    Args:
        font_size: Font size in pixels.

    Returns:
        The strip height (font line height plus a small margin).
    """
    font = _font(font_size)
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        line = ascent + descent
    else:
        bbox = font.getbbox("Ag")
        line = int(bbox[3] - bbox[1])
    return int(line) + 4


def _text_width(font: FontType, text: str) -> float:
    return float(font.getlength(text))


def _fit_text(font: FontType, text: str, max_width: float) -> str:
    """The longest prefix of `text` (plus an ellipsis when cut) that fits `max_width`."""
    if _text_width(font, text) <= max_width:
        return text
    lo, hi = 0, len(text)  # invariant: prefix of length lo fits (with ellipsis)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _text_width(font, text[:mid].rstrip() + _ELLIPSIS) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo].rstrip() + _ELLIPSIS
    return cut if _text_width(font, cut) <= max_width else ""


@functools.lru_cache(maxsize=256)  # ~20 KB per strip
def _caption_strip_cached(width: int, text: str, font_size: int) -> Uint8Array:
    font = _font(font_size)
    height = caption_height(font_size)
    img = Image.new("RGB", (width, height), CAPTION_BG_RGB)
    line = " ".join(text.split())  # one line: collapse newlines, tabs and runs of spaces
    if not isinstance(font, ImageFont.FreeTypeFont):  # the bitmap fallback font is latin-1 only
        line = line.encode("latin-1", "replace").decode("latin-1")
    line = _fit_text(font, line, width - 2 * _CAPTION_MARGIN_X)
    if line:
        draw = ImageDraw.Draw(img)
        try:
            draw.text(
                (_CAPTION_MARGIN_X, height / 2), line, fill=CAPTION_FG_RGB, font=font, anchor="lm"
            )
        except ValueError:  # old Pillow: no anchors for bitmap fonts
            draw.text((_CAPTION_MARGIN_X, 2), line, fill=CAPTION_FG_RGB, font=font)
    arr = np.asarray(img, dtype=np.uint8)
    arr.flags.writeable = False
    return arr


def draw_caption_strip(width: int, text: str, *, font_size: int = CAPTION_FONT_SIZE) -> Uint8Array:
    """Draws a one-line caption, light on dark, into a strip of the given width.

    Newlines and runs of whitespace become single spaces; text too long for the
    strip is cut and ends with `"..."`. The result depends only on the
    arguments (and the installed Pillow), and is cached.

    Args:
        width: Strip width in pixels.
        text: Caption, e.g. `"#3 true: cat  pred: dog 0.93"`.
        font_size: Font size in pixels (Pillow's default font; its older bitmap
            version, which has a fixed size, when Pillow < 10.1).

    Returns:
        A `uint8` array of shape `(caption_height(font_size), width, 3)`.

    Raises:
        TypeError: If `text` is not a string.
        ValueError: If `width` or `font_size` is not positive.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected caption `text` to be a string, received {text!r}")
    w = _check_positive_int("width", width)
    fs = _check_positive_int("font_size", font_size)
    return _caption_strip_cached(w, text, fs).copy()


# --------------------------------------------------------------------------- #
# Panels and grid.
# --------------------------------------------------------------------------- #


def _filled(shape: tuple[int, ...], color: tuple[int, int, int]) -> Uint8Array:
    """A new `uint8` array of `shape` (last axis 3) filled with one RGB colour."""
    # Broadcasting a whole row (contiguous W x 3 bytes) is ~80x faster than
    # broadcasting a 3-byte colour, whose inner loop is only 3 elements long.
    row = np.empty(shape[-2:], dtype=np.uint8)
    row[...] = np.asarray(color, dtype=np.uint8)
    out = np.empty(shape, dtype=np.uint8)
    out[...] = row
    return out


def render_panels(
    images: npt.ArrayLike,
    maps: npt.ArrayLike,
    *,
    sigma: float = 1.0,
    colormap: str | None = None,
    alpha: float = 0.5,
    captions: Sequence[str] | None = None,
    min_tile: int = 96,
    max_tile: int = 160,
    value_range: tuple[float, float] | None = None,
    signed: bool = False,
) -> Uint8Array:
    """Renders one "original | heatmap | overlay" panel per probe.

    The three tiles (each of size `tile_size(H, W, min_tile, max_tile)`) are
    separated by 2-pixel dark-gray bars. The heatmap tile shows the smoothed map
    (`gaussian_smooth`) through `colormap`; the overlay blends that heatmap over
    the image with weight `alpha * map`. When `captions` are given, a caption
    strip (`draw_caption_strip`) is added above each panel.

    Args:
        images: Probe images, `(N, H, W)`, `(N, H, W, 1)` or `(N, H, W, 3)`, uint8 or
            float (see `to_display_rgb`).
        maps: Saliency maps, `(N, H, W)`, in [0, 1] (or [-1, 1] if `signed`).
        sigma: Gaussian smoothing in probe pixels; 0 disables it.
        colormap: Matplotlib colormap name. Defaults to `"inferno"`, or `"RdBu_r"`
            when `signed=True`.
        alpha: Maximum heatmap opacity in the overlay tile, in [0, 1].
        captions: Optional sequence of N strings, one per probe.
        min_tile: Small probes are upscaled by an integer factor to about this size.
        max_tile: Large probes are downscaled so their longer side is at most this.
        value_range: Optional `(low, high)` value range of `images`.
        signed: Whether the maps are signed (diverging colours centred at 0).

    Returns:
        A `uint8` array of shape `(N, panel_height, panel_width, 3)`.

    Raises:
        ValueError: On invalid options, mismatched shapes, no probes, or a number of
            captions different from N.
        TypeError: If an option has the wrong type.
    """
    s = _check_sigma(sigma)
    a = _check_alpha(alpha)
    cmap = _resolve_colormap(colormap, signed)
    lo_tile, hi_tile = _check_tiles(min_tile, max_tile)
    rgb = to_display_rgb(images, value_range)
    m = _unit_maps(maps, signed)
    if rgb.shape[:3] != m.shape:
        raise ValueError(
            "expected `maps` of shape (N, H, W) matching `images` (N, H, W, ...), "
            f"received images {np.asarray(images).shape} and maps {m.shape}"
        )
    n, h, w = m.shape
    if n == 0:
        raise ValueError("expected at least one probe, received 0 images")
    if captions is not None:
        if isinstance(captions, str):
            raise TypeError("expected `captions` to be a sequence of strings, received a string")
        if len(captions) != n:
            raise ValueError(
                f"expected `captions` to hold one string per probe ({n}), received {len(captions)}"
            )

    smooth = gaussian_smooth(m, s, signed=signed)  # smoothing in probe pixels
    th, tw = tile_size(h, w, lo_tile, hi_tile)
    factor = th // h if (th % h == 0 and tw == w * (th // h)) else 0
    if not factor:
        # Downscaling: colour and blend at tile size (fewer pixels, fewer resizes).
        rgb = resize_stack(rgb, (th, tw))
        smooth = np.clip(_resize_maps(smooth, (th, tw)), -1.0 if signed else 0.0, 1.0)
    heat = _colorize_unit(smooth, _lut(cmap), signed)
    blended = _blend(rgb, smooth, heat, a, signed)

    cap_h = caption_height() if captions is not None else 0
    panel_w = 3 * tw + 2 * SEPARATOR_PX
    out = _filled((n, cap_h + th, panel_w, 3), BACKGROUND_RGB)
    for j, tile in enumerate((rgb, heat, blended)):
        x0 = j * (tw + SEPARATOR_PX)
        # Nearest-neighbour upscaling commutes with the per-pixel colouring above.
        out[:, cap_h:, x0 : x0 + tw] = upscale_nearest(tile, factor) if factor > 1 else tile
    if captions is not None:
        for i, text in enumerate(captions):
            out[i, :cap_h] = _caption_strip_cached(panel_w, str(text), CAPTION_FONT_SIZE)
    return out


def _auto_ncols(n: int, panel_h: int, panel_w: int, pad: int) -> int:
    """Number of columns that makes the grid closest to square in pixels."""

    def cost(ncols: int) -> tuple[float, int]:
        nrows = -(-n // ncols)
        gw = ncols * panel_w + (ncols + 1) * pad
        gh = nrows * panel_h + (nrows + 1) * pad
        return abs(math.log(gw / gh)), nrows * ncols - n

    return min(range(1, n + 1), key=cost)


def make_grid(panels: npt.ArrayLike, ncols: int | None = None, pad: int = 4) -> Uint8Array:
    """Packs panels into one grid image on a dark-gray background.

    Panels are placed row by row with `pad` pixels between them and around the
    border; cells left over in the last row stay background.

    Args:
        panels: `uint8` array of shape `(N, H, W, 3)` (e.g. from `render_panels`).
        ncols: Number of columns. Defaults to the number (near `ceil(sqrt(N))` for
            square panels) that makes the grid closest to square in pixels. Values
            above N are reduced to N.
        pad: Padding in pixels, >= 0.

    Returns:
        A `uint8` array of shape `(1, grid_height, grid_width, 3)`, ready for
        `tf.summary.image`.

    Raises:
        ValueError: If `panels` is empty or not `(N, H, W, 3)`, or `ncols` / `pad`
            is invalid.
    """
    p = np.asarray(panels)
    if p.ndim != 4 or p.shape[-1] != 3 or p.shape[0] == 0:
        raise ValueError(
            f"expected non-empty `panels` of shape (N, H, W, 3), received shape {p.shape}"
        )
    if not isinstance(pad, numbers.Integral) or isinstance(pad, bool) or pad < 0:
        raise ValueError(f"expected `pad` to be an integer >= 0, received {pad!r}")
    n, ph, pw, _ = p.shape
    pad = int(pad)
    if ncols is None:
        cols = _auto_ncols(n, ph, pw, pad)
    else:
        cols = min(_check_positive_int("ncols", ncols), n)
    rows = -(-n // cols)
    grid = _filled(
        (1, rows * ph + (rows + 1) * pad, cols * pw + (cols + 1) * pad, 3), BACKGROUND_RGB
    )
    for i in range(n):
        r, c = divmod(i, cols)
        y0 = pad + r * (ph + pad)
        x0 = pad + c * (pw + pad)
        grid[0, y0 : y0 + ph, x0 : x0 + pw] = p[i]
    return grid


def render_variant_panels(
    stacks: Sequence[npt.ArrayLike],
    captions: Sequence[Sequence[str]],
    *,
    min_tile: int = 96,
    max_tile: int = 160,
    value_range: tuple[float, float] | None = None,
) -> Uint8Array:
    """One panel per probe with V versions of it side by side, each tile captioned.

    Used for the background interventions (original | only_fg | only_bg | mixed_rand): each
    tile carries its own caption strip (the model's prediction on that version).

    Args:
        stacks: V image stacks of the same shape `(N, H, W[, C])`, shown left to right.
        captions: V sequences of N strings (`captions[v][i]` above tile `v` of probe `i`).
        min_tile, max_tile: Tile sizing, see `tile_size`.
        value_range: `(low, high)` of the images (the same for every stack); inferred from
            all stacks together by default.

    Returns:
        `uint8` `(N, caption + tile height, V * tile width + separators, 3)`.
    """
    lo_tile, hi_tile = _check_tiles(min_tile, max_tile)
    v = len(stacks)
    if v == 0 or len(captions) != v:
        raise ValueError(
            f"expected one caption list per image stack, received {len(captions)} for {v}"
        )
    both = to_display_rgb(np.concatenate([np.asarray(s) for s in stacks]), value_range)
    tiles = np.split(both, v)
    n, h, w = tiles[0].shape[:3]
    th, tw = tile_size(h, w, lo_tile, hi_tile)
    factor = th // h if (th % h == 0 and tw == w * (th // h)) else 0
    cap_h = caption_height()
    out = _filled((n, cap_h + th, v * tw + (v - 1) * SEPARATOR_PX, 3), BACKGROUND_RGB)
    for j, (tile, texts) in enumerate(zip(tiles, captions, strict=True)):
        x0 = j * (tw + SEPARATOR_PX)
        if factor > 1:
            tile = upscale_nearest(tile, factor)
        elif not factor:
            tile = resize_stack(tile, (th, tw))
        out[:, cap_h:, x0 : x0 + tw] = tile
        for i, text in enumerate(texts):
            out[i, :cap_h, x0 : x0 + tw] = _caption_strip_cached(tw, str(text), CAPTION_FONT_SIZE)
    return out


@dataclasses.dataclass(frozen=True)
class Renderer:
    """Validated rendering options, with methods to render panels and grids.

    Construct it when the callback is constructed so that bad options fail early.

    Args:
        sigma: Gaussian smoothing of the maps in probe pixels (>= 0; 0 disables).
        colormap: Matplotlib colormap name; `None` selects `"inferno"`, or
            `"RdBu_r"` when `signed=True`. Stored resolved.
        alpha: Maximum heatmap opacity in the overlay tile, in [0, 1].
        min_tile: Small probes are upscaled by an integer factor to about this size.
        max_tile: Large probes are downscaled so their longer side is at most this.
        value_range: Optional `(low, high)` value range of the probe images.
        signed: Whether saliency maps are signed, in [-1, 1].
        ncols: Grid columns; `None` picks a roughly square grid.
        pad: Padding between grid panels in pixels.

    Raises:
        ValueError: If a value is out of range (e.g. "expected `alpha` in [0, 1],
            received 1.5") or the colormap is unknown.
        TypeError: If a value has the wrong type.
    """

    sigma: float = 1.0
    colormap: str | None = None
    alpha: float = 0.5
    min_tile: int = 96
    max_tile: int = 160
    value_range: tuple[float, float] | None = None
    signed: bool = False
    ncols: int | None = None
    pad: int = 4

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("sigma", _check_sigma(self.sigma))
        put("alpha", _check_alpha(self.alpha))
        if not isinstance(self.signed, (bool, np.bool_)):
            raise TypeError(f"expected `signed` to be a bool, received {self.signed!r}")
        put("signed", bool(self.signed))
        put("colormap", _resolve_colormap(self.colormap, self.signed))
        lo, hi = _check_tiles(self.min_tile, self.max_tile)
        put("min_tile", lo)
        put("max_tile", hi)
        put("value_range", _check_value_range(self.value_range))
        if self.ncols is not None:
            put("ncols", _check_positive_int("ncols", self.ncols))
        if not isinstance(self.pad, numbers.Integral) or isinstance(self.pad, bool) or self.pad < 0:
            raise ValueError(f"expected `pad` to be an integer >= 0, received {self.pad!r}")
        put("pad", int(self.pad))

    def panels(
        self,
        images: npt.ArrayLike,
        maps: npt.ArrayLike,
        captions: Sequence[str] | None = None,
    ) -> Uint8Array:
        """Renders one panel per probe; see `render_panels`.

        Args:
            images: Probe images, `(N, H, W[, C])`.
            maps: Saliency maps, `(N, H, W)`.
            captions: Optional sequence of N caption strings.

        Returns:
            A `uint8` array of shape `(N, panel_height, panel_width, 3)`.
        """
        return render_panels(
            images,
            maps,
            sigma=self.sigma,
            colormap=self.colormap,
            alpha=self.alpha,
            captions=captions,
            min_tile=self.min_tile,
            max_tile=self.max_tile,
            value_range=self.value_range,
            signed=self.signed,
        )

    def grid(self, panels: npt.ArrayLike) -> Uint8Array:
        """Packs panels into one image; see `make_grid`.

        Args:
            panels: `uint8` array of shape `(N, H, W, 3)`.

        Returns:
            A `uint8` array of shape `(1, grid_height, grid_width, 3)`.
        """
        return make_grid(panels, self.ncols, self.pad)

    def render(
        self,
        images: npt.ArrayLike,
        maps: npt.ArrayLike,
        captions: Sequence[str] | None = None,
    ) -> Uint8Array:
        """Renders all probes into one grid image: `grid(panels(...))`.

        Args:
            images: Probe images, `(N, H, W[, C])`.
            maps: Saliency maps, `(N, H, W)`.
            captions: Optional sequence of N caption strings.

        Returns:
            A `uint8` array of shape `(1, grid_height, grid_width, 3)`.
        """
        return self.grid(self.panels(images, maps, captions))
