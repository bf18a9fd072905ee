"""Validation of the user's arrays: images, labels and targets.

Every check raises `ValueError` or `TypeError` whose message names the argument and echoes what
was received, so a mistake surfaces before training, not an hour into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

TargetSpec = Union[str, int, Sequence[int], np.ndarray, Callable[[Any], Any]]  # noqa: UP007


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Converts arrays, tensors and nested sequences to numpy.

    Raises:
        TypeError: If `x` cannot be read as a numeric array.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor: off the graph and device
        x = x.detach().cpu()
    if hasattr(x, "numpy") and callable(x.numpy):
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except Exception as err:
        raise TypeError(f"expected `{name}` to be an array, received {type(x).__name__}") from err
    if arr.dtype == object or arr.dtype.kind in "SUVMmc":
        raise TypeError(
            f"expected `{name}` to be a numeric array, received dtype {arr.dtype} "
            f"({type(x).__name__})"
        )
    return arr


def check_images(images: Any, name: str = "images") -> np.ndarray:
    """Checks an image batch and returns it as float32 `(N, H, W, C)`.

    Accepts `(N, H, W, C)` with C in {1, 3, 4} or `(N, H, W)` (a channel axis is added), as
    uint8/integer or float. Values are never rescaled.

    Raises:
        TypeError: For non-numeric or boolean data.
        ValueError: For a wrong rank, an empty batch, or NaN/inf values.
    """
    arr = to_numpy(images, name)
    if arr.dtype == bool:
        raise TypeError(f"expected `{name}` to be uint8 or float, received dtype bool")
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise ValueError(
            f"expected `{name}` of shape (N, H, W, C) or (N, H, W), received shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"expected a non-empty `{name}` batch, received shape {arr.shape}")
    if min(arr.shape[1:3]) < 1:
        raise ValueError(f"expected `{name}` with positive height and width, received {arr.shape}")
    out = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(out)):
        bad = np.unique(np.nonzero(~np.isfinite(out).reshape(len(out), -1))[0])
        raise ValueError(
            f"`{name}` contains NaN or inf values (in images {bad[:10].tolist()}); saliency "
            "cannot be computed on them"
        )
    return out


def check_against_model(images: np.ndarray, input_shape: tuple[Any, ...], name: str) -> np.ndarray:
    """Checks that `images` fit the model's input shape `(None, H, W, C)`.

    Returns:
        The images, unchanged (a channel mismatch is an error, never silently repeated).

    Raises:
        ValueError: If height, width or channels disagree with the model.
    """
    expected = tuple(input_shape[1:])
    got = images.shape[1:]
    for axis, (e, g) in enumerate(zip(expected, got, strict=True)):
        if e is not None and e != g:
            what = ("height", "width", "channels")[axis]
            raise ValueError(
                f"expected `{name}` of shape (N, {', '.join(str(d) for d in expected)}) to match "
                f"the model's input, received {images.shape} ({what} {g} != {e})"
            )
    return images


def check_labels(labels: Any, n: int, num_classes: int | None, name: str = "labels") -> np.ndarray:
    """Checks class labels (ids `(N,)` or one-hot `(N, K)`) and returns int32 ids `(N,)`.

    Raises:
        ValueError: For a wrong length, non-integer ids, one-hot of the wrong width, or ids out
            of range `[0, num_classes)`.
    """
    arr = to_numpy(labels, name)
    if arr.ndim == 2 and arr.shape[1] > 1:
        if num_classes is not None and arr.shape[1] != num_classes:
            raise ValueError(
                f"expected one-hot `{name}` of shape ({n}, {num_classes}), received {arr.shape}"
            )
        arr = arr.argmax(axis=1)
    elif arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            f"expected `{name}` of shape ({n},) or one-hot ({n}, classes), received {arr.shape}"
        )
    if len(arr) != n:
        raise ValueError(f"expected `{name}` of length {n} (one per image), received {len(arr)}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"expected integer class ids in `{name}`, received {arr[:8]}")
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"expected integer class ids in `{name}`, received dtype {arr.dtype}")
    ids = arr.astype(np.int64)
    if num_classes is not None and ((ids < 0).any() or (ids >= num_classes).any()):
        bad = ids[(ids < 0) | (ids >= num_classes)]
        raise ValueError(
            f"expected `{name}` in [0, {num_classes}) for a model with {num_classes} classes, "
            f"received {bad[:8].tolist()}"
        )
    return ids.astype(np.int32)


def resolve_targets(
    target: TargetSpec, n: int, num_classes: int | None, labels: Any | None
) -> np.ndarray:
    """Turns a target spec into int32 class ids `(N,)`, `-1` meaning "predicted".

    A callable target returns all zeros (the callable picks the score itself).

    Raises:
        ValueError: For an unknown string, `"label"` without labels, or ids out of range.
        TypeError: For an unsupported target type.
    """
    if callable(target):
        return np.zeros(n, np.int32)
    if isinstance(target, str):
        if target == "predicted":
            return np.full(n, -1, np.int32)
        if target == "label":
            if labels is None:
                raise ValueError('`target="label"` needs `labels=`; received labels=None')
            if num_classes is None:
                raise ValueError(
                    '`target="label"` needs a classification output; the chosen output is a '
                    'single linear unit (regression). Use target="predicted" or 0.'
                )
            return check_labels(labels, n, num_classes)
        raise ValueError(
            f'Unknown `target`: received {target!r}; expected "predicted", "label", an int, a '
            "sequence of ints (one per image) or a callable"
        )
    if isinstance(target, bool):
        raise TypeError(f"expected `target` to be an int, received {target!r}")
    if isinstance(target, (int, np.integer)):
        limit = 1 if num_classes is None else num_classes
        if not 0 <= int(target) < limit:
            raise ValueError(
                f"expected `target` in [0, {limit}) for an output with {limit} "
                f"{'classes' if num_classes else 'unit'}, received target={target}"
            )
        return np.full(n, int(target), np.int32)
    if isinstance(target, (Sequence, np.ndarray)) or hasattr(target, "numpy"):
        ids = check_labels(target, n, 1 if num_classes is None else num_classes, name="target")
        return ids
    raise TypeError(
        f'expected `target` to be "predicted", "label", an int, a sequence of ints or a '
        f"callable, received {type(target).__name__}"
    )
