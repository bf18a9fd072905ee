"""The saliency engine: one compiled, batched computation for any Keras 3 image model.

`Explainer` is built once for a model and a method; every call runs the probes through a single
compiled step (`tf.function` on TensorFlow, `jax.jit` on JAX, eager on PyTorch: see
`saliency_callback.maps.backends`), chunked by `batch_size`, and never retraces for inputs of
the same shape. `compute_saliency` is the one-call form and reuses explainers across calls.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from saliency_callback.maps import inputs as _inputs
from saliency_callback.maps import postprocess
from saliency_callback.maps.inputs import TargetSpec
from saliency_callback.maps.methods import Method, get_method
from saliency_callback.maps.postprocess import Normalization, Reduction


@dataclass(frozen=True)
class Explanation:
    """What one `Explainer` call returns.

    Attributes:
        maps: float32 `(N, H, W)`, reduced over channels and normalised (see `Explainer`).
        attributions: float32 `(N, H, W, C)` raw attributions before reduction (C is 1 for
            Grad-CAM).
        targets: int32 `(N,)` the class (unit) explained for each image.
        logits: float32 `(N, K)` pre-activation outputs of the chosen output on the clean images.
        outputs: float32 `(N, K)` the model's outputs (activation applied: probabilities for
            softmax/sigmoid heads).
        scores: float32 `(N,)` the explained pre-activation score of each image.
        kind: The output's activation: `"softmax"`, `"sigmoid"` or `"linear"`.
        reduced: float32 `(N, H, W)` the attributions reduced over channels, before
            normalisation (what mask metrics should measure); `None` if not computed.
    """

    maps: np.ndarray
    attributions: np.ndarray
    targets: np.ndarray
    logits: np.ndarray
    outputs: np.ndarray
    scores: np.ndarray
    kind: str = "softmax"
    reduced: np.ndarray | None = None

    @property
    def confidence(self) -> np.ndarray:
        """float32 `(N,)`: the model's output for each explained target: its probability for
        softmax and sigmoid outputs (for a single-unit sigmoid, the probability of the explained
        class, `1 - p` for class 0), the output value itself for a linear output."""
        n = len(self.targets)
        if self.kind == "sigmoid" and self.outputs.shape[1] == 1:
            p = self.outputs[:, 0]
            return np.where(self.targets == 0, 1.0 - p, p).astype(np.float32)
        column = np.clip(self.targets, 0, self.outputs.shape[1] - 1)
        return self.outputs[np.arange(n), column].astype(np.float32)


def _check_model_type(model: Any) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(f"expected `model` to be a keras.Model, received {type(model).__name__}")


def _check_model(model: Any) -> tuple[Any, ...]:
    _check_model_type(model)
    from saliency_callback.maps import backends

    backends.backend()  # a clear error for a backend without gradients
    if not model.built:
        raise ValueError(
            f"The model {model.name!r} is not built; call it on data or give it an Input first."
        )
    try:
        model_inputs = model.inputs
    except (AttributeError, ValueError):
        model_inputs = None
    if model_inputs is None:
        shape = getattr(model, "_build_shapes_dict", None) or {}
        input_shape = next(iter(shape.values()), None) if isinstance(shape, dict) else None
        return tuple(input_shape) if input_shape else (None, None, None, None)
    if len(model_inputs) != 1:
        raise ValueError(
            f"expected an image model with one input, received a model with "
            f"{len(model_inputs)} inputs"
        )
    spec = model_inputs[0]
    dtype = str(spec.dtype)
    if not dtype.startswith(("float", "bfloat")):
        raise ValueError(
            f"The model's input has dtype {dtype}; gradients w.r.t. integer inputs do not exist. "
            "Saliency needs a model that takes float images (cast inside the model instead)."
        )
    shape = tuple(spec.shape)
    if len(shape) != 4:
        raise ValueError(
            f"expected an image model with input shape (batch, H, W, C), received a model with "
            f"input shape {shape}"
        )
    return shape


class Explainer:
    """Computes saliency maps for one model, method and target, compiled once.

    Args:
        model: A built Keras 3 image model taking `(batch, H, W, C)` float inputs. It is never
            modified; weights are read live, so one explainer follows a model during training.
        method: `"vanilla"`, `"smoothgrad"`, `"integrated_gradients"`, `"gradcam"` or a `Method`
            instance (e.g. `SmoothGrad(IntegratedGradients(steps=16))`). Defaults to
            `"vanilla"`.
        target: What to explain: `"predicted"` (each image's predicted class), `"label"` (the
            `labels` given to each call), an int (one class for all), a sequence of ints (one
            per image), or a callable mapping the pre-activation outputs `(B, K)` to one score per
            image `(B,)` (written with `keras.ops`). Defaults to `"predicted"`.
        output: For models with several outputs, the output's name or index. Defaults to
            `None`.
        batch_size: Gradient evaluations per compiled call (SmoothGrad and IG multiply the work
            per image); bounds memory. Defaults to `32`.
        reduction: How maps are reduced over channels: `"max_abs"`, `"sum_abs"` or `"signed"`.
            The unreduced values are in `Explanation.attributions`. Defaults to `"max_abs"`.
        normalize: `"minmax"` (each map into [0, 1]), `"percentile"` (clip at `percentile`) or
            `None`. Signed maps are scaled into [-1, 1]. Defaults to `"minmax"`.
        percentile: Upper percentile for `normalize="percentile"`. Defaults to `99.0`.

    Raises:
        TypeError, ValueError: For a bad model, method, target, output, layer or option, with a
            message naming the argument and the received value.

    Example:
    >>> explainer = Explainer(model, "smoothgrad", target="label")
    >>> result = explainer(probe_images, labels=probe_labels)
    >>> result.maps.shape
    (8, 64, 64)
    """

    def __init__(
        self,
        model: keras.Model,
        method: str | Method = "vanilla",
        *,
        target: TargetSpec = "predicted",
        output: int | str | None = None,
        batch_size: int = 32,
        reduction: Reduction | None = "max_abs",
        normalize: Normalization | None = "minmax",
        percentile: float = 99.0,
    ) -> None:
        from saliency_callback.maps import backends, graph

        self.input_shape = _check_model(model)
        self.method = get_method(method)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"expected `batch_size` to be an int, received {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"expected `batch_size` >= 1, received batch_size={batch_size}")
        if reduction is None:
            raise ValueError(
                "expected `reduction` in ('max_abs', 'sum_abs', 'signed') for an Explainer, "
                "received None; raw attributions are in `Explanation.attributions`"
            )
        postprocess.check_options(reduction, normalize, percentile)
        self._model_ref = weakref.ref(model)  # not a strong ref: caches must not pin models
        self.target = target
        self.batch_size = int(batch_size)
        self.reduction = reduction
        self.normalize = normalize
        self.percentile = float(percentile)
        layer = self.method.layer if self.method.needs_layer else False
        self._graph = graph.build_score_graph(model, output, layer)
        self.head = self._graph.head
        if not callable(target) and self.head.units == -1 and self.head.exact:
            raise ValueError(
                f"The output {self.head.output_name!r} is not a (batch, units) tensor; pass a "
                "callable `target` that maps it to one score per image."
            )
        self._check_target(target)
        self._backend = backends.backend()
        self._ops = self._backend.GradientOps(self._graph, target if callable(target) else None)
        self._compiled: dict[tuple[int, ...], tuple[Any, Any]] = {}
        self._sweeps: dict[tuple[int, ...], Any] = {}

    @property
    def model(self) -> keras.Model | None:
        """The explained model (`None` once it has been garbage-collected)."""
        return self._model_ref()

    def _check_target(self, target: Any) -> None:
        """Validates a fixed target now; `"label"` targets are checked with each call's labels."""
        if callable(target) or (isinstance(target, str) and target == "label"):
            return
        if isinstance(target, np.integer):
            target = int(target)
        if isinstance(target, (str, int)):
            _inputs.resolve_targets(target, 1, self.head.num_classes, None)
        elif isinstance(target, (list, tuple, np.ndarray)) or hasattr(target, "numpy"):
            n = len(_inputs.to_numpy(target, "target"))
            _inputs.resolve_targets(target, n, self.head.num_classes, None)
        else:
            raise TypeError(
                'expected `target` to be "predicted", "label", an int, a sequence of ints or a '
                f"callable, received {type(target).__name__}"
            )

    # -- compilation -------------------------------------------------------------------------

    def _functions(self, image_shape: tuple[int, ...]) -> tuple[Any, Any]:
        be = self._backend
        if image_shape not in self._compiled:
            if callable(self.target):
                be.check_target_fn(self._ops, image_shape)
            point = self.method.bind(image_shape)  # type: ignore[arg-type]
            points, chunk = self.method.num_points, self.batch_size
            step = be.compile_step(point, self._ops, image_shape, points, chunk=chunk)
            forward = be.compile_forward(self._ops, image_shape, chunk=chunk)
            self._compiled[image_shape] = (step, forward)
        return self._compiled[image_shape]

    def _sweep(self, image_shape: tuple[int, ...]) -> Any | None:
        """The backend's one-call sweep over all points, for methods with several points per
        image whose backend has one (TensorFlow); `None` otherwise (the engine loops over
        chunks)."""
        be = self._backend
        if self.method.uses_clean_input or self.method.num_points == 1:
            return None
        if not hasattr(be, "compile_sweep"):
            return None
        if image_shape not in self._sweeps:
            point = self.method.bind(image_shape)  # type: ignore[arg-type]
            self._sweeps[image_shape] = be.compile_sweep(
                point, self._ops, image_shape, self.method.num_points, self.batch_size
            )
        return self._sweeps[image_shape]

    @property
    def tracing_count(self) -> int:
        """Total number of traces of the compiled functions (stays constant once warmed up)."""
        functions = [fn for fns in self._compiled.values() for fn in fns]
        return sum(self._backend.tracing_count(fn) for fn in [*functions, *self._sweeps.values()])

    # -- validation --------------------------------------------------------------------------

    def prepare(self, images: Any, labels: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Validates images and labels against the model and resolves the targets.

        Returns:
            `(images float32 (N, H, W, C), targets int32 (N,))` with `-1` for "predicted".

        Raises:
            TypeError, ValueError: For bad images, labels or targets.
        """
        x = _inputs.check_images(images)
        x = _inputs.check_against_model(x, self.input_shape, "images")
        num_classes = self.head.num_classes
        if labels is not None and num_classes is not None:  # regression labels are values
            _inputs.check_labels(labels, len(x), num_classes)
        targets = _inputs.resolve_targets(self.target, len(x), num_classes, labels)
        return x, targets

    # -- computation -------------------------------------------------------------------------

    def __call__(self, images: Any, labels: Any | None = None) -> Explanation:
        """Explains a batch of images.

        Args:
            images: `(N, H, W, C)` or `(N, H, W)` array or tensor, uint8 or float, in the range
                the model expects (never rescaled).
            labels: Class ids `(N,)` or one-hot `(N, K)`; needed for `target="label"`.

        Returns:
            An `Explanation`.
        """
        x, targets = self.prepare(images, labels)
        return self.explain_prepared(x, targets)

    def explain_prepared(self, x: np.ndarray, targets: np.ndarray) -> Explanation:
        """Like `__call__` for inputs already returned by `prepare` (no re-validation)."""
        be = self._backend
        step, forward = self._functions(tuple(x.shape[1:]))
        n, points, chunk = len(x), self.method.num_points, self.batch_size
        x_t = be.to_device(np.asarray(x, np.float32))  # sent once; the steps gather chunks
        logits = None
        if not self.method.uses_clean_input:
            logits, targets = self._forward(forward, x_t, targets)
        t_all = be.to_device(np.asarray(targets, np.int32))
        sweep = self._sweep(tuple(x.shape[1:]))
        if sweep is not None:  # the whole work in one compiled call
            assert logits is not None
            return self._finish(be.to_numpy(sweep(x_t, t_all)), targets, logits)
        total = n * points
        parts: list[np.ndarray] = []
        clean_logits, resolved = [], []
        for start in range(0, total, chunk):
            flat = np.arange(start, min(total, start + chunk), dtype=np.int32)
            index, point = flat // points, flat % points
            contrib, lg, tg = step(x_t, index, point, t_all)
            # One row per image index[0] .. index[-1]; an image split across two chunks
            # contributes a partial sum to each, added below.
            parts.append(be.to_numpy(contrib))
            if self.method.uses_clean_input:
                clean_logits.append(be.to_numpy(lg))
                resolved.append(be.to_numpy(tg))
        if points == 1:
            attributions = np.concatenate(parts) if len(parts) > 1 else parts[0]
        else:
            attributions = np.zeros((n, *parts[0].shape[1:]), np.float32)
            for start, part in zip(range(0, total, chunk), parts, strict=True):
                first = start // points
                attributions[first : first + len(part)] += part
        if self.method.uses_clean_input:
            logits = np.concatenate(clean_logits)
            targets = np.concatenate(resolved).astype(np.int32)
        assert logits is not None  # set by the forward pass or the clean-input step
        return self._finish(attributions, targets, logits)

    def _forward(
        self, forward: Any, x_t: Any, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pre-activation outputs and resolved targets of a batch, `batch_size` at a time."""
        be = self._backend
        logit_parts, target_parts = [], []
        t_t = be.to_device(np.asarray(targets, np.int32))
        for start in range(0, len(targets), self.batch_size):
            index = np.arange(start, min(len(targets), start + self.batch_size), dtype=np.int32)
            lg, tg = forward(x_t, index, t_t)
            logit_parts.append(be.to_numpy(lg))
            target_parts.append(be.to_numpy(tg))
        return np.concatenate(logit_parts), np.concatenate(target_parts).astype(np.int32)

    def warm_up(self, x: np.ndarray, targets: np.ndarray) -> None:
        """Compiles (traces) and runs once every function `explain_prepared` and `predict` use
        for images shaped like `x`, on its first image only; the results are discarded.

        The compiled functions take any batch size (a `None` batch dimension on TensorFlow,
        padded chunks on JAX), so one image traces what the whole probe set needs, at about
        `1 / len(x)` of an explanation's cost. Like every call, it reads the model's variables
        and never changes them.
        """
        self.explain_prepared(x[:1], targets[:1])
        self.predict(x[:1])

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's outputs on prepared images, forward only (no gradient), compiled once.

        Args:
            x: float32 `(N, H, W, C)` images already checked against the model (see `prepare`).

        Returns:
            `(logits (N, K), outputs (N, K))`: pre-activation scores of the explained output and
            the model's outputs (activation applied).
        """
        from saliency_callback.maps import graph

        forward = self._functions(tuple(x.shape[1:]))[1]
        x_t = self._backend.to_device(np.asarray(x, np.float32))
        logits, _ = self._forward(forward, x_t, np.full(len(x), -1, np.int32))
        return logits, graph.activate(logits, self.head.kind).astype(np.float32)

    def _finish(self, attributions: np.ndarray, targets: np.ndarray, logits: Any) -> Explanation:
        from saliency_callback.maps import graph

        logits = np.asarray(logits, np.float32)
        reduced = postprocess.reduce_channels(attributions, self.reduction)  # type: ignore[arg-type]
        signed = self.reduction == "signed"
        maps = postprocess.normalize_maps(reduced, self.normalize, self.percentile, signed=signed)
        outputs = graph.activate(logits, self.head.kind).astype(np.float32)
        if callable(self.target):
            scores = np.full(len(targets), np.nan, np.float32)
        elif self.head.is_binary:
            scores = np.where(targets > 0, logits[:, 0], -logits[:, 0]).astype(np.float32)
        else:
            scores = logits[np.arange(len(targets)), targets].astype(np.float32)
        return Explanation(
            maps, attributions, targets, logits, outputs, scores, self.head.kind, reduced
        )


_EXPLAINERS: weakref.WeakKeyDictionary[Any, dict[Any, Explainer]] = weakref.WeakKeyDictionary()


def compute_saliency(
    model: keras.Model,
    images: Any,
    method: str | Method = "vanilla",
    *,
    target: TargetSpec = "predicted",
    labels: Any | None = None,
    output: int | str | None = None,
    batch_size: int = 32,
    reduction: Reduction | None = "max_abs",
    normalize: Normalization | None = "minmax",
    percentile: float = 99.0,
) -> np.ndarray:
    """Computes saliency maps of `model` on `images`.

    The compiled computation is cached per model and configuration, so a second call with
    inputs of the same shape does not retrace.

    Args:
        model: A built Keras 3 image model (never modified).
        images: `(N, H, W, C)` or `(N, H, W)`, numpy or tensor, uint8 or float, in the range the
            model expects (never rescaled).
        method: `"vanilla"`, `"smoothgrad"`, `"integrated_gradients"`, `"gradcam"`, or a `Method`
            such as `SmoothGrad(IntegratedGradients(steps=16), n_samples=10)`. Defaults to
            `"vanilla"`.
        target: `"predicted"`, `"label"` (with `labels`), an int, a sequence of ints (one per
            image) or a callable from pre-activation outputs to one score per image. Defaults to
            `"predicted"`.
        labels: Class ids `(N,)` or one-hot `(N, K)`. Defaults to `None`.
        output: Output name or index for models with several outputs. Defaults to `None`.
        batch_size: Gradient evaluations per compiled call. Defaults to `32`.
        reduction: `"max_abs"`, `"sum_abs"`, `"signed"`, or `None` to get the raw attributions
            `(N, H, W, C)` unreduced and unnormalised. Defaults to `"max_abs"`.
        normalize: `"minmax"`, `"percentile"` or `None`. Defaults to `"minmax"`.
        percentile: Upper percentile for `normalize="percentile"`. Defaults to `99.0`.

    Returns:
        float32 maps `(N, H, W)`, each scaled to [0, 1] (signed maps to [-1, 1]); with
        `reduction=None` the raw attributions `(N, H, W, C)`.

    Raises:
        TypeError, ValueError: For bad inputs, naming the argument and the received value.

    Example:
    >>> maps = compute_saliency(model, images, method="smoothgrad", target="label",
    ...                         labels=labels)
    """
    _check_model_type(model)
    method_obj = get_method(method)
    target_key: Any = target
    if not callable(target) and not isinstance(target, (str, int)):
        target_key = ("seq", _inputs.to_numpy(target, "target").tobytes())
    key = (method_obj.cache_key(), target_key, output, batch_size)
    per_model = _EXPLAINERS.setdefault(model, {})
    explainer = per_model.get(key)
    if explainer is None:
        explainer = Explainer(
            model, method_obj, target=target, output=output, batch_size=batch_size
        )
        per_model[key] = explainer
    postprocess.check_options(reduction, normalize, percentile)
    result = explainer(images, labels)
    if reduction is None:
        return result.attributions
    maps = postprocess.reduce_channels(result.attributions, reduction)
    return postprocess.normalize_maps(maps, normalize, percentile, signed=reduction == "signed")
