"""History at a glance (`saliency/timeline`) and the overview's pixel budget.

TensorBoard keeps 10 steps per image tag unless started with `--samples_per_plugin images=N`,
but it always keeps the latest step. The timeline image puts the history into every step: one
row per probe, one column per logged epoch (up to `max_columns`, evenly spaced over the logged
epochs so far, the latest always last), each cell a small thumbnail of that probe's overlay at
that epoch, each column headed by its step.

Which columns? Logged steps are numbered by their order `0, 1, ..., n - 1` (the pre-training
log, if any, is number 0). With stride `s`, the smallest power of two such that
`ceil((n - 1) / s) <= max_columns - 1`, the columns are the numbers `0, s, 2s, ... < n - 1`
and `n - 1`. Each doubling of `s` keeps a subset of the thumbnails already kept, so at most
`max_columns` sets of thumbnails are ever held in memory, however long the run.

Plain NumPy and Pillow, no TensorFlow (it runs on the background worker).
"""

from __future__ import annotations

import math

import numpy as np

from saliency_callback.output.captions import draw_caption_strip
from saliency_callback.output.render import (
    BACKGROUND_RGB,
    SEPARATOR_PX,
    Uint8Array,
    _auto_ncols,
    caption_height,
    resize_stack,
)

__all__ = ["Timeline", "column_indices", "fit_pixel_budget", "grid_pixels", "overlay_tiles"]

MAX_THUMB = 32
"""Largest thumbnail side in the timeline (pixels): the timeline then costs about a tenth of
a step's rendering and encoding (measured with 32 probes of 64x64 and of 128x128)."""

CELL_MIN_WIDTH = 32
"""Narrowest column (pixels), wide enough for a 3-digit step above it."""

PAD = 2
"""Pixels between thumbnails."""

MIN_THUMB = 12
"""Smallest thumbnail side in the timeline, whatever the pixel budget."""


def column_indices(n: int, max_columns: int = 12) -> list[int]:
    """The logged-step numbers (0-based, in logging order) shown after `n` logged steps."""
    if n <= 0:
        return []
    last = n - 1
    stride = 1
    while math.ceil(last / stride) > max_columns - 1:
        stride *= 2
    return [*range(0, last, stride), last]


def grid_pixels(n: int, height: int, width: int, pad: int = 4) -> int:
    """Pixels of `make_grid` of `n` panels of `(height, width)` (its automatic columns)."""
    cols = _auto_ncols(n, height, width, pad)
    rows = -(-n // cols)
    return (rows * height + (rows + 1) * pad) * (cols * width + (cols + 1) * pad)


def fit_pixel_budget(panels: Uint8Array, budget: int, pad: int = 4) -> Uint8Array:
    """Shrinks panels `(N, H, W, 3)` (all by one factor) so that their grid holds <= `budget`
    pixels; returns `panels` itself when it already fits."""
    n, h, w, _ = panels.shape
    if grid_pixels(n, h, w, pad) <= budget:
        return panels
    scale = math.sqrt(budget / grid_pixels(n, h, w, pad))
    while True:
        size = (max(1, int(h * scale)), max(1, int(w * scale)))
        if grid_pixels(n, *size, pad) <= budget or size == (1, 1):
            return resize_stack(panels, size)
        scale *= 0.97


def overlay_tiles(panels: Uint8Array, captioned: bool = True) -> Uint8Array:
    """The overlay tiles (the third of "image | saliency | overlay") of rendered panels."""
    top = caption_height() if captioned else 0
    width = (panels.shape[2] - 2 * SEPARATOR_PX) // 3
    x0 = 2 * (width + SEPARATOR_PX)
    return panels[:, top:, x0 : x0 + width]


class Timeline:
    """Thumbnails of every probe at up to `max_columns` logged steps, as one image.

    Args:
        max_columns: Most columns (logged steps) shown. Defaults to `12`.
        pixel_budget: Most pixels of the timeline image; thumbnails shrink (to no less than
            `MIN_THUMB` px) to keep within it when there are many probes. Defaults to `2**21`.
    """

    def __init__(self, max_columns: int = 12, pixel_budget: int = 2**21) -> None:
        self.max_columns = int(max_columns)
        self.pixel_budget = int(pixel_budget)
        self._count = 0
        self._kept: dict[int, tuple[int, Uint8Array]] = {}  # number -> (step, thumbnails)

    def reset(self) -> None:
        self._count = 0
        self._kept = {}

    @property
    def steps(self) -> list[int]:
        """The steps of the columns, left to right."""
        return [self._kept[i][0] for i in sorted(self._kept)]

    def thumb_size(self, n_probes: int, height: int, width: int) -> tuple[int, int]:
        """Thumbnail `(height, width)` for `n_probes` tiles of `(height, width)`: at most
        `MAX_THUMB`, and small enough for the full timeline to fit the pixel budget (down to
        `MIN_THUMB`)."""
        side = min(MAX_THUMB, max(height, width))
        while True:
            scale = side / max(height, width)
            size = max(1, round(height * scale)), max(1, round(width * scale))
            if side <= MIN_THUMB or self.pixels(n_probes, *size) <= self.pixel_budget:
                return size
            side -= 1

    def pixels(self, n_probes: int, height: int, width: int) -> int:
        """Pixels of a full timeline (`max_columns` columns) of thumbnails `(height, width)`."""
        rows = caption_height() + n_probes * (height + PAD) + PAD
        return rows * (self.max_columns * (max(width, CELL_MIN_WIDTH) + PAD) + PAD)

    def add(self, step: int, tiles: Uint8Array) -> None:
        """Records the tiles `(N, h, w, 3)` of a new logged step (thumbnailed here)."""
        n, h, w, _ = tiles.shape
        thumbs = resize_stack(np.ascontiguousarray(tiles), self.thumb_size(n, h, w))
        number = self._count
        self._count += 1
        self._kept[number] = (int(step), thumbs)
        keep = set(column_indices(self._count, self.max_columns))
        self._kept = {i: v for i, v in self._kept.items() if i in keep}

    def image(self, pad: int = PAD) -> Uint8Array:
        """The timeline `(1, H, W, 3)`: a header row of steps, then one row per probe."""
        columns = [self._kept[i] for i in sorted(self._kept)]
        if not columns:
            raise ValueError("the timeline is empty: call `add` first")
        n, th, tw, _ = columns[0][1].shape
        header = caption_height()
        cell_w = max(tw, CELL_MIN_WIDTH)
        height = header + n * (th + pad) + pad
        width = len(columns) * (cell_w + pad) + pad
        out = np.empty((1, height, width, 3), np.uint8)
        out[...] = np.asarray(BACKGROUND_RGB, np.uint8)
        for j, (step, thumbs) in enumerate(columns):
            x0 = pad + j * (cell_w + pad)
            out[0, :header, x0 : x0 + cell_w] = draw_caption_strip(cell_w, str(step))
            for i in range(n):
                y0 = header + pad + i * (th + pad)
                out[0, y0 : y0 + th, x0 : x0 + tw] = thumbs[i]
        return out
