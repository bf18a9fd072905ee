"""Photographic shortcut beds for the detection benchmark: glyphs pasted onto crops of real
photographs, with a background cue that agrees with the class for a chosen share of images.

The flat colours, textures and frames of `saliency_callback.data.datasets` never look like an
object; real photographs do: their edges, strokes and blobs push every CNN's predictions a
little, and a background test must not mistake that push for a learned shortcut. These beds have it.

- **Backgrounds**: crops (random position, a side between 30% and 80% of the photograph's shorter
  side) of the photographs that ship inside installed packages: scikit-image's `skimage.data`
  (astronaut, cat, coffee, rocket, Hubble deep field, IHC slide, retina, motorcycle, brick,
  grass, gravel) and matplotlib's sample data (Grace Hopper). Nothing is downloaded.
- **Objects**: characters (digits and capitals, DejaVu Sans Bold from matplotlib), a random
  colour, size, position and a small rotation: strokes that a photograph's edges can imitate.
  The mask is the glyph's pixels.
- **A bed** is what a seed draws: which characters are the classes and which photographs are
  used; so each seed is another bed (never tune to one), and the training, test and probe data
  of one model come from the same bed (`bed_seed`) with different samples (`seed`).
- **Cues** (`PHOTO_CUES`), the class the cue encodes agreeing with the label for a share
  `agreement` of images, a random other class otherwise:
  - `"photo"`: which photograph the background is cropped from (one per class);
  - `"photo_cast"`: a colour cast of the background (the crop blended 25% towards a class
    colour), the crop from any of the bed's photographs;
  - `"photo_blur"`: the background's sharpness (Gaussian blur of sigma 0, 0.8 or 1.6 pixels by
    class, the object left sharp), the crop from any of the bed's photographs.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from saliency_callback.data.datasets import ShortcutData

PHOTO_CUES = ("photo", "photo_cast", "photo_blur")
CHARACTERS = "2345789ACEFHKLNPRTXZ"
CAST_COLORS = np.array(
    [[1.0, 0.25, 0.1], [0.1, 0.7, 1.0], [0.3, 1.0, 0.2], [1.0, 0.9, 0.1]], np.float32
)
CAST_STRENGTH = 0.25
BLUR_SIGMAS = (0.0, 0.8, 1.6, 2.4)
PHOTOS_PER_BED = 4
_SKIMAGE = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "motorcycle_left.png",
    "brick.png",
    "grass.png",
    "gravel.png",
)


def _photo_files() -> list[Path]:
    import matplotlib
    import skimage

    data = Path(skimage.__file__).parent / "data"
    files = [data / name for name in _SKIMAGE]
    files.append(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"photographs not found (scikit-image installed?): {missing}")
    return files


@functools.cache
def photographs() -> tuple[Image.Image, ...]:
    """Every photograph, as RGB PIL images (gray ones repeated over three channels)."""
    return tuple(Image.open(f).convert("RGB") for f in _photo_files())


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans-Bold.ttf")
    return ImageFont.truetype(path, size)


def bed(num_classes: int, bed_seed: int) -> tuple[str, tuple[int, ...]]:
    """The classes' characters and the bed's photographs (indices into `photographs()`)."""
    rng = np.random.default_rng([bed_seed, 7919])
    chars = "".join(rng.choice(list(CHARACTERS), num_classes, replace=False))
    count = max(num_classes, PHOTOS_PER_BED)
    photos = tuple(int(i) for i in rng.choice(len(_photo_files()), count, replace=False))
    return chars, photos


def _crop(photo: Image.Image, size: int, rng: np.random.Generator) -> np.ndarray:
    w, h = photo.size
    side = rng.uniform(0.3, 0.8) * min(w, h)
    x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
    out = photo.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(out, np.float32) / 255.0


def _glyph(char: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A float alpha map `(size, size)` of one character, its size, place and angle drawn."""
    big = 4 * size  # drawn large, then reduced: smooth edges at any size
    height = rng.uniform(0.5, 0.8) * big
    canvas = Image.new("L", (big, big), 0)
    font = _font(int(height))
    x0, y0, x1, y1 = ImageDraw.Draw(canvas).textbbox((0, 0), char, font=font)
    gw, gh = x1 - x0, y1 - y0
    ox = rng.uniform(0.05 * big, max(0.95 * big - gw, 0.05 * big + 1)) - x0
    oy = rng.uniform(0.05 * big, max(0.95 * big - gh, 0.05 * big + 1)) - y0
    ImageDraw.Draw(canvas).text((ox, oy), char, fill=255, font=font)
    cx, cy = ox + x0 + gw / 2, oy + y0 + gh / 2
    canvas = canvas.rotate(rng.uniform(-15, 15), Image.Resampling.BILINEAR, center=(cx, cy))
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), np.float32) / 255.0


def make_photo_data(
    n: int,
    image_size: int,
    num_classes: int,
    agreement: float,
    *,
    cue: str,
    bed_seed: int,
    seed: int,
) -> ShortcutData:
    """`n` images of one photographic bed (see the module docstring)."""
    if cue not in PHOTO_CUES:
        raise ValueError(f"expected `cue` to be one of {PHOTO_CUES}, received {cue!r}")
    chars, photo_ids = bed(num_classes, bed_seed)
    photos = [photographs()[i] for i in photo_ids]
    rng = np.random.default_rng([seed, 104729])
    labels = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)
    cue_agrees = np.zeros(n, dtype=bool)
    cue_agrees[rng.permutation(n)[: round(agreement * n)]] = True
    offset = rng.integers(1, num_classes, size=n)
    cue_classes = np.where(cue_agrees, labels, (labels + offset) % num_classes)
    images = np.empty((n, image_size, image_size, 3), np.float32)
    masks = np.empty((n, image_size, image_size), bool)
    for i in range(n):
        c = int(cue_classes[i])
        source = photos[c] if cue == "photo" else photos[int(rng.integers(len(photos)))]
        background = _crop(source, image_size, rng)
        if cue == "photo_cast":
            background = (1 - CAST_STRENGTH) * background + CAST_STRENGTH * CAST_COLORS[c]
        elif cue == "photo_blur" and BLUR_SIGMAS[c] > 0:
            background = ndimage.gaussian_filter(background, (BLUR_SIGMAS[c], BLUR_SIGMAS[c], 0))
        alpha = _glyph(chars[int(labels[i])], image_size, rng)
        color = rng.uniform(0, 1, 3).astype(np.float32)
        images[i] = alpha[..., None] * color + (1 - alpha[..., None]) * background
        masks[i] = alpha > 0.02  # every pixel the glyph touches: no outline left behind
    return ShortcutData(
        images=np.clip(images, 0.0, 1.0),
        labels=labels,
        masks=masks,
        cue_agrees=cue_agrees,
        background_classes=cue_classes.astype(np.int64),
        class_names=tuple(chars),
        background_colors=np.zeros((num_classes, 3), np.float32),
        cue=cue,
    )
