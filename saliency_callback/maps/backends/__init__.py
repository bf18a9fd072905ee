"""One gradient contract, one module per Keras backend.

`backend()` returns the module for `keras.backend.backend()`. Every module provides:

- `GradientOps(graph, target_fn)`: what the methods call inside the compiled step:
  `logits(x) -> (pre, acts)`, `resolve_targets(logits, targets)`, `scores(logits, targets)`,
  `input_gradients(x, targets) -> (grads, logits, targets)` and
  `layer_gradients(x, targets) -> (acts, grads, logits, targets)`;
- `compile_step(point, ops, image_shape, points, chunk)`: one chunk of a method's work,
  `step(x_all, index, point_index, t_all) -> (contributions, logits, targets)`;
- `compile_forward(ops, image_shape, chunk)`: `forward(x_all, index, t_all) -> (logits,
  targets)`;
- `check_target_fn(ops, image_shape)`, `tracing_count(fn)`;
- `to_device(numpy array)` and `to_numpy(tensor)`: the engine sends the probes once per call
  and gets numpy back.

Compiled functions read the model's variables at each call (never baked in at trace time), so
one explainer follows a model during training, and they never retrace for same-shape calls.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import keras

SUPPORTED = ("tensorflow", "jax", "torch")


def backend(name: str | None = None) -> ModuleType:
    """The gradient module of the Keras backend `name` (default: the active one).

    Raises:
        ValueError: For a backend without gradients here (`numpy`, `openvino`).
    """
    name = keras.backend.backend() if name is None else name
    if name not in SUPPORTED:
        raise ValueError(
            f"saliency_callback computes gradients on the Keras backends {list(SUPPORTED)}; "
            f"the Keras backend is {name!r}, which has no gradients. Set KERAS_BACKEND to one "
            "of them."
        )
    return importlib.import_module(f"saliency_callback.maps.backends.{name}")
