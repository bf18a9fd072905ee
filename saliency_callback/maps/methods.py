"""Saliency methods as compositions over one batched gradient operation.

A method describes the work for one probe image as `num_points` gradient evaluations ("points")
whose contributions are **summed** to give the attribution. The engine flattens
(image, point) pairs into chunks of `batch_size` and runs each chunk through one compiled
function, so a method never loops in Python and every method is batched the same way:

- `Vanilla`: 1 point, the gradient at the image (Simonyan et al. 2013).
- `IntegratedGradients`: `steps` points on the straight path from a baseline; each contributes
  `(x - baseline) * grad / steps` (Sundararajan et al. 2017, midpoint Riemann sum).
- `GradCAM`: 1 point, the gradient-weighted activation map of a convolutional layer, upsampled
  to the image (Selvaraju et al. 2017).
- `SmoothGrad(base)`: `n_samples * base.num_points` points, the base method on noisy copies of
  the image, each contribution divided by `n_samples` (Smilkov et al. 2017). It wraps any
  method, including `IntegratedGradients` and `GradCAM`.

Methods are frozen dataclasses: plain, comparable configuration. `bind(image_shape)` returns
the traceable point function used inside the compiled step.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from typing import Any, ClassVar

import numpy as np

PointFn = Callable[[Any, Any, Any, Any], tuple[Any, Any, Any]]
"""`(ops, x (B,H,W,C), targets (B,), point_index (B,)) -> (contribution, logits, targets)`."""

METHOD_NAMES = ("vanilla", "smoothgrad", "integrated_gradients", "gradcam")


class Method(abc.ABC):
    """Base class of saliency methods."""

    name: ClassVar[str]
    uses_clean_input: ClassVar[bool] = False
    """Whether the gradient is evaluated at the unmodified image (then its forward pass gives
    the predictions too, and no separate forward pass is needed)."""

    @property
    def num_points(self) -> int:
        return 1

    @property
    def needs_layer(self) -> bool:
        """Whether the method needs an inner (Grad-CAM) layer of the model."""
        return False

    @property
    def layer(self) -> str | None:
        return None

    @abc.abstractmethod
    def bind(self, image_shape: tuple[int, int, int]) -> PointFn:
        """Returns the traceable point function for images of `image_shape` `(H, W, C)`."""

    def cache_key(self) -> tuple[Any, ...]:
        """A hashable key identifying the computation (used to reuse compiled functions)."""
        return (type(self).__name__, repr(self))

    def describe(self) -> str:
        """A one-line human description (used in TensorBoard summary descriptions)."""
        return repr(self)


@dataclass(frozen=True)
class Vanilla(Method):
    """Plain gradient of the target's pre-activation score w.r.t. the input pixels.

    Example:
    >>> maps = compute_saliency(model, images, method=Vanilla())
    """

    name: ClassVar[str] = "vanilla"
    uses_clean_input: ClassVar[bool] = True

    def bind(self, image_shape: tuple[int, int, int]) -> PointFn:
        def point(ops: Any, x: Any, targets: Any, p: Any) -> tuple[Any, Any, Any]:
            grads, logits, targets = ops.input_gradients(x, targets)
            return grads, logits, targets

        return point


@dataclass(frozen=True, eq=False)
class IntegratedGradients(Method):
    """Integrated gradients along the straight path from `baseline` to the image.

    Uses the midpoint Riemann sum over `steps` points, whose error falls as `1/steps**2`, so
    completeness (attributions summing to `f(x) - f(baseline)`) holds closely with few steps.

    Args:
        steps: Number of points on the path. Defaults to `32`.
        baseline: A float (a constant image) or an array broadcastable to `(H, W, C)`, in the
            model's input range. Defaults to `0.0` (black for inputs in [0, 1] or [0, 255]).

    Raises:
        ValueError: If `steps < 1` or the baseline is not finite.
    """

    name: ClassVar[str] = "integrated_gradients"
    steps: int = 32
    baseline: float | np.ndarray = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)):
            raise TypeError(f"expected `steps` to be an int, received {self.steps!r}")
        if self.steps < 1:
            raise ValueError(f"expected `steps` >= 1, received steps={self.steps}")
        b = np.asarray(self.baseline, dtype=np.float32)
        if not np.all(np.isfinite(b)):
            raise ValueError("expected a finite `baseline`, received NaN or inf values")

    @property
    def num_points(self) -> int:
        return int(self.steps)

    def cache_key(self) -> tuple[Any, ...]:
        b = np.asarray(self.baseline, dtype=np.float32)
        return ("IntegratedGradients", int(self.steps), b.shape, b.tobytes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntegratedGradients) and self.cache_key() == other.cache_key()

    def __hash__(self) -> int:
        return hash(self.cache_key())

    def describe(self) -> str:
        b = np.asarray(self.baseline)
        base = f"{float(b):g}" if b.ndim == 0 else f"array{b.shape}"
        return f"IntegratedGradients(steps={self.steps}, baseline={base})"

    def bind(self, image_shape: tuple[int, int, int]) -> PointFn:
        import keras.ops as K

        b = np.asarray(self.baseline, dtype=np.float32)
        try:
            b = np.broadcast_to(b, image_shape).copy()
        except ValueError as err:
            raise ValueError(
                f"expected `baseline` broadcastable to the image shape {image_shape}, "
                f"received shape {b.shape}"
            ) from err
        steps = float(self.steps)

        def point(ops: Any, x: Any, targets: Any, p: Any) -> tuple[Any, Any, Any]:
            base = K.convert_to_tensor(b)
            alpha = (K.cast(p, "float32") + 0.5) / steps
            delta = x - base[None]
            path = base[None] + alpha[:, None, None, None] * delta
            grads, logits, targets = ops.input_gradients(path, targets)
            return delta * grads / steps, logits, targets

        return point


@dataclass(frozen=True)
class GradCAM(Method):
    """Grad-CAM: gradient-weighted class activation map of a convolutional layer.

    The map is `relu(sum_k alpha_k A_k)` with `alpha_k` the spatial mean of the score's gradient
    w.r.t. channel `k` of the layer's activations `A`, upsampled bilinearly to the image size.

    Args:
        layer: Name of a layer with a 4-D output (layers inside a nested base model count).
            Defaults to `None`: the feature map the classifier head pools, i.e. the last
            tensor with spatial extent > 1 through which every path to the output passes
            (ResNet50 `conv5_block3_out`, DenseNet121 `relu`, EfficientNetB0
            `top_activation`, the last pooling of a VGG-like net; the common convention of
            `layer4[-1]`, `features[-1]`, `stages[-1]`).
        layer_name: Former name of `layer`; still accepted, with a `DeprecationWarning`.

    Example:
    >>> GradCAM()                      # the pooled feature map, found automatically
    >>> GradCAM(layer="conv4_block6_out")
    """

    name: ClassVar[str] = "gradcam"
    uses_clean_input: ClassVar[bool] = True
    layer: str | None = None  # type: ignore[assignment]
    layer_name: InitVar[str | None] = None

    def __post_init__(self, layer_name: str | None) -> None:
        if layer_name is not None:
            warnings.warn(
                "`GradCAM(layer_name=...)` is deprecated; write `GradCAM(layer=...)`.",
                DeprecationWarning,
                stacklevel=3,
            )
            if self.layer is not None and self.layer != layer_name:
                raise ValueError(
                    f"received both layer={self.layer!r} and layer_name={layer_name!r}; "
                    "pass only `layer`"
                )
            object.__setattr__(self, "layer", layer_name)
        if self.layer is not None and not isinstance(self.layer, str):
            raise TypeError(f"expected the Grad-CAM `layer` to be a str, received {self.layer!r}")

    @property
    def needs_layer(self) -> bool:
        return True

    def bind(self, image_shape: tuple[int, int, int]) -> PointFn:
        import keras.ops as K

        size = image_shape[:2]

        def point(ops: Any, x: Any, targets: Any, p: Any) -> tuple[Any, Any, Any]:
            acts, grads, logits, targets = ops.layer_gradients(x, targets)
            acts = K.cast(acts, "float32")
            weights = K.mean(K.cast(grads, "float32"), axis=(1, 2), keepdims=True)
            cam = K.relu(K.sum(weights * acts, axis=-1, keepdims=True))
            cam = K.image.resize(cam, size, interpolation="bilinear")
            return cam, logits, targets

        return point


@dataclass(frozen=True)
class SmoothGrad(Method):
    """SmoothGrad: the mean of a base method over noisy copies of each image.

    The noise for each image has standard deviation `noise_level * (max - min)` of that image,
    so it is relative to the image's own range. The `n_samples` noise patterns are drawn once
    from `seed` (never from global random state), so the same model gives the same maps on every
    call and differences between epochs come from the model, not from the noise.

    Args:
        base: The method to smooth, any `Method` (including `IntegratedGradients` or `GradCAM`).
            Defaults to `Vanilla()`.
        n_samples: Number of noisy copies. Defaults to `20`.
        noise_level: Noise standard deviation relative to each image's range. Defaults to `0.15`.
        seed: Seed of the noise. Defaults to `0`.
        antithetic: Draw the noise in antithetic pairs `(eps, -eps)`: `n_samples / 2` draws,
            each used with both signs. The pair cancels the first-order term of the noise, so
            the mean has less variance at the same cost, and it is exact where the gradient
            is linear in the input. Needs an even `n_samples`. Defaults to `False`.

    Raises:
        ValueError: If `n_samples < 1`, `noise_level < 0`, `base` is itself a `SmoothGrad`, or
            `antithetic` with an odd `n_samples`.

    Example:
    >>> method = SmoothGrad(IntegratedGradients(steps=16), n_samples=10)
    >>> maps = compute_saliency(model, images, method=method)
    """

    name: ClassVar[str] = "smoothgrad"
    base: Method = field(default_factory=Vanilla)
    n_samples: int = 20
    noise_level: float = 0.15
    seed: int = 0
    antithetic: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.base, Method):
            raise TypeError(
                f"expected `base` to be a saliency Method such as Vanilla(), received {self.base!r}"
            )
        if isinstance(self.base, SmoothGrad):
            raise ValueError("`base` of SmoothGrad cannot itself be a SmoothGrad")
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, (int, np.integer)):
            raise TypeError(f"expected `n_samples` to be an int, received {self.n_samples!r}")
        if self.n_samples < 1:
            raise ValueError(f"expected `n_samples` >= 1, received n_samples={self.n_samples}")
        if not np.isfinite(self.noise_level) or self.noise_level < 0:
            raise ValueError(
                f"expected `noise_level` >= 0 and finite, received noise_level={self.noise_level}"
            )
        if not isinstance(self.antithetic, (bool, np.bool_)):
            raise TypeError(f"expected `antithetic` to be a bool, received {self.antithetic!r}")
        if self.antithetic and self.n_samples % 2:
            raise ValueError(
                "expected an even `n_samples` with antithetic=True (pairs of eps and -eps), "
                f"received n_samples={self.n_samples}"
            )

    @property
    def num_points(self) -> int:
        return int(self.n_samples) * self.base.num_points

    @property
    def needs_layer(self) -> bool:
        return self.base.needs_layer

    @property
    def layer(self) -> str | None:
        return self.base.layer

    def cache_key(self) -> tuple[Any, ...]:
        return (
            "SmoothGrad",
            self.base.cache_key(),
            self.n_samples,
            self.noise_level,
            self.seed,
            bool(self.antithetic),
        )

    def describe(self) -> str:
        pairs = ", antithetic=True" if self.antithetic else ""
        return (
            f"SmoothGrad({self.base.describe()}, n_samples={self.n_samples}, "
            f"noise_level={self.noise_level:g}, seed={self.seed}{pairs})"
        )

    def noise_bank(self, image_shape: tuple[int, int, int]) -> np.ndarray:
        """The `n_samples` standard-normal noise patterns `(n_samples, H, W, C)`, float32,
        drawn from `seed` alone (never from global random state); with `antithetic`, draw `k`
        is followed by its negation."""
        rng = np.random.default_rng(self.seed)
        n = int(self.n_samples)
        if not self.antithetic:
            return rng.standard_normal((n, *image_shape)).astype(np.float32)
        half = rng.standard_normal((n // 2, *image_shape)).astype(np.float32)
        return np.stack([half, -half], axis=1).reshape(n, *image_shape)

    def bind(self, image_shape: tuple[int, int, int]) -> PointFn:
        import keras.ops as K

        base_point = self.base.bind(image_shape)
        per_sample = self.base.num_points
        bank = self.noise_bank(image_shape)
        scale = 1.0 / float(self.n_samples)
        level = float(self.noise_level)

        def point(ops: Any, x: Any, targets: Any, p: Any) -> tuple[Any, Any, Any]:
            sample = p // per_sample
            noise = K.take(K.convert_to_tensor(bank), sample, axis=0)
            sigma = level * (K.max(x, axis=(1, 2, 3)) - K.min(x, axis=(1, 2, 3)))
            noisy = x + sigma[:, None, None, None] * noise
            contrib, logits, targets = base_point(ops, noisy, targets, p % per_sample)
            return contrib * scale, logits, targets

        return point


RECOMMENDED = SmoothGrad(Vanilla(), n_samples=10)
"""The callback's default method, from `benchmarks/bench_signals.py` (README, "Which signal to
trust"): SmoothGrad's mass in mask separated shortcut from clean runs on all six shortcut
families (AUC 1.00) without a false alarm, where vanilla gradients missed the background-colour
and distractor shortcuts and Grad-CAM fell below chance on clean models early in training. It
costs about 10 gradient passes per probe; `method="vanilla"` costs one."""


def get_method(method: str | Method) -> Method:
    """Turns a method name into a `Method` with default parameters.

    Raises:
        ValueError: For an unknown name.
        TypeError: For something that is neither a name nor a `Method`.
    """
    if isinstance(method, Method):
        return method
    if not isinstance(method, str):
        raise TypeError(
            f"expected `method` to be one of {list(METHOD_NAMES)} or a Method instance, "
            f"received {method!r}"
        )
    key = method.lower().replace("-", "_")
    aliases = {"ig": "integrated_gradients", "grad_cam": "gradcam", "gradient": "vanilla"}
    key = aliases.get(key, key)
    if key == "vanilla":
        return Vanilla()
    if key == "smoothgrad":
        return SmoothGrad(Vanilla())
    if key == "integrated_gradients":
        return IntegratedGradients()
    if key == "gradcam":
        return GradCAM()
    raise ValueError(f"Unknown `method`: received {method!r}; expected one of {list(METHOD_NAMES)}")
