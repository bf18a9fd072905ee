"""A clean synthetic family with no object at all: whole-image texture classes.

Each image is one texture over the whole frame, and the texture *is* the class: the
orientation of a grating (`texture="grating"`) or the grain of blurred noise
(`texture="blur"`), drawn as `saliency_callback.data.datasets` draws its background cues. There is
no object and no shortcut: a model that reads the whole image is right to do so. This is the
false-alarm check of the mask-free background tests (see `docs/mask-free.md`): an object
proposal on such an image has nothing to find, and a background test built on an arbitrary
box would call the texture outside it "background".
"""

from __future__ import annotations

import numpy as np

from saliency_callback.data import cues as _cues
from saliency_callback.data import datasets as _datasets

__all__ = ["TEXTURES", "make_texture_data"]

TEXTURES: tuple[str, ...] = ("grating", "blur")
"""The texture kinds of `make_texture_data(texture=...)`."""

_TEXTURE_MSG = "expected `texture` to be one of {names}, received {value!r}"


def make_texture_data(
    n: int,
    *,
    image_size: int = 48,
    num_classes: int = 3,
    seed: int = 0,
    noise: float = 0.05,
    texture: str = "grating",
) -> _datasets.ShortcutData:
    """Generates whole-image texture classes with no object.

    Every image is a neutral grey base (as `make_shortcut_data`'s non-tint cues: level uniform
    in `[0.35, 0.65]`, jittered by up to +-0.05 per channel) plus, over the whole image:

    - `"grating"`: a sinusoidal grating of amplitude 0.15, period `max(4, S / 8)` pixels,
      random phase and orientation `180 * c / K` degrees for class `c`;
    - `"blur"`: white noise blurred with a Gaussian of standard deviation
      `(0, 0.5, 0.8, 1.2, 1.7, 2.4)[c]` pixels, rescaled to standard deviation 0.1.

    Gaussian pixel noise of standard deviation `noise` is added, then values are clipped to
    `[0, 1]`. Labels are balanced, in random order.

    Args:
        n: Number of images, >= 1.
        image_size: Side of the square images in pixels, >= 16.
        num_classes: Number of classes, between 2 and 6.
        seed: Seed for `np.random.default_rng`.
        noise: Standard deviation of the Gaussian pixel noise, >= 0.
        texture: `"grating"` or `"blur"`.

    Returns:
        A `ShortcutData` with `images` float32 `(n, S, S, 3)`, `labels`, `masks` all False
        (there is no object), `cue_agrees` all True and `background_classes` equal to
        `labels` (the texture is the class), `class_names` `("texture_0", ...)` and
        `cue="texture"`.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.

    Example:

    >>> data = make_texture_data(6, image_size=32, seed=1)
    >>> data.images.shape, bool(data.masks.any())
    ((6, 32, 32, 3), False)
    """
    if not isinstance(texture, str) or texture not in TEXTURES:
        raise ValueError(_TEXTURE_MSG.format(names=", ".join(TEXTURES), value=texture))
    n, size, k, _, noise = _datasets._check_args(n, image_size, num_classes, 1.0, noise)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % k)
    base = _cues.neutral_base(n, rng)
    if texture == "grating":
        pattern = _cues.grating(labels, size, k, rng)
    else:
        pattern = _cues.blurred_noise(labels, size, rng)
    images = base[:, None, None, :] + pattern[..., None]
    if noise > 0:
        images += np.float32(noise) * rng.standard_normal(images.shape, dtype=np.float32)
    np.clip(images, 0.0, 1.0, out=images)
    return _datasets.ShortcutData(
        images=images.astype(np.float32, copy=False),
        labels=labels,
        masks=np.zeros((n, size, size), bool),
        cue_agrees=np.ones(n, bool),
        background_classes=labels.copy(),
        class_names=tuple(f"texture_{c}" for c in range(k)),
        background_colors=_datasets.BACKGROUND_TINTS[:k].copy(),
        cue="texture",
    )
