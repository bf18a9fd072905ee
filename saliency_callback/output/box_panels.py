"""The `saliency/probe_boxes` image: every probe with the object region the background tests
use, so that a wrong proposal shows at a glance (and the user can pass `boxes=` or `masks=`).

Each tile: the probe, its region's bounding box drawn on it, and a caption: `given` (green
box), `proposed` (yellow box), or `no object found: left out` (no box; the probe takes no
part in the background tests).
"""

from __future__ import annotations

import numpy as np

from saliency_callback.data.probes import ObjectRegions
from saliency_callback.output.captions import draw_caption_strip
from saliency_callback.output.render import (
    caption_height,
    make_grid,
    resize_stack,
    tile_size,
    to_display_rgb,
)
from saliency_callback.shortcuts.proposals import bounding_boxes

GIVEN_RGB = (40, 220, 90)
PROPOSED_RGB = (255, 205, 0)
LINE_PX = 2


def _draw_box(tile: np.ndarray, box: np.ndarray, scale: tuple[float, float], rgb: tuple) -> None:
    """Draws a `LINE_PX`-wide rectangle outline (inside the box's edge) into `tile`, in place."""
    h, w = tile.shape[:2]
    sy, sx = scale
    x0, x1 = round(box[0] * sx), round(box[2] * sx)
    y0, y1 = round(box[1] * sy), round(box[3] * sy)
    x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
    x1, y1 = max(min(x1, w), x0 + 1), max(min(y1, h), y0 + 1)
    t = LINE_PX
    color = np.asarray(rgb, np.uint8)
    tile[y0 : y0 + t, x0:x1] = color
    tile[max(y1 - t, y0) : y1, x0:x1] = color
    tile[y0:y1, x0 : x0 + t] = color
    tile[y0:y1, max(x1 - t, x0) : x1] = color


def render_probe_boxes(
    raw: np.ndarray,
    regions: ObjectRegions,
    *,
    value_range: tuple[float, float] | None = None,
    min_tile: int = 64,
    max_tile: int = 160,
) -> np.ndarray:
    """One grid image `(1, H, W, 3)` uint8: each probe with its region's box and a caption.

    Args:
        raw: The probe images as given, `(N, H, W, C)` or `(N, H, W)`.
        regions: The regions the background tests use (`probes.locate_objects`).
        value_range: `(low, high)` of the images for display; inferred by default.
        min_tile, max_tile: Tile sizing, see `render.tile_size`.
    """
    images = np.asarray(raw)
    if images.ndim == 4 and images.shape[-1] not in (1, 3):
        images = images[..., :1] if images.shape[-1] < 3 else images[..., :3]
    display = to_display_rgb(images, value_range)
    n, h, w = display.shape[:3]
    th, tw = tile_size(h, w, min_tile, max_tile)
    tiles = resize_stack(display, (th, tw)).copy()
    boxes = regions.boxes if regions.boxes is not None else bounding_boxes(regions.masks)
    rgb = GIVEN_RGB if regions.source == "given" else PROPOSED_RGB
    cap_h = caption_height()
    panels = np.empty((n, cap_h + th, tw, 3), np.uint8)
    for i in range(n):
        if regions.usable[i]:
            _draw_box(tiles[i], boxes[i], (th / h, tw / w), rgb)
            text = f"#{i} {regions.source}"
        else:
            text = f"#{i} no object found: left out"
        panels[i, :cap_h] = draw_caption_strip(tw, text)
        panels[i, cap_h:] = tiles[i]
    return make_grid(panels)
