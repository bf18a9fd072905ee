"""Background-swap training on NumPy arrays: `BackgroundSwap`, a `keras.utils.PyDataset`.

With probability `p`, each training image becomes its own object (the pixels of its mask) pasted
onto the background of another training image drawn at random, whose object was removed
(`background.remove_objects`, the shift fill: the hole takes a shifted copy of the same
background, so its colour, texture and sharpness stay). This is the Backgrounds Challenge's
Mixed-Rand (Xiao et al., ICLR 2021) used as training data, a share of images at a time, as Ryali
et al. 2021 did (`p` from 0.1 to 0.3; swapping every image costs accuracy on real ones). The
labels never change: the object is the class.

The object-removed backgrounds are computed once, when the dataset is made. Each epoch draws
anew, from `(seed, epoch)` only, which images are swapped, onto which backgrounds, and (with
`shuffle`) the order; so the same seed gives the same batches, epoch after epoch, in every
process. At `p=0` the batches are the input arrays' rows, bitwise.

The numerics (`object_backgrounds`, `draw_swaps`, `composite`) are pure NumPy, shared with the
`tf.data` form (`background_swap`) and the head refit (`refit_head`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np

import saliency_callback.remedies._checks as _checks
from saliency_callback.maps.inputs import to_numpy
from saliency_callback.shortcuts.background import remove_objects


def check_images(owner: str, images: Any) -> np.ndarray:
    """The training images as an array `(N, H, W, C)` in their own dtype (never rescaled).

    Raises:
        TypeError: For non-numeric or bool images.
        ValueError: For a rank other than 4 or an empty batch.
    """
    if hasattr(images, "element_spec"):  # a tf.data.Dataset
        raise TypeError(
            f"`{owner}` takes NumPy arrays; for a `tf.data.Dataset` use "
            "`saliency_callback.background_swap(dataset, masks, p=..., seed=...)`. "
            f"Received: images of type {type(images).__name__}"
        )
    arr = to_numpy(images, "images")
    if arr.dtype == bool:
        raise TypeError(f"`{owner}` expected `images` to be uint8 or float. Received: dtype bool")
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise ValueError(
            f"`{owner}` expected a non-empty batch of `images` of shape (N, H, W, C). "
            f"Received: images of shape {arr.shape}"
        )
    return arr


def object_backgrounds(images: np.ndarray, masks: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Each usable image with its object removed (`background.remove_objects`, shift fill).

    Args:
        images: `(N, H, W, C)`, any numeric dtype.
        masks: bool `(N, H, W)`, True on the object.
        usable: bool `(N,)`: the images to fill; the others are returned unchanged.

    Returns:
        `(N, H, W, C)` in the images' dtype: outside the mask the image's own pixels, bitwise;
        inside it copies of the same image's background pixels.
    """
    out = images.copy()
    rows = np.flatnonzero(usable)
    if len(rows):
        filled = remove_objects(images[rows], masks[rows], fill="shift").astype(images.dtype)
        out[rows] = np.where(masks[rows][..., None], filled, images[rows])
    return out


