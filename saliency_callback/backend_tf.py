"""The only TensorFlow gradient code: pre-activation scores, gradients, compilation.

Everything that touches `tf.GradientTape` or `tf.function` lives here. The methods in
`methods.py` are written against the small `GradientOps` object this module builds, so a JAX or
torch adapter could be added beside it without touching methods, rendering or the callback.

The user's model is never mutated: pre-activation scores are read from the live graph of a
functional model by building a *new* functional model over the same layers (which shares their
variables by reference, so it follows training without copying weights), and a fused
`Dense(..., activation="softmax")` head is evaluated as `inputs @ kernel + bias` from the live
variables.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf

HeadKind = Literal["softmax", "sigmoid", "linear"]

_SATURATING = ("softmax", "sigmoid")
_CONV_TYPES: tuple[type, ...] = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)
# Layers that keep a feature map's shape and may follow the last convolution; Grad-CAM uses the
# map after them (e.g. after BatchNorm + ReLU), as in the paper's "last convolutional layer".
_ELEMENTWISE_TYPES: tuple[type, ...] = (
    keras.layers.BatchNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
    keras.layers.LayerNormalization,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
)


@dataclass(frozen=True)
class Head:
    """What the engine learned about the chosen model output.

    Attributes:
        kind: The activation that was stripped to get pre-activation scores: `"softmax"`,
            `"sigmoid"`, or `"linear"` (the output already is pre-activation).
        units: Number of units of the output (its last dimension).
        output_index: Index of the chosen output among the model's outputs.
        output_name: Name of the chosen output.
        exact: Whether pre-activation scores were found; `False` for subclassed models whose
            graph cannot be read (their output is used as it is).
    """

    kind: HeadKind
    units: int
    output_index: int
    output_name: str
    exact: bool = True

    @property
    def num_classes(self) -> int | None:
        """Number of classes a target may index, or `None` for a regression output."""
        if self.kind == "sigmoid" and self.units == 1:
            return 2  # binary: class 1 is the logit, class 0 its negation
        if self.kind == "linear" and self.units == 1:
            return None  # a single linear unit: regression
        return self.units

    @property
    def is_binary(self) -> bool:
        return self.kind == "sigmoid" and self.units == 1


def _activation_name(fn: Any) -> str | None:
    if fn is None:
        return None
    try:
        name = keras.activations.serialize(fn)
    except Exception:  # custom callables
        return getattr(fn, "__name__", None)
    if isinstance(name, dict):
        name = name.get("config", {}).get("name", name.get("class_name"))
    return name if isinstance(name, str) else None


def _history(tensor: Any) -> tuple[Any, int, int] | None:
    hist = getattr(tensor, "_keras_history", None)
    if hist is None:
        return None
    return hist.operation, hist.node_index, hist.tensor_index


def _node_inputs(tensor: Any) -> list[Any]:
    hist = _history(tensor)
    if hist is None:
        return []
    op, node_index, _ = hist
    nodes = getattr(op, "_inbound_nodes", [])
    if node_index >= len(nodes):
        return []
    return list(nodes[node_index].input_tensors)


def graph_inputs_outputs(model: keras.Model) -> tuple[list[Any], list[Any]] | None:
    """Returns the symbolic inputs and outputs of a functional/Sequential model, else `None`."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        return None
    if not inputs or not outputs:
        return None
    return list(inputs), list(outputs)


def output_names(model: keras.Model) -> list[str]:
    graph = graph_inputs_outputs(model)
    if graph is None:
        return ["output_0"]
    names = []
    for i, out in enumerate(graph[1]):
        hist = _history(out)
        names.append(hist[0].name if hist is not None else f"output_{i}")
    return names


