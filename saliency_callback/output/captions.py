"""Captions drawn in the pixels of a panel: one line of text on a dark strip, cut to fit."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from saliency_callback.output.checks import Uint8Array, check_positive_int

CAPTION_FONT_SIZE = 12
"""Font size (pixels) of panel captions."""
CAPTION_BG_RGB = (16, 16, 16)
CAPTION_FG_RGB = (235, 235, 235)
_CAPTION_MARGIN_X = 4
_ELLIPSIS = "..."  # ASCII, so that every font (including the bitmap fallback) has the glyphs.

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
def caption_strip_cached(width: int, text: str, font_size: int) -> Uint8Array:
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
    w = check_positive_int("width", width)
    fs = check_positive_int("font_size", font_size)
    return caption_strip_cached(w, text, fs).copy()
