"""What the engine reads from a Keras model's graph: the head and the Grad-CAM layer.

Backend-free: it inspects the symbolic graph of a functional or Sequential model and builds new
functional views over the user's layers (sharing their variables by reference, so a view follows
training without copying weights). The user's model is never mutated.

- `find_head`: the chosen output, the activation to strip (softmax/sigmoid) and the tensor that
  holds the pre-activation scores (for a fused `Dense(..., activation="softmax")` head, the
  Dense layer's input, evaluated from the live kernel and bias by the backend).
- `find_gradcam_layer`: the feature map the classifier head pools: the last tensor with spatial
  extent > 1 through which *every* path from the input to the output passes. On residual nets
  that is a block output (after the add), never a tensor inside a block; on DenseNet the final
  activation rather than a growth convolution; on MobileNetV3 the map before the pooled 1x1
  convolutions of its head. Nested models (a `keras.applications` base inside a transfer
  model) are looked into: their layers are inlined into one flat view.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import keras
import numpy as np

HeadKind = Literal["softmax", "sigmoid", "linear"]

_SATURATING = ("softmax", "sigmoid")


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
    `layer_name` names the layer whose output is `acts` (Grad-CAM), `None` without one.
    """

    features: keras.Model | Callable[..., Any]
    dense: keras.layers.Dense | None
    head: Head
    layer_name: str | None = None
    model: keras.Model | None = None
    """The subclassed model that `features` calls (`None` for functional views, whose
    variables are those of `features` and `dense`)."""
    tensors: tuple[list[Any], Any, Any] | None = None
    """`(inputs, pre, acts)`, the symbolic tensors of the view (functional models only)."""

    @property
    def has_layer(self) -> bool:
        return self.layer_name is not None

    @property
    def variables(self) -> list[Any]:
        """Every variable the view reads (the model's, and the fused head's), each once."""
        found: dict[int, Any] = {}
        sources = [self.model, self.dense] if self.model is not None else [self.dense]
        if isinstance(self.features, keras.Model):
            sources.append(self.features)
        for source in sources:
            for v in getattr(source, "variables", []) or []:
                found.setdefault(id(v), v)
        return list(found.values())

    def split(self) -> tuple[keras.Model, keras.Model, bool]:
        """Two views cut at the Grad-CAM layer, for backends that differentiate functions
        rather than tensors: `lower(x) -> acts` and `upper -> pre`.

        Returns:
            `(lower, upper, needs_inputs)`: `upper` takes `acts` alone when every path to the
            output passes through the layer, else `[x, acts]` (`needs_inputs` is then `True`;
            the gradient w.r.t. `acts` is the same as through the whole graph).

        Raises:
            ValueError: If the view has no Grad-CAM layer.
        """
        if self.tensors is None or self.tensors[2] is None:
            raise ValueError("Grad-CAM needs a layer; the engine was built without one.")
        inputs, pre, acts = self.tensors
        lower = keras.Model(inputs, acts, name="saliency_lower")
        try:
            return lower, keras.Model(acts, pre, name="saliency_upper"), False
        except ValueError:  # a path around the layer: the upper part also reads the input
            return lower, keras.Model([*inputs, acts], pre, name="saliency_upper"), True


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


def _layer_output_shape(layer: Any) -> tuple[Any, ...] | None:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _functional(model: Any) -> Any | None:
    """The functional graph behind a model (a built `Sequential` keeps one), else `None`."""
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_run_through_graph"):
        return None
    if graph_inputs_outputs(graph) is None:
        return None
    return graph


def _nested_models(model: keras.Model) -> list[Any]:
    return [lyr for lyr in model.layers if isinstance(lyr, keras.Model)]