@dataclass
class ScoreGraph:
    """A new functional model over the user's layers that yields pre-activation tensors.

    `features(x)` returns `[pre, acts]` (or `[pre]`), where `pre` is either the logits or, for a
    fused `Dense` head, the Dense layer's input; `dense` is that layer (read live) or `None`.
    """

    features: keras.Model | Callable[..., Any]
    dense: keras.layers.Dense | None
    head: Head
    has_layer: bool


def find_head(
    model: keras.Model, output: int | str | None
) -> tuple[Head, Any | None, keras.layers.Dense | None]:
    """Finds the chosen output and its pre-activation tensor.

    Returns:
        `(head, pre_tensor, dense)`: `pre_tensor` is the symbolic tensor holding the logits (or
        the input of `dense`, a fused `Dense` head), `None` for subclassed models.

    Raises:
        ValueError: If `output` does not name or index one of the model's outputs, or the model
            has several outputs and `output` is `None`.
    """
    graph = graph_inputs_outputs(model)
    names = output_names(model)
    if graph is None:
        if output not in (None, 0, names[0]):
            raise ValueError(
                f"Received `output={output!r}`, but the model is subclassed and has no named "
                "outputs; pass `output=None`."
            )
        return _subclassed_head(model), None, None
    outputs = graph[1]
    if output is None:
        if len(outputs) > 1:
            raise ValueError(
                f"The model has {len(outputs)} outputs {names}; choose one with `output=` "
                "(a name or an index). Received output=None."
            )
        index = 0
    elif isinstance(output, bool) or not isinstance(output, (int, str)):
        raise TypeError(f"expected `output` to be an int or a str, received {output!r}")
    elif isinstance(output, int):
        if not -len(outputs) <= output < len(outputs):
            raise ValueError(
                f"expected `output` to be an index in [0, {len(outputs)}) for a model with "
                f"outputs {names}, received output={output}"
            )
        index = output % len(outputs)
    else:
        if output not in names:
            raise ValueError(
                f"Unknown `output`: received output={output!r}; the model's outputs are {names}"
            )
        index = names.index(output)

    out = outputs[index]
    units = _units(out.shape)
    hist = _history(out)
    layer = hist[0] if hist is not None else None
    kind: HeadKind = "linear"
    pre = out
    dense = None
    if isinstance(layer, (keras.layers.Softmax,)):
        kind, pre = "softmax", _node_inputs(out)[0]
    elif isinstance(layer, keras.layers.Activation):
        name = _activation_name(layer.activation)
        if name in _SATURATING:
            kind, pre = name, _node_inputs(out)[0]  # type: ignore[assignment]
    elif isinstance(layer, keras.layers.Dense):
        name = _activation_name(layer.activation)
        if name in _SATURATING:
            kind, pre, dense = name, _node_inputs(out)[0], layer  # type: ignore[assignment]
    elif layer is not None and _activation_name(getattr(layer, "activation", None)) in _SATURATING:
        warnings.warn(
            f"The output layer {layer.name!r} ({type(layer).__name__}) applies "
            f"{_activation_name(layer.activation)!r}; only Dense, Activation and Softmax heads "
            "can be read before the activation, so saliency is taken of the saturated output.",
            stacklevel=3,
        )
    return Head(kind, units, index, names[index]), pre, dense


def _units(shape: Any) -> int:
    dims = tuple(shape)
    if len(dims) == 1:
        return 1
    if len(dims) != 2 or dims[1] is None:
        return -1  # not a (batch, units) output: only a callable target can score it
    return int(dims[1])


def _subclassed_head(model: keras.Model) -> Head:
    warnings.warn(
        f"Cannot read the graph of the subclassed model {model.name!r}: saliency is taken of its "
        "output as it is. If it ends in softmax or sigmoid, gradients may vanish when saturated; "
        "build the model with the functional API to get pre-activation scores.",
        stacklevel=3,
    )
    return Head("linear", -1, 0, "output_0", exact=False)


