"""Object masks for a whole training set, proposed once and cached on disk: `cache_masks`.

Background-swap training needs a mask for every training image. Without the user's own,
`propose_masks` finds them from the pixels alone (about 2 ms an image at 32x32 on one CPU
core, far more for large images), so they are computed once, in chunks under a progress bar,
and saved to a `.npz` file that later runs read back.

The file holds the masks, boxes and fallback flags of `ProposedMasks`, the proposal method,
the images' shape and dtype, and a fingerprint of the images (a SHA-256 of the shape, the
per-image pixel sums and a few whole images, cheap next to the proposals). A file whose shape,
method or fingerprint does not match the images is stale: the masks are computed again and the
file replaced. Files are written atomically (a temporary file in the same folder, then
`os.replace`), so an interrupted run leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

import saliency_callback.remedies._checks as _checks
from saliency_callback.maps.inputs import to_numpy
from saliency_callback.shortcuts.proposals import (
    DEFAULT_METHOD,
    METHODS,
    ProposedMasks,
    propose_masks,
)

FORMAT = "saliency_callback.mask_cache/1"
_OWNER = "cache_masks"
_SAMPLED_IMAGES = 16


def fingerprint(images: np.ndarray) -> str:
    """A cheap SHA-256 of an image batch: its shape and dtype, each image's pixel sum, and 16
    whole images spread over the batch (a changed, added, removed or reordered image shows)."""
    flat = images.reshape(len(images), -1)
    digest = hashlib.sha256(f"{images.shape}|{images.dtype}".encode())
    digest.update(np.ascontiguousarray(flat.sum(axis=1, dtype=np.float64)).tobytes())
    picks = np.unique(np.linspace(0, len(images) - 1, _SAMPLED_IMAGES).round().astype(np.int64))
    digest.update(np.ascontiguousarray(flat[picks]).tobytes())
    return digest.hexdigest()


def _read(path: Path, images: np.ndarray, method: str, key: str) -> ProposedMasks | str:
    """The cached proposals, or why the file cannot be used."""
    try:
        with np.load(path, allow_pickle=False) as f:
            stored = {name: f[name] for name in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        return f"it cannot be read ({type(err).__name__}: {err})"
    needed = {"format", "masks", "boxes", "fallback", "method", "fingerprint"}
    if not needed <= set(stored) or str(stored["format"]) != FORMAT:
        return "it is not a mask cache of this version"
    if str(stored["method"]) != method:
        return f"it holds {stored['method']} proposals, not {method}"
    if str(stored["fingerprint"]) != key:
        return "it was made for other images (their shape, order or pixels differ)"
    masks = np.unpackbits(stored["masks"], count=images[..., 0].size).reshape(images.shape[:3])
    return ProposedMasks(masks.astype(bool), stored["boxes"], stored["fallback"], method)


def _write(path: Path, proposed: ProposedMasks, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(
                f,
                format=np.array(FORMAT),
                masks=np.packbits(proposed.masks.reshape(-1)),
                boxes=proposed.boxes,
                fallback=proposed.fallback,
                method=np.array(proposed.method),
                fingerprint=np.array(key),
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _propose(images: np.ndarray, method: str, chunk_size: int, verbose: int) -> ProposedMasks:
    import keras

    n = len(images)
    bar = keras.utils.Progbar(n, unit_name="image", verbose=verbose)
    parts = []
    for start in range(0, n, chunk_size):
        parts.append(propose_masks(images[start : start + chunk_size], method=method))
        bar.update(min(start + chunk_size, n))
    return ProposedMasks(
        np.concatenate([q.masks for q in parts]),
        np.concatenate([q.boxes for q in parts]),
        np.concatenate([q.fallback for q in parts]),
        method,
    )


def cache_masks(
    images: Any,
    path: str | os.PathLike[str],
    *,
    method: str = DEFAULT_METHOD,
    chunk_size: int = 256,
    verbose: int = 1,
) -> ProposedMasks:
    """Object masks for every training image, proposed once and cached in a `.npz` file.

    The first call runs `propose_masks` over `images` in chunks of `chunk_size`, under a
    `keras.utils.Progbar`, and writes the result to `path` atomically. Later calls with the
    same images read the file back (no proposal is made); a file made for other images (shape,
    order, pixels), by another method, or unreadable is replaced, with a warning. Proposals
    that found no plausible object are flagged in `fallback` (the centre box stands in):
    `BackgroundSwap` and `background_swap` leave those images out, and with `verbose` this
    function says how many there are.

    Args:
        images: `(N, H, W, C)` or `(N, H, W)` training images, uint8 or float in any range.
        path: The cache file (written as given; a `.npz` name is the convention).
        method: The proposal method, one of `proposals.METHODS`. Defaults to `"grabcut"`.
        chunk_size: Images proposed between two progress updates. Defaults to `256`.
        verbose: `0` silent, `1` a progress bar and a summary line. Defaults to `1`.

    Returns:
        The `ProposedMasks`: `masks` bool `(N, H, W)`, `boxes` `(N, 4)`, `fallback` `(N,)`.

    Raises:
        TypeError, ValueError: For bad `images`, `method` or `chunk_size`, naming the argument.

    Example:

    ```python
    masks = sc.cache_masks(x_train, "cache/train_masks.npz")
    data = sc.BackgroundSwap(x_train, y_train, masks, p=0.2, seed=0)
    model.fit(data, epochs=20, callbacks=[cb])
    ```
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"`{_OWNER}` expected `method` in {METHODS}. Received: method={method!r}")
    chunk_size = _checks.check_positive_int(_OWNER, "chunk_size", chunk_size)
    if verbose not in (0, 1):
        raise ValueError(f"`{_OWNER}` expected `verbose` to be 0 or 1. Received: {verbose!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`{_OWNER}` expected `path` to be a file path. Received: {path!r}")
    arr = to_numpy(images, "images")
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or len(arr) == 0:
        raise ValueError(
            f"`{_OWNER}` expected a non-empty batch of `images` of shape (N, H, W, C). "
            f"Received: images of shape {arr.shape}"
        )
    path = Path(path)
    key = fingerprint(arr)
    if path.exists():
        found = _read(path, arr, method, key)
        if isinstance(found, ProposedMasks):
            if verbose:
                print(f"{_OWNER}: read {len(found)} masks from {path}; {_summary(found)}")
            return found
        warnings.warn(
            f"`{_OWNER}`: the cache {path} is not used, {found}; proposing the masks again "
            "and replacing it",
            stacklevel=2,
        )
    start = time.perf_counter()
    proposed = _propose(arr, method, chunk_size, verbose)
    _write(path, proposed, key)
    if verbose:
        print(
            f"{_OWNER}: proposed {len(proposed)} masks in {time.perf_counter() - start:.1f} s, "
            f"saved to {path}; {_summary(proposed)}"
        )
    return proposed


def _summary(proposed: ProposedMasks) -> str:
    skipped = int(np.count_nonzero(proposed.fallback))
    if not skipped:
        return "every image has a proposed object"
    return (
        f"{skipped} of {len(proposed)} images have no plausible object (a fallback centre box "
        "stands in): background swaps leave them out"
    )
