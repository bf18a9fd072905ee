"""Validation shared by the remedies: masks, the swap probability, seeds, and which images can
take part in a swap.

Every check raises `ValueError` or `TypeError` naming the function, the argument and what was
received, before any work is done.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from saliency_callback.maps.inputs import to_numpy


def check_probability(owner: str, p: Any) -> float:
    """`p` as a float in [0, 1].

    Raises:
        TypeError: If `p` is not a real number (a bool is not one).
        ValueError: If `p` is outside [0, 1] or NaN.
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"`{owner}` expected `p` to be a real number in [0, 1]. Received: p={p!r}")
    if not 0.0 <= float(p) <= 1.0:  # NaN fails both comparisons
        raise ValueError(f"`{owner}` expected `p` in [0, 1]. Received: p={p}")
    return float(p)


def check_seed(owner: str, seed: Any) -> int:
    """`seed` as a non-negative int; `None` draws one from the operating system's entropy.

    Raises:
        TypeError: If `seed` is neither `None` nor an int.
        ValueError: If `seed` is negative.
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))  # type: ignore[operator]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`{owner}` expected `seed` to be an int or None. Received: seed={seed!r}")
    if seed < 0:
        raise ValueError(f"`{owner}` expected `seed` >= 0. Received: seed={seed}")
    return int(seed)


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """`value` as a positive int.

    Raises:
        ValueError: If `value` is not an int >= 1.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"`{owner}` expected `{name}` to be a positive int. Received: {name}={value!r}"
        )
    return int(value)


def check_masks(
    owner: str, masks: Any, count: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Checks the masks of `count` images of `size` `(H, W)`.

    Args:
        owner: The public function or class, for the messages.
        masks: bool or 0/1 `(N, H, W)` (or `(N, H, W, 1)`), or a `ProposedMasks` (from
            `propose_masks` or `cache_masks`), whose `fallback` marks centre boxes that stand in
            for a failed proposal.
        count: The number of images, `N`.
        size: The images' `(H, W)`.

    Returns:
        `(masks, fallback)`: bool `(N, H, W)`, and bool `(N,)` (all False for plain masks).

    Raises:
        TypeError: For masks that are not numeric (or bool).
        ValueError: For a wrong shape or count, or values other than 0 and 1.
    """
    fallback = None
    if hasattr(masks, "masks") and hasattr(masks, "fallback"):  # ProposedMasks
        fallback = np.asarray(masks.fallback, bool)
        masks = masks.masks
    arr = to_numpy(masks, "masks")
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(
            f"`{owner}` expected `masks` of shape (N, H, W) = ({count}, {size[0]}, {size[1]}), "
            f"one per image. Received: masks of shape {arr.shape}"
        )
    if len(arr) != count:
        raise ValueError(
            f"`{owner}` expected one mask per image: {count} masks. Received: {len(arr)} masks "
            f"of shape {arr.shape}"
        )
    if tuple(arr.shape[1:]) != tuple(size):
        raise ValueError(
            f"`{owner}` expected `masks` of the images' height and width {tuple(size)}. "
            f"Received: masks of shape {arr.shape}"
        )
    if arr.dtype != bool:
        if arr.dtype.kind not in "iuf":
            raise TypeError(
                f"`{owner}` expected `masks` to be bool or 0/1 numbers. Received: dtype {arr.dtype}"
            )
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            values = np.unique(arr[bad])[:5].tolist()
            raise ValueError(
                f"`{owner}` expected `masks` to be bool or 0/1 (1 on the object). Received: "
                f"values such as {values}; threshold soft masks first, e.g. masks > 0.5"
            )
        arr = arr != 0
    if fallback is None:
        fallback = np.zeros(count, bool)
    elif fallback.shape != (count,):
        raise ValueError(
            f"`{owner}` expected `masks.fallback` of shape ({count},). Received: {fallback.shape}"
        )
    return arr, fallback


def usable(masks: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """bool `(N,)`: images with an object and a background, whose mask is not a fallback box.

    Only these are swapped, and only their backgrounds are lent to other images.
    """
    area = masks.reshape(len(masks), -1).mean(axis=1)
    return (area > 0) & (area < 1) & ~fallback


def skipped_message(owner: str, masks: np.ndarray, fallback: np.ndarray) -> str | None:
    """A sentence saying which images are left out of the swaps, or `None` when none is."""
    area = masks.reshape(len(masks), -1).mean(axis=1)
    degenerate = ((area == 0) | (area == 1)) & ~fallback
    n_fallback, n_degenerate = int(fallback.sum()), int(degenerate.sum())
    if not n_fallback and not n_degenerate:
        return None
    parts = []
    if n_fallback:
        parts.append(f"{n_fallback} whose proposed mask is a fallback centre box")
    if n_degenerate:
        parts.append(f"{n_degenerate} whose mask is empty or covers the whole image")
    return (
        f"`{owner}`: {n_fallback + n_degenerate} of {len(masks)} images are never swapped and "
        f"never lend their background: {' and '.join(parts)}"
    )