def flatten_model(model: keras.Model) -> keras.Model:
    """A functional view of `model` with every nested functional/Sequential model inlined.

    The view calls the user's own layers (weights shared by reference) on the model's own input
    tensors, so layers inside a nested base model become reachable from the outer input. A
    model without nested models is returned as it is.

    Raises:
        ValueError: If the model's graph cannot be re-run layer by layer.
    """
    if not _nested_models(model):
        return model
    graph = _functional(model)
    if graph is None:
        raise ValueError(f"cannot read the graph of model {model.name!r}")

    def operation(op: Any) -> Any:
        inner = _functional(op) if isinstance(op, keras.Model) else None
        if inner is None:
            return op

        def call(*args: Any, **kwargs: Any) -> Any:
            # `training`/`mask` arguments are dropped: the view is called with training=False.
            outs = inner._run_through_graph(list(args), operation_fn=operation)
            return outs

        return call

    inputs = list(graph.inputs)
    outputs = graph._run_through_graph(inputs, operation_fn=operation)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return keras.Model(inputs, list(outputs), name=f"{model.name}_flat")


def _subgraph(outputs: list[Any]) -> tuple[list[Any], list[tuple[int, int]]]:
    """Tensors that `outputs` depend on, in topological order (inputs first), and the edges.

    Returns:
        `(tensors, edges)` where `edges` are `(i, j)` positions: tensor `i` feeds the operation
        that produces tensor `j`.
    """
    order: list[Any] = []
    position: dict[int, int] = {}
    parents: dict[int, list[Any]] = {}
    stack: list[tuple[Any, bool]] = [(t, False) for t in outputs]
    while stack:
        tensor, expanded = stack.pop()
        key = id(tensor)
        if expanded:
            if key not in position:
                position[key] = len(order)
                order.append(tensor)
            continue
        if key in position or key in parents:
            continue
        parents[key] = _node_inputs(tensor)
        stack.append((tensor, True))
        stack.extend((p, False) for p in parents[key] if id(p) not in position)
    edges = [
        (position[id(p)], position[id(t)])
        for t in order
        for p in parents[id(t)]
        if id(p) in position
    ]
    return order, edges


def _cut_tensors(tensors: list[Any], edges: list[tuple[int, int]]) -> list[bool]:
    """Which tensors every path from the inputs to the last tensor passes through.

    In a topological order of a graph whose tensors all lie on some input-to-output path, a
    tensor is on every path exactly when no edge jumps over its position (an edge from before
    it to after it would be a path around it).
    """
    jumps = np.zeros(len(tensors) + 1, np.int64)
    for i, j in edges:
        if j > i + 1:
            jumps[i + 1] += 1
            jumps[j] -= 1
    return list(np.cumsum(jumps)[: len(tensors)] == 0)


def _is_feature_map(tensor: Any) -> bool:
    shape = tuple(tensor.shape)
    if len(shape) != 4:
        return False
    h, w = shape[1], shape[2]
    return h is None or w is None or h > 1 or w > 1


def _producer_name(tensor: Any) -> str | None:
    hist = _history(tensor)
    return None if hist is None else hist[0].name


def feature_map_candidates(model: keras.Model, output: Any) -> list[Any]:
    """The feature maps (4-D, spatial extent > 1) on every path to `output`, first to last."""
    tensors, edges = _subgraph([output])
    cuts = _cut_tensors(tensors, edges)
    inputs = {id(t) for t in model.inputs}
    return [
        t
        for t, cut in zip(tensors, cuts, strict=True)
        if cut and id(t) not in inputs and _is_feature_map(t)
    ]


def _named_feature_maps(model: keras.Model) -> dict[str, Any]:
    """Every 4-D tensor of the model's graph by the name of the layer that produced it."""
    tensors, _ = _subgraph(list(model.outputs))
    named: dict[str, Any] = {}
    for t in tensors:
        hist = _history(t)
        if hist is None or isinstance(hist[0], keras.layers.InputLayer):
            continue
        name = hist[0].name
        if len(tuple(t.shape)) == 4 and name not in named:
            named[name] = t
    return named