def draw_swaps(
    rng: np.random.Generator, usable: np.ndarray, p: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which images are swapped, and whose background each gets.

    Every usable image is swapped with probability `p`, onto the background of another usable
    image drawn uniformly (never itself). The draws do not depend on `p` beyond the threshold,
    so a larger `p` swaps a superset of the images a smaller one swaps (same generator state).

    Args:
        rng: The generator; its state advances by two draws of `N` values.
        usable: bool `(N,)`, the images that can be swapped and lend their background.
        p: The probability of a swap.

    Returns:
        `(swapped, partners)`: bool `(N,)`, and int64 `(N,)` the partner of each swapped image,
        `-1` elsewhere.
    """
    n = len(usable)
    rows = np.flatnonzero(usable)
    u = rng.random(n)
    k = rng.integers(0, max(len(rows) - 1, 1), n)
    partners = np.full(n, -1, np.int64)
    if len(rows) < 2:
        return np.zeros(n, bool), partners
    position = np.full(n, -1, np.int64)
    position[rows] = np.arange(len(rows))
    swapped = usable & (u < p)
    choice = rows[np.minimum(k + (k >= position), len(rows) - 1)]  # skips the image itself
    partners[swapped] = choice[swapped]
    return swapped, partners


def composite(
    images: np.ndarray, masks: np.ndarray, backgrounds: np.ndarray, partners: np.ndarray
) -> np.ndarray:
    """Each image's object over its partner's background; rows with partner `-1` unchanged.

    Args:
        images: `(B, H, W, C)` the images.
        masks: bool `(B, H, W)` their objects.
        backgrounds: `(M, H, W, C)` object-removed backgrounds (`object_backgrounds`).
        partners: int `(B,)` index into `backgrounds` per image, `-1` for none.

    Returns:
        `(B, H, W, C)` in the images' dtype (a copy).
    """
    out = images.copy()
    rows = np.flatnonzero(partners >= 0)
    if len(rows):
        out[rows] = np.where(masks[rows][..., None], images[rows], backgrounds[partners[rows]])
    return out


class BackgroundSwap(keras.utils.PyDataset):
    """Training batches in which a share `p` of images stand on another image's background.

    The remedy for a background shortcut (see `ShortcutAlarm`): each epoch, each image whose
    mask is usable is, with probability `p`, replaced by its object pasted onto the
    object-removed background of another training image drawn at random (the Backgrounds
    Challenge's Mixed-Rand). Labels are never changed. The backgrounds are computed once, here;
    the draws of each epoch come from `(seed, epoch)` alone, so the same seed gives the same
    batches. At `p=0` every batch holds the input rows, bitwise (with `shuffle=False`, the
    batches of `model.fit(images, labels, shuffle=False)`).

    Images whose mask is empty, covers the whole image, or is a fallback centre box of
    `propose_masks` are never swapped nor lend their background; a warning says how many.
    Keep the probe images of `SaliencyCallback` out of `images`: the alarm's verdict after the
    fix must come from images the fix never saw.

    Args:
        images: `(N, H, W, C)` training images (uint8 or float, in the model's input range).
        labels: `(N, ...)` labels, returned as given with their images.
        masks: bool or 0/1 `(N, H, W)`, 1 on the object; or the `ProposedMasks` of
            `propose_masks(images)` or `cache_masks(images, path)`.
        p: The probability that an image is swapped, each epoch; required (no default).
            The literature's 0.1-0.3 (Ryali et al. 2021) removed a quarter to half of the
            shortcut in a first trial at cue share 0.95; in `benchmarks/bench_fix.py`, 0.8
            recovered 67% (`background_color`) to 92% (`patch`) of the worst-group gap
            (docs/after-the-alarm.md).
        batch_size: Images per batch; the last batch may be smaller. Defaults to `32`.
        seed: Seed of the swaps and the shuffling; `None` draws one. Defaults to `None`.
        shuffle: Whether each epoch visits the images in a new order (drawn from the seed).
            `model.fit` also shuffles the batches' order unless given `shuffle=False`.
            Defaults to `True`.
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` of
            `keras.utils.PyDataset`.

    Attributes:
        epoch: The pass whose draws the batches show: 0 at first, one more at every
            `on_epoch_begin` but the first (`fit` calls it as each epoch starts), so every
            epoch, and a second `fit`, draws anew.
        skipped: int `(K,)` the images never swapped.

    Raises:
        TypeError: For non-numeric images or masks, a non-real `p`, or a non-int `seed`.
        ValueError: For masks of the wrong shape, count or values, labels of another length,
            `p` outside [0, 1], or a `batch_size` below 1.

    Example:

    ```python
    masks = sc.cache_masks(x_train, "train_masks.npz")   # or your own (N, H, W) masks
    data = sc.BackgroundSwap(x_train, y_train, masks, p=0.2, batch_size=64, seed=0)
    model.fit(data, epochs=20, callbacks=[cb])
    ```
    """

    def __init__(
        self,
        images: Any,
        labels: Any,
        masks: Any,
        *,
        p: float,
        batch_size: int = 32,
        seed: int | None = None,
        shuffle: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.p = _checks.check_probability(owner, p)
        self.batch_size = _checks.check_positive_int(owner, "batch_size", batch_size)
        self.seed = _checks.check_seed(owner, seed)
        self.shuffle = bool(shuffle)
        self.images = check_images(owner, images)
        n = len(self.images)
        self.labels = to_numpy(labels, "labels")
        if len(self.labels) != n:
            raise ValueError(
                f"`{owner}` expected one label per image: {n} labels. Received: "
                f"{len(self.labels)} labels"
            )
        self.masks, fallback = _checks.check_masks(owner, masks, n, self.images.shape[1:3])
        self.usable = _checks.usable(self.masks, fallback)
        self.skipped = np.flatnonzero(~self.usable)
        message = _checks.skipped_message(owner, self.masks, fallback)
        if message:
            warnings.warn(message, stacklevel=2)
        self.backgrounds = object_backgrounds(self.images, self.masks, self.usable)
        self.epoch = 0
        self._begun = False
        self._plan: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def num_batches(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The draws of one epoch: the order of the images, and each image's partner.

        Args:
            epoch: The epoch (0 for the first).

        Returns:
            `(order, partners)`: int64 `(N,)` the image indices in batch order, and int64
            `(N,)` per image (in the input's order) the image whose background it gets, `-1`
            for none.
        """
        rng = np.random.default_rng([self.seed, int(epoch)])
        n = len(self.images)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        _, partners = draw_swaps(rng, self.usable, self.p)
        return order.astype(np.int64), partners

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} of {self.num_batches}")
        if self._plan is None or self._plan[0] != self.epoch:
            self._plan = (self.epoch, *self.plan(self.epoch))
        _, order, partners = self._plan
        rows = order[index * self.batch_size : (index + 1) * self.batch_size]
        x = composite(self.images[rows], self.masks[rows], self.backgrounds, partners[rows])
        return x, self.labels[rows]

    def on_epoch_begin(self) -> None:
        """Moves to the next epoch's draws, except at the first epoch (which keeps `epoch`)."""
        if self._begun:
            self.epoch += 1
        self._begun = True
