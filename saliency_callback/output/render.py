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
import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from saliency_callback.output.captions import (
    CAPTION_FONT_SIZE,
    caption_height,
    caption_strip_cached,
)
from saliency_callback.output.checks import (
    Float32Array,
    Uint8Array,
    check_alpha,
    check_positive_int,
    check_sigma,
    check_tiles,
    check_value_range,
    validate_colormap,
)
from saliency_callback.output.images import (
    resize_maps,
    resize_stack,
    tile_size,
    to_display_rgb,
    upscale_nearest,
)

__all__ = [
    "CAPTION_FONT_SIZE",
    "DEFAULT_COLORMAP",
    "DEFAULT_SIGNED_COLORMAP",
    "Renderer",
    "caption_height",
    "colorize",
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


SEPARATOR_PX = 2
"""Width of the separator between the three tiles of a panel."""

BACKGROUND_RGB = (40, 40, 40)
"""Colour of tile separators and of the grid background (dark gray)."""


# --------------------------------------------------------------------------- #
# Argument validation (shared by the functions and by `Renderer`).
# --------------------------------------------------------------------------- #


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
    s = check_sigma(sigma)
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
    a = check_alpha(alpha)
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
    s = check_sigma(sigma)
    a = check_alpha(alpha)
    cmap = _resolve_colormap(colormap, signed)
    lo_tile, hi_tile = check_tiles(min_tile, max_tile)
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
        smooth = np.clip(resize_maps(smooth, (th, tw)), -1.0 if signed else 0.0, 1.0)
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
            out[i, :cap_h] = caption_strip_cached(panel_w, str(text), CAPTION_FONT_SIZE)
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
        cols = min(check_positive_int("ncols", ncols), n)
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
    lo_tile, hi_tile = check_tiles(min_tile, max_tile)
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
            out[i, :cap_h, x0 : x0 + tw] = caption_strip_cached(tw, str(text), CAPTION_FONT_SIZE)
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

        put("sigma", check_sigma(self.sigma))
        put("alpha", check_alpha(self.alpha))
        if not isinstance(self.signed, (bool, np.bool_)):
            raise TypeError(f"expected `signed` to be a bool, received {self.signed!r}")
        put("signed", bool(self.signed))
        put("colormap", _resolve_colormap(self.colormap, self.signed))
        lo, hi = check_tiles(self.min_tile, self.max_tile)
        put("min_tile", lo)
        put("max_tile", hi)
        put("value_range", check_value_range(self.value_range))
        if self.ncols is not None:
            put("ncols", check_positive_int("ncols", self.ncols))
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