def find_gradcam_layer(model: keras.Model, layer: str | None, output: Any = None) -> Any:
    """Returns the symbolic tensor Grad-CAM weighs: the named layer's output, or by default the
    last feature map (4-D, spatial extent > 1) through which every path to `output` passes.

    Args:
        model: A functional model (nested models already inlined, see `flatten_model`).
        layer: A layer name, or `None` to choose automatically.
        output: The output tensor being explained. Defaults to the model's first output.

    Raises:
        TypeError: If `layer` is not a str.
        ValueError: If the named layer does not exist or its output is not 4-D, or the model
            has no feature map on every path to the output.
    """
    output = model.outputs[0] if output is None else output
    named = _named_feature_maps(model)
    if layer is not None:
        if not isinstance(layer, str):
            raise TypeError(f"expected the Grad-CAM `layer` to be a str, received {layer!r}")
        if layer in named:
            return named[layer]
        try:
            found = model.get_layer(layer)
        except ValueError:
            found = None
        if found is None:
            raise ValueError(
                f"Unknown Grad-CAM `layer`: received layer={layer!r}; layers with 4-D outputs "
                f"are {_short_list(named)}"
            )
        raise ValueError(
            f"Grad-CAM needs a layer with a 4-D output (batch, h, w, channels); received "
            f"layer={layer!r} with output shape {_layer_output_shape(found)}. Candidates: "
            f"{_short_list(named)}"
        )
    candidates = feature_map_candidates(model, output)
    if not candidates:
        raise ValueError(
            f"Grad-CAM found no feature map (a 4-D output with spatial extent > 1 on every path "
            f"to the output) in model {model.name!r}; name a layer with `GradCAM(layer=...)`. "
            f"Layers with 4-D outputs: {_short_list(named)}"
        )
    return candidates[-1]


def _short_list(named: dict[str, Any], most: int = 12) -> list[str]:
    names = list(named)
    return names if len(names) <= most else [*names[: most // 2], "...", *names[-most // 2 :]]


def gradcam_layer_name(
    model: keras.Model, layer: str | None = None, output: int | str | None = None
) -> str:
    """The name of the layer whose output Grad-CAM uses (nested models looked into).

    Example:
    >>> gradcam_layer_name(keras.applications.ResNet50(weights=None))
    'conv5_block3_out'
    """
    name = build_score_graph(model, output, layer).layer_name
    assert name is not None
    return name


def build_score_graph(model: keras.Model, output: int | str | None, layer: Any) -> ScoreGraph:
    """Builds the pre-activation view of `model` (and the Grad-CAM layer when `layer` is set).

    Args:
        model: A built Keras model.
        output: Which output to explain (name or index), `None` for single-output models.
        layer: `False` for no Grad-CAM layer, `None` to find it, or a layer name.
    """
    if _functional(model) is not None and _nested_models(model):
        try:
            model = flatten_model(model)
        except Exception as err:  # an exotic graph: explain the outer graph as it is
            if layer is not False:
                warnings.warn(
                    f"Could not look inside the nested models of {model.name!r} ({err}); "
                    "Grad-CAM chooses among the outer model's layers.",
                    stacklevel=3,
                )
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

        return ScoreGraph(call, None, head, model=model)
    inputs, _ = graph_inputs_outputs(model)  # type: ignore[misc]
    outs = [pre]
    layer_name = None
    if layer is not False:
        acts = find_gradcam_layer(model, layer, pre)
        outs.append(acts)
        layer_name = _producer_name(acts)
    features = keras.Model(inputs, outs, name=f"{model.name}_saliency_view")
    acts_tensor = outs[1] if len(outs) > 1 else None
    # No reference to `model` itself: explainers cached per model must not keep it alive.
    return ScoreGraph(features, dense, head, layer_name, None, (list(inputs), pre, acts_tensor))


def activate(logits: np.ndarray, kind: HeadKind) -> np.ndarray:
    """Applies the stripped activation to pre-activation outputs (numpy)."""
    if kind == "softmax":
        z = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    return logits
