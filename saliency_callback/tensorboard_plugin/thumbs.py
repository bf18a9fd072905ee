"""Pictures on demand, with fixed-size caches: a record's PNGs and the grid's thumbnails.

A thumbnail is one tile of a probe's panel in `saliency/probes` ("image | saliency | overlay";
the grid shows the overlay or the saliency map), shrunk to at most `THUMB_PX` pixels a side.
The caption strip's height is read from the pixels (its rows are `CAPTION_BG_RGB` at the left
margin), not recomputed from a font, so panels written on another machine, with another font,
are cut right.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from saliency_callback.tensorboard_plugin.events import ImageRef, read_pngs

THUMB_PX = 64
"""Largest side of a grid thumbnail (pixels)."""
SEPARATOR_PX = 2  # `saliency_callback.output.render.SEPARATOR_PX` (checked by the tests)
CAPTION_BG_RGB = (
    16,
    16,
    16,
)  # `saliency_callback.output.render.CAPTION_BG_RGB` (checked by the tests)
_MAX_CAPTION_ROWS = 64

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A thread-safe least-recently-used cache bounded by the total `size(value)`.

    `get(key, make)` computes a missing value once, even when several threads ask for it at
    the same time (the others wait for the first).
    """

    def __init__(self, capacity: int, size: Callable[[V], int]) -> None:
        self.capacity = int(capacity)
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()
        self._pending: dict[K, threading.Lock] = {}

    @property
    def total(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            pending = self._pending.setdefault(key, threading.Lock())
        with pending:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            try:
                value = make()
            finally:
                with self._lock:
                    self._pending.pop(key, None)
            self._put(key, value)
            return value

    def _put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._total += self._size(value)
            while self._total > self.capacity and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._total -= self._size(old)


def caption_rows(pixels: object, width: int) -> int:
    """Rows of caption strip at the top of a panel (0 when uncaptioned)."""
    get = pixels.getpixel  # type: ignore[attr-defined]
    rows = 0
    for y in range(min(_MAX_CAPTION_ROWS, pixels.height)):  # type: ignore[attr-defined]
        if get((0, y))[:3] != CAPTION_BG_RGB or get((1, y))[:3] != CAPTION_BG_RGB:
            break
        rows += 1
    return rows


def tile_thumbnail(png: bytes, index: int = 2, tiles: int = 3, px: int = THUMB_PX) -> bytes:
    """Tile `index` of `tiles` side-by-side tiles of a panel PNG (below its caption; `2` is
    the overlay of "image | saliency | overlay"), as a PNG of at most `px` pixels a side."""
    from PIL import Image

    if not 0 <= index < tiles:
        raise IndexError(f"tile {index} is not in a panel of {tiles} tiles")
    panel = Image.open(io.BytesIO(png)).convert("RGB")
    width = (panel.width - (tiles - 1) * SEPARATOR_PX) // tiles
    x0 = index * (width + SEPARATOR_PX)
    top = caption_rows(panel, width)
    tile = panel.crop((x0, top, x0 + width, panel.height))
    scale = min(1.0, px / max(tile.width, tile.height))
    if scale < 1.0:
        size = (max(1, round(tile.width * scale)), max(1, round(tile.height * scale)))
        tile = tile.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    tile.save(out, format="PNG", compress_level=1)
    return out.getvalue()


class Pictures:
    """Record PNGs and thumbnails, read on demand through two bounded caches.

    Args:
        record_bytes: Capacity of the cache of records' PNGs (bytes).
        thumb_bytes: Capacity of the cache of thumbnails (bytes).
    """

    def __init__(self, record_bytes: int = 48 * 2**20, thumb_bytes: int = 16 * 2**20) -> None:
        self.records: LRU[tuple[str, int, str], list[bytes]] = LRU(
            record_bytes, lambda pngs: sum(len(p) for p in pngs) + 64
        )
        self.thumbs: LRU[tuple[str, int, str, int], bytes] = LRU(thumb_bytes, lambda b: len(b) + 64)

    def pngs(self, ref: ImageRef, tag: str) -> list[bytes]:
        return self.records.get((ref.file, ref.offset, tag), lambda: read_pngs(ref, tag))

    def png(self, ref: ImageRef, tag: str, sample: int) -> bytes:
        pngs = self.pngs(ref, tag)
        if not 0 <= sample < len(pngs):
            raise IndexError(f"sample {sample} is not in {tag} (it has {len(pngs)})")
        return pngs[sample]

    def thumbnail(self, ref: ImageRef, tag: str, sample: int, tile: int = 2) -> bytes:
        """Tile `tile` (0 image, 1 saliency, 2 overlay) of a panel, shrunk."""
        return self.thumbs.get(
            (ref.file, ref.offset, tag, sample * 8 + tile),
            lambda: tile_thumbnail(self.png(ref, tag, sample), tile),
        )
