"""Background-swap training on a `tf.data` pipeline: `background_swap`.

The same swaps as `BackgroundSwap` (see `remedies.swap`), written as a `Dataset.map` of
TensorFlow ops, so the swap runs inside the input pipeline and under `tf.distribute` like any
other `map`. The dataset is read once, when the function is called: its images give the
object-removed backgrounds (NumPy, `background.remove_objects`), kept as constants of the
pipeline, and a fingerprint of each image (the sum of its pixels), which every later pass
checks, so a dataset that does not give the same images in the same order (shuffled or
augmented before the swap) fails loudly instead of pasting objects through the wrong masks.

Randomness is stateless: element `i` of an epoch draws from `[r, i]`, where `r` comes from
`tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`, a new value each pass over the
data. So the swaps change from epoch to epoch, and the same `seed` (with the same global seed,
`keras.utils.set_random_seed`, as for `Dataset.shuffle(seed=...)`) gives the same swaps in
every run.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

import saliency_callback.remedies._checks as _checks
from saliency_callback.remedies.swap import object_backgrounds

_OWNER = "background_swap"
_READ_BATCH = 512
_ORDER_MESSAGE = (
    "`background_swap`: an element of `dataset` is not the image it was when the swap was set "
    "up (the sum of its pixels changed). The dataset must give the same images in the same "
    "order on every pass: shuffle, repeat and augment after `background_swap`, not before. "
    "Element index:"
)


def _check_dataset(dataset: Any) -> Any:
    """The dataset's element spec of `(image, label)` or `(image, label, sample_weight)`.

    Raises:
        TypeError: If `dataset` is not a `tf.data.Dataset` of such tuples.
        ValueError: If its elements are batched, or it is infinite.
    """
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"`{_OWNER}` expected `dataset` to be a `tf.data.Dataset` of (image, label) "
            "elements; for NumPy arrays use `saliency_callback.BackgroundSwap(images, labels, "
            f"masks, p=..., seed=...)`. Received: dataset of type {type(dataset).__name__}"
        )
    spec = dataset.element_spec
    if (
        not isinstance(spec, tuple)
        or len(spec) not in (2, 3)
        or not isinstance(spec[0], tf.TensorSpec)
    ):
        raise TypeError(
            f"`{_OWNER}` expected `dataset` elements `(image, label)` or `(image, label, "
            f"sample_weight)`, the image one tensor. Received: element_spec={spec}"
        )
    rank = spec[0].shape.rank
    if rank != 3:
        hint = " (batched: call `background_swap` before `.batch()`)" if rank == 4 else ""
        raise ValueError(
            f"`{_OWNER}` expected single images of shape (H, W, C) in `dataset`{hint}. "
            f"Received: image spec {spec[0]}"
        )
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(
            f"`{_OWNER}` expected a finite `dataset`, one element per mask. Received: an "
            "infinite dataset; call `.repeat()` after `background_swap`"
        )
    return spec


def _read_images(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the dataset: its images `(N, H, W, C)` and each image's pixel sum."""
    import tensorflow as tf

    def first(*element: Any) -> tuple[Any, Any]:
        return element[0], tf.reduce_sum(tf.cast(element[0], tf.float64))

    images, sums = [], []
    for x, s in dataset.map(first).batch(_READ_BATCH).as_numpy_iterator():
        images.append(x)
        sums.append(s)
    if not images:
        raise ValueError(f"`{_OWNER}` expected a non-empty `dataset`. Received: no elements")
    try:
        return np.concatenate(images), np.concatenate(sums)
    except ValueError as err:  # batch() of images of several sizes fails earlier, in TF
        raise ValueError(
            f"`{_OWNER}` expected images of one size in `dataset`. Received: {err}"
        ) from None


