"""The TensorFlow backend: pre-activation scores, gradients (`tf.GradientTape`), compilation
(`tf.function` with a `None` batch dimension, so one trace serves every chunk size).

The methods in `methods.py` are written against the `GradientOps` object this module builds;
`backends/jax.py` and `backends/torch.py` implement the same contract (see `backends/__init__`).
The model's graph is read by `graph.py` (backend-free); a fused `Dense(..., activation=
"softmax")` head is evaluated here as `inputs @ kernel + bias` from the live variables.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from saliency_callback.maps.backends._keras_ops import KerasGradientOps, check_target_fn

__all__ = [
    "GradientOps",
    "check_target_fn",
    "compile_forward",
    "compile_step",
    "compile_sweep",
    "to_device",
    "to_numpy",
    "tracing_count",
]


class GradientOps(KerasGradientOps):
    """Backend operations the methods call inside the compiled function: the heads, targets
    and scores of `KerasGradientOps`, and the gradients with `tf.GradientTape`."""

    def input_gradients(
        self, x: tf.Tensor, targets: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Gradient of each example's target score w.r.t. its input pixels.

        Returns:
            `(grads (B, H, W, C), logits (B, K), resolved targets (B,))`.
        """
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits, _ = self.logits(x)
            targets = self.resolve_targets(logits, targets)
            score = self.scores(logits, targets)
        return tape.gradient(score, x), logits, targets

    def layer_gradients(
        self, x: tf.Tensor, targets: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Activations of the Grad-CAM layer and the target score's gradient w.r.t. them.

        Returns:
            `(acts (B, h, w, k), grads (B, h, w, k), logits (B, K), resolved targets (B,))`.
        """
        with tf.GradientTape() as tape:
            logits, acts = self.logits(x)
            if acts is None:
                raise ValueError("Grad-CAM needs a layer; the engine was built without one.")
            tape.watch(acts)
            targets = self.resolve_targets(logits, targets)
            score = self.scores(logits, targets)
        return acts, tape.gradient(score, acts), logits, targets


def to_device(x: np.ndarray) -> tf.Tensor:
    """Sends a numpy array to the device once (the steps gather their chunks from it)."""
    return tf.convert_to_tensor(x)


def to_numpy(x: Any) -> np.ndarray:
    return np.asarray(x.numpy())


def compile_step(
    point: Callable[..., tuple[Any, Any, Any]],
    ops: GradientOps,
    image_shape: tuple[int, ...],
    points: int = 1,
    chunk: int | None = None,
) -> Any:
    """Compiles one chunk of a method's work with a fixed input signature (one trace).

    The step gathers the chunk's images and targets from the whole probe batch, so the probes
    are sent to the device once per call and nothing retraces when the chunk size changes.
    With several points per image, the chunk's (sorted, contiguous) image indices are summed in
    the graph, so the step returns one contribution per image `index[0] .. index[-1]`.
    `chunk` (the largest chunk) is not needed here: the batch dimension is symbolic.
    """
    spec_x = tf.TensorSpec((None, *image_shape), tf.float32)
    spec_i = tf.TensorSpec((None,), tf.int32)

    @tf.function(input_signature=[spec_x, spec_i, spec_i, spec_i])
    def step(x_all: tf.Tensor, index: tf.Tensor, point_index: tf.Tensor, t_all: tf.Tensor):
        x = tf.gather(x_all, index)
        targets = tf.gather(t_all, index)
        contrib, logits, resolved = point(ops, x, targets, point_index)
        contrib = tf.cast(contrib, tf.float32)
        if points > 1:
            contrib = tf.math.segment_sum(contrib, index - index[0])
        return contrib, logits, resolved

    return step


def compile_sweep(
    point: Callable[..., tuple[Any, Any, Any]],
    ops: GradientOps,
    image_shape: tuple[int, ...],
    points: int,
    chunk: int,
) -> Any:
    """Compiles a whole method's work in one call: the chunks of `chunk` (image, point) pairs
    are looped in the graph (`tf.range`) and summed per image there, so an explanation with
    many points per image (SmoothGrad, IG) costs one call and one transfer back, not one per
    chunk. Memory stays bounded by `chunk` as in `compile_step`.

    `sweep(x_all, t_all) -> contributions (N, ...)`, with targets already resolved.
    """
    spec_x = tf.TensorSpec((None, *image_shape), tf.float32)
    spec_i = tf.TensorSpec((None,), tf.int32)

    @tf.function(input_signature=[spec_x, spec_i])
    def sweep(x_all: tf.Tensor, t_all: tf.Tensor) -> tf.Tensor:
        n = tf.shape(x_all)[0]
        total = n * points

        def chunk_sum(start: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            """One chunk's contributions summed per image: rows `index[0] .. index[-1]`."""
            flat = tf.range(start, tf.minimum(total, start + chunk))
            index = flat // points
            x, targets = tf.gather(x_all, index), tf.gather(t_all, index)
            contrib, _, _ = point(ops, x, targets, flat % points)
            part = tf.math.segment_sum(tf.cast(contrib, tf.float32), index - index[0])
            rows = tf.range(index[0], index[0] + tf.shape(part)[0])[:, None]
            return rows, part

        # The model and its gradient are traced once, in the loop's body: the first chunk
        # creates the sum (whose shape is the contributions', known only there), the others
        # add to it (only the chunk's rows). `out` enters the loop as a placeholder of unknown
        # shape; the same ops in the same order as a peeled first chunk, at half the graph.
        out = tf.zeros([0], tf.float32)
        for start in tf.range(0, total, chunk):
            # At most two chunks at a time: more parallel iterations hold more activations.
            tf.autograph.experimental.set_loop_options(
                parallel_iterations=2, shape_invariants=[(out, tf.TensorShape(None))]
            )
            rows, part = chunk_sum(start)
            shape = tf.concat([[n], tf.shape(part)[1:]], axis=0)
            out = tf.cond(
                start == 0,
                functools.partial(tf.scatter_nd, rows, part, shape),
                functools.partial(tf.tensor_scatter_nd_add, out, rows, part),
            )
        return out

    return sweep


def compile_forward(
    ops: GradientOps, image_shape: tuple[int, ...], chunk: int | None = None
) -> Any:
    """Compiles a forward pass of the images `index` of `x_all`, returning pre-activation
    outputs and resolved targets."""
    spec_x = tf.TensorSpec((None, *image_shape), tf.float32)
    spec_i = tf.TensorSpec((None,), tf.int32)

    @tf.function(input_signature=[spec_x, spec_i, spec_i])
    def forward(x_all: tf.Tensor, index: tf.Tensor, t_all: tf.Tensor):
        logits, _ = ops.logits(tf.gather(x_all, index))
        return logits, ops.resolve_targets(logits, tf.gather(t_all, index))

    return forward


def tracing_count(fn: Any) -> int:
    """How many times a compiled function has been traced."""
    return int(fn.experimental_get_tracing_count())
