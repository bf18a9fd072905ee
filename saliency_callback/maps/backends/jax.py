"""The JAX backend: `jax.grad` over the model called with the variables' values passed in.

Each compiled function is one `jax.jit` of `(variable values, *args)`: the values are read from
the live variables at every call and mapped onto them with `keras.StatelessScope`, as
`Model.stateless_call` does, so the compiled function follows training instead of baking the
first weights in as constants. Nothing is donated (the model still holds its buffers), nothing
is assigned (a stateless scope collects writes and drops them) and no random state is drawn.

Chunks are padded to the explainer's `batch_size`, so a function compiled for fixed shapes
traces once per image shape. Grad-CAM differentiates w.r.t. the layer's activations through
two views cut at the layer (`ScoreGraph.split`): `acts = lower(x)`, `pre = upper(acts)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras import ops as K

from saliency_callback.maps.backends._keras_ops import KerasGradientOps, check_target_fn, pad_chunk
from saliency_callback.maps.graph import ScoreGraph

__all__ = [
    "GradientOps",
    "check_target_fn",
    "compile_forward",
    "compile_step",
    "to_device",
    "to_numpy",
    "tracing_count",
]


class GradientOps(KerasGradientOps):
    """Backend operations the methods call inside the compiled function (see `backends`)."""

    def __init__(self, graph: ScoreGraph, target_fn: Callable[[Any], Any] | None = None):
        super().__init__(graph, target_fn)
        # Built here, not while tracing: the views are plain functional models.
        self._split = graph.split() if graph.has_layer else None

    def _score(self, logits: Any, targets: Any) -> tuple[Any, tuple[Any, Any]]:
        resolved = self.resolve_targets(jax.lax.stop_gradient(logits), targets)
        # Examples are independent (training=False), so the gradient of the sum is each
        # example's gradient of its own score.
        return jnp.sum(self.scores(logits, resolved)), (logits, resolved)

    def input_gradients(self, x: Any, targets: Any) -> tuple[Any, Any, Any]:
        def score(x: Any) -> tuple[Any, tuple[Any, Any]]:
            return self._score(self.logits(x)[0], targets)

        grads, (logits, resolved) = jax.grad(score, has_aux=True)(x)
        return grads, logits, resolved

    def layer_gradients(self, x: Any, targets: Any) -> tuple[Any, Any, Any, Any]:
        if self._split is None:
            raise ValueError("Grad-CAM needs a layer; the engine was built without one.")
        lower, upper, needs_inputs = self._split
        acts = lower(x, training=False)

        def score(a: Any) -> tuple[Any, tuple[Any, Any]]:
            pre = upper([x, a] if needs_inputs else a, training=False)
            return self._score(self.head_logits(pre), targets)

        grads, (logits, resolved) = jax.grad(score, has_aux=True)(acts)
        return acts, grads, logits, resolved


class Compiled:
    """`fn(*args)` jitted once with the values of `variables` as arguments.

    Attributes:
        traces: How many times `fn` has been traced (stays constant once warmed up).
    """

    def __init__(self, fn: Callable[..., Any], variables: Sequence[Any]):
        self.variables = list(variables)
        self.traces = 0

        def traced(values: list[Any], *args: Any) -> Any:
            self.traces += 1  # Python side effect: runs only while tracing
            mapping = list(zip(self.variables, values, strict=True))
            with keras.StatelessScope(state_mapping=mapping):
                return fn(*args)

        self._jitted = jax.jit(traced)

    def __call__(self, *args: Any) -> Any:
        return self._jitted([v.value for v in self.variables], *args)


def to_device(x: np.ndarray) -> Any:
    """Sends a numpy array to Keras's device once (the steps gather their chunks from it)."""
    return K.convert_to_tensor(x)


def to_numpy(x: Any) -> np.ndarray:
    return np.asarray(x)


def _gather(x_all: Any, t_all: Any, index: np.ndarray) -> tuple[Any, Any]:
    """The chunk's images and targets, gathered on the device outside the jitted function, so
    that its shapes depend on the chunk size only (not on the number of probes)."""
    i = jnp.asarray(index)
    return jnp.take(x_all, i, axis=0), jnp.take(t_all, i, axis=0)


def compile_step(
    point: Callable[..., tuple[Any, Any, Any]],
    ops: GradientOps,
    image_shape: tuple[int, ...],
    points: int = 1,
    chunk: int | None = None,
) -> Any:
    """One chunk of a method's work, jitted once per image shape (see the TF module).

    Chunks shorter than `chunk` are padded (their extra entries masked out of the sums).
    """

    def body(x: Any, index: Any, point_index: Any, targets: Any, valid: Any) -> Any:
        contrib, logits, resolved = point(ops, x, targets, point_index)
        contrib = contrib.astype(jnp.float32)
        if points > 1:
            contrib = contrib * valid.reshape((-1,) + (1,) * (contrib.ndim - 1))
            contrib = jax.ops.segment_sum(contrib, index - index[0], num_segments=len(index))
        return contrib, logits, resolved

    compiled = Compiled(body, ops.graph.variables)

    def step(x_all: Any, index: Any, point_index: Any, t_all: Any) -> tuple[Any, Any, Any]:
        idx, pidx, valid, n = pad_chunk(index, point_index, chunk or len(index))
        x, targets = _gather(x_all, t_all, idx)
        contrib, logits, resolved = compiled(x, idx, pidx, targets, valid)
        rows = n if points == 1 else int(idx[n - 1]) - int(idx[0]) + 1
        return np.asarray(contrib)[:rows], np.asarray(logits)[:n], np.asarray(resolved)[:n]

    step.compiled = compiled  # type: ignore[attr-defined]
    return step


def compile_forward(
    ops: GradientOps, image_shape: tuple[int, ...], chunk: int | None = None
) -> Any:
    """A forward pass of the images `index` of `x_all`: pre-activation outputs and targets."""

    def body(x: Any, targets: Any) -> Any:
        logits, _ = ops.logits(x)
        return logits, ops.resolve_targets(logits, targets)

    compiled = Compiled(body, ops.graph.variables)

    def forward(x_all: Any, index: Any, t_all: Any) -> tuple[Any, Any]:
        idx, _, _, n = pad_chunk(index, index, chunk or len(index))
        logits, resolved = compiled(*_gather(x_all, t_all, idx))
        return np.asarray(logits)[:n], np.asarray(resolved)[:n]

    forward.compiled = compiled  # type: ignore[attr-defined]
    return forward


def tracing_count(fn: Any) -> int:
    """How many times a compiled function has been traced."""
    return int(fn.compiled.traces)