def background_swap(dataset: Any, masks: Any, *, p: float, seed: int | None = None) -> Any:
    """A `tf.data.Dataset` in which a share `p` of images stand on another image's background.

    The `tf.data` form of `BackgroundSwap` (the remedy for a background shortcut): each pass
    over the data, each element whose mask is usable is, with probability `p`, replaced by its
    object pasted onto the object-removed background of another element drawn at random.
    Labels (and sample weights) pass through unchanged. `masks[i]` belongs to the `i`-th
    element: call it on the unshuffled, unbatched data, then shuffle, augment, batch and
    repeat. At `p=0` every element comes out bitwise as it went in.

    The dataset is read once here (to build the backgrounds, kept in memory as constants of
    the pipeline, and each image's fingerprint, checked on every later pass). Images whose mask
    is empty, full, or a fallback centre box of `propose_masks` are never swapped nor lend
    their background; a warning says how many. Keep the probe images of `SaliencyCallback` out
    of the training data.

    Args:
        dataset: A finite `tf.data.Dataset` of `(image, label)` or `(image, label,
            sample_weight)` elements, images `(H, W, C)` of one size.
        masks: bool or 0/1 `(N, H, W)`, one per element, 1 on the object; or the
            `ProposedMasks` of `propose_masks` or `cache_masks`.
        p: The probability that an element is swapped, each pass (no default: see
            `BackgroundSwap`).
        seed: Seed of the swaps; `None` draws one. Defaults to `None`.

    Returns:
        A `tf.data.Dataset` with the same element spec.

    Raises:
        TypeError: If `dataset` is not a dataset of `(image, label[, weight])` tuples, or for
            a non-real `p` or non-int `seed`.
        ValueError: For batched or infinite datasets, masks of the wrong shape, count or
            values, or `p` outside [0, 1]. On iteration, `tf.errors.InvalidArgumentError` if an
            element is not the image it was here (a shuffle or augmentation before the swap).

    Example:

    ```python
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    train = sc.background_swap(train, masks, p=0.2, seed=0).shuffle(1024).batch(64)
    model.fit(train, epochs=20, callbacks=[cb])
    ```
    """
    import tensorflow as tf

    p = _checks.check_probability(_OWNER, p)
    seed = _checks.check_seed(_OWNER, seed)
    _check_dataset(dataset)
    images, sums = _read_images(dataset)
    mask_array, fallback = _checks.check_masks(_OWNER, masks, len(images), images.shape[1:3])
    usable = _checks.usable(mask_array, fallback)
    message = _checks.skipped_message(_OWNER, mask_array, fallback)
    if message:
        warnings.warn(message, stacklevel=2)
    rows = np.flatnonzero(usable)
    position = np.full(len(images), -1, np.int64)
    position[rows] = np.arange(len(rows))

    backgrounds = tf.constant(object_backgrounds(images, mask_array, usable))
    masks_t = tf.constant(mask_array)
    sums_t = tf.constant(sums)
    rows_t = tf.constant(rows, tf.int64)
    position_t = tf.constant(position)
    usable_t = tf.constant(usable)
    m = len(rows)

    def swap(indexed: Any, r: Any) -> Any:
        i, element = indexed
        image = element[0]
        fingerprint = tf.reduce_sum(tf.cast(image, tf.float64))
        expected = tf.gather(sums_t, i)
        same = tf.abs(fingerprint - expected) <= 1e-6 * (1.0 + tf.abs(expected))
        check = tf.debugging.Assert(same, [_ORDER_MESSAGE, i])
        with tf.control_dependencies([check]):
            image = tf.identity(image)
        if m < 2:  # nobody to swap with
            return (image, *element[1:])
        seeds = tf.random.experimental.stateless_split(tf.stack([r, i]), 2)
        u = tf.random.stateless_uniform([], seed=seeds[0], dtype=tf.float64)
        k = tf.random.stateless_uniform([], seed=seeds[1], minval=0, maxval=m - 1, dtype=tf.int64)
        k = k + tf.cast(k >= tf.gather(position_t, i), tf.int64)  # never the image itself
        partner = tf.gather(rows_t, tf.minimum(k, m - 1))
        swapped = tf.where(tf.gather(masks_t, i)[..., None], image, tf.gather(backgrounds, partner))
        do = tf.logical_and(tf.gather(usable_t, i), u < p)
        return (tf.where(do, swapped, image), *element[1:])

    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    zipped = tf.data.Dataset.zip((dataset.enumerate(), keys))
    return zipped.map(swap, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
