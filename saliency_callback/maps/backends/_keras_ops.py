"""The backend-neutral part of `GradientOps` (written with `keras.ops`), shared by the JAX and
PyTorch modules. Only the gradient calls differ between them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops as K

from saliency_callback.maps.graph import ScoreGraph


def call_features(graph: ScoreGraph, x: Any) -> tuple[Any, Any]:
    """`(pre, acts)` of the view (`acts` is `None` without a Grad-CAM layer)."""
    features = graph.features
    outs = features(x, training=False) if isinstance(features, keras.Model) else features(x)
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    return outs[0], (outs[1] if len(outs) > 1 else None)


class KerasGradientOps:
    """Scores, heads and targets in `keras.ops`; subclasses add the gradients.

    Args:
        graph: The pre-activation view of the model.
        target_fn: Optional callable mapping pre-activation outputs `(B, ...)` to scores `(B,)`.
    """

    def __init__(self, graph: ScoreGraph, target_fn: Callable[[Any], Any] | None = None):
        self.graph = graph
        self.target_fn = target_fn

    def head_logits(self, pre: Any) -> Any:
        """The fused Dense head (live kernel and bias), as float32 `(B, K)`."""
        dense = self.graph.dense
        if dense is not None:
            pre = K.matmul(pre, K.cast(dense.kernel, pre.dtype))
            if dense.bias is not None:
                pre = pre + K.cast(dense.bias, pre.dtype)
        pre = K.cast(pre, "float32")
        if len(pre.shape) == 1:
            pre = pre[:, None]
        return pre

    def logits(self, x: Any) -> tuple[Any, Any]:
        pre, acts = call_features(self.graph, x)
        return self.head_logits(pre), acts

    def resolve_targets(self, logits: Any, targets: Any) -> Any:
        """Replaces `-1` ("predicted") entries by the model's prediction."""
        head = self.graph.head
        if head.is_binary:
            predicted = K.cast(logits[:, 0] > 0, "int32")
        elif head.num_classes is None or logits.shape[-1] == 1:
            predicted = K.zeros_like(targets)
        else:
            predicted = K.cast(K.argmax(logits, axis=-1), "int32")
        return K.where(targets < 0, predicted, targets)

    def scores(self, logits: Any, targets: Any) -> Any:
        if self.target_fn is not None:
            return K.cast(K.reshape(self.target_fn(logits), (-1,)), "float32")
        if self.graph.head.is_binary:
            sign = K.where(targets > 0, 1.0, -1.0)
            return sign * logits[:, 0]
        index = K.cast(targets, "int32")[:, None]
        return K.take_along_axis(logits, index, axis=1)[:, 0]


def check_target_fn(ops: KerasGradientOps, image_shape: tuple[int, ...]) -> None:
    """Calls the callable target once on two blank images and checks it returns `(2,)` scores.

    Raises:
        ValueError: If the callable fails or returns a shape other than one score per image.
    """
    logits, _ = ops.logits(K.zeros((2, *image_shape), "float32"))
    try:
        out = ops.target_fn(logits)  # type: ignore[misc]
    except Exception as err:
        raise ValueError(
            f"The callable `target` failed on model outputs of shape {tuple(logits.shape)}: {err}"
        ) from err
    shape = tuple(getattr(out, "shape", np.shape(out)))
    if shape != (2,):
        raise ValueError(
            "expected the callable `target` to return one score per image, shape (2,) for "
            f"outputs of shape {tuple(logits.shape)}; received shape {shape}"
        )


def pad_chunk(
    index: np.ndarray, point_index: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pads a chunk's indices to `chunk` entries (repeating the last), so a function compiled
    for fixed shapes sees one shape for every chunk; `valid` is 1 for the real entries.

    Returns:
        `(index, point_index, valid float32, n)` with `n` the number of real entries.
    """
    index = np.asarray(index, np.int32)
    point_index = np.asarray(point_index, np.int32)
    n = len(index)
    size = max(int(chunk), n)
    valid = np.zeros(size, np.float32)
    valid[:n] = 1.0
    if size > n:
        index = np.concatenate([index, np.full(size - n, index[-1], np.int32)])
        point_index = np.concatenate([point_index, np.full(size - n, point_index[-1], np.int32)])
    return index, point_index, valid, n