def conv_candidates(model: keras.Model) -> list[str]:
    """Names of top-level layers whose output is a 4-D feature map."""
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shape = _layer_output_shape(layer)
        if shape is not None and len(shape) == 4:
            names.append(layer.name)
    return names


def _layer_output_shape(layer: Any) -> tuple[Any, ...] | None:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _output_in_graph(model: keras.Model, layer: Any) -> Any:
    """The output tensor of `layer` as called in `model`'s own graph.

    `layer.output` is the output of the layer's *first* call; a nested model's first "call" is
    its own construction, which is not connected to the outer model's inputs.
    """
    graph = graph_inputs_outputs(model)
    if graph is None:
        return layer.output
    seen: set[int] = set()
    stack = list(graph[1])
    while stack:
        tensor = stack.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        hist = _history(tensor)
        if hist is None:
            continue
        if hist[0] is layer:
            return tensor
        stack.extend(_node_inputs(tensor))
    return layer.output


def find_gradcam_layer(model: keras.Model, layer: str | None) -> Any:
    """Returns the symbolic output of the Grad-CAM layer.

    With `layer=None` it is the last convolution (a nested model with a 4-D output counts, as
    a `MobileNetV2` base does) followed by any shape-keeping layers (BatchNorm, ReLU, ...).

    Raises:
        ValueError: If the named layer does not exist or its output is not 4-D, or no
            convolution is found.
    """
    candidates = conv_candidates(model)
    if layer is not None:
        if not isinstance(layer, str):
            raise TypeError(f"expected the Grad-CAM `layer` to be a str, received {layer!r}")
        names = [lyr.name for lyr in model.layers]
        if layer not in names:
            raise ValueError(
                f"Unknown Grad-CAM `layer`: received layer={layer!r}; layers with 4-D outputs "
                f"are {candidates}"
            )
        target = model.get_layer(layer)
        shape = _layer_output_shape(target)
        if shape is None or len(shape) != 4:
            raise ValueError(
                f"Grad-CAM needs a layer with a 4-D output (batch, h, w, channels); received "
                f"layer={layer!r} with output shape {shape}. Candidates: {candidates}"
            )
        return _output_in_graph(model, target)
    chosen = None
    layers = list(model.layers)
    for i, lyr in enumerate(layers):
        shape = _layer_output_shape(lyr)
        if shape is None or len(shape) != 4:
            continue
        if isinstance(lyr, (*_CONV_TYPES, keras.Model)):
            chosen = i
    if chosen is None:
        raise ValueError(
            f"Grad-CAM found no convolutional layer in model {model.name!r}; name one with "
            f"`GradCAM(layer=...)`. Layers with 4-D outputs: {candidates}"
        )
    shape = _layer_output_shape(layers[chosen])
    while chosen + 1 < len(layers):
        nxt = layers[chosen + 1]
        if not isinstance(nxt, _ELEMENTWISE_TYPES) or _layer_output_shape(nxt) != shape:
            break
        chosen += 1
    return _output_in_graph(model, layers[chosen])


def build_score_graph(model: keras.Model, output: int | str | None, layer: Any) -> ScoreGraph:
    """Builds the pre-activation view of `model` (and the Grad-CAM layer when `layer` is set).

    Args:
        model: A built Keras model.
        output: Which output to explain (name or index), `None` for single-output models.
        layer: `False` for no Grad-CAM layer, `None` to find it, or a layer name.
    """
    head, pre, dense = find_head(model, output)
    if pre is None:  # subclassed
        if layer is not False:
            raise ValueError(
                f"Grad-CAM needs a functional or Sequential model to reach an inner layer; "
                f"received the subclassed model {model.name!r}."
            )

        def call(x: Any) -> list[Any]:
            out = model(x, training=False)
            if isinstance(out, (list, tuple)):
                out = out[0]
            if isinstance(out, dict):
                out = next(iter(out.values()))
            return [out]

        return ScoreGraph(call, None, head, False)
    inputs, _ = graph_inputs_outputs(model)  # type: ignore[misc]
    outs = [pre]
    if layer is not False:
        outs.append(find_gradcam_layer(model, layer))
    features = keras.Model(inputs, outs, name=f"{model.name}_saliency_view")
    return ScoreGraph(features, dense, head, layer is not False)


class GradientOps:
    """Backend operations the methods call inside the compiled function.

    Args:
        graph: The pre-activation view of the model.
        target_fn: Optional callable mapping pre-activation outputs `(B, ...)` to scores `(B,)`.
    """

    def __init__(self, graph: ScoreGraph, target_fn: Callable[[Any], Any] | None = None):
        self.graph = graph
        self.target_fn = target_fn

    def logits(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        outs = (
            self.graph.features(x, training=False)
            if isinstance(self.graph.features, keras.Model)
            else self.graph.features(x)
        )
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        pre = outs[0]
        acts = outs[1] if len(outs) > 1 else None
        dense = self.graph.dense
        if dense is not None:
            pre = tf.matmul(pre, tf.cast(dense.kernel, pre.dtype))
            if dense.bias is not None:
                pre = pre + tf.cast(dense.bias, pre.dtype)
        pre = tf.cast(pre, tf.float32)
        if pre.shape.rank == 1:
            pre = pre[:, None]
        return pre, acts

    def resolve_targets(self, logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """Replaces `-1` ("predicted") entries by the model's prediction."""
        head = self.graph.head
        if head.is_binary:
            predicted = tf.cast(logits[:, 0] > 0, tf.int32)
        elif head.num_classes is None or logits.shape[-1] == 1:
            predicted = tf.zeros_like(targets)
        else:
            predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return tf.where(targets < 0, predicted, targets)

    def scores(self, logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        if self.target_fn is not None:
            return tf.cast(tf.reshape(self.target_fn(logits), [-1]), tf.float32)
        if self.graph.head.is_binary:
            sign = tf.where(targets > 0, 1.0, -1.0)
            return sign * logits[:, 0]
        return tf.gather(logits, targets, axis=1, batch_dims=1)

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


def compile_step(
    point: Callable[..., tuple[Any, Any, Any]],
    ops: GradientOps,
    image_shape: tuple[int, ...],
    points: int = 1,
) -> Any:
    """Compiles one chunk of a method's work with a fixed input signature (one trace).

    The step gathers the chunk's images and targets from the whole probe batch, so the probes
    are sent to the device once per call and nothing retraces when the chunk size changes.
    With several points per image, the chunk's (sorted, contiguous) image indices are summed in
    the graph, so the step returns one contribution per image `index[0] .. index[-1]`.
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


def compile_forward(ops: GradientOps, image_shape: tuple[int, ...]) -> Any:
    """Compiles a forward pass returning pre-activation outputs and resolved targets."""
    spec_x = tf.TensorSpec((None, *image_shape), tf.float32)
    spec_i = tf.TensorSpec((None,), tf.int32)

    @tf.function(input_signature=[spec_x, spec_i])
    def forward(x: tf.Tensor, targets: tf.Tensor):
        logits, _ = ops.logits(x)
        return logits, ops.resolve_targets(logits, targets)

    return forward


def activate(logits: np.ndarray, kind: HeadKind) -> np.ndarray:
    """Applies the stripped activation to pre-activation outputs (numpy)."""
    if kind == "softmax":
        z = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    return logits


def check_target_fn(ops: GradientOps, image_shape: tuple[int, ...]) -> None:
    """Calls the callable target once on two blank images and checks it returns `(2,)` scores.

    Raises:
        ValueError: If the callable fails or returns a shape other than one score per image.
    """
    x = tf.zeros((2, *image_shape), tf.float32)
    logits, _ = ops.logits(x)
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


def tracing_count(fn: Any) -> int:
    """How many times a compiled function has been traced."""
    return int(fn.experimental_get_tracing_count())
