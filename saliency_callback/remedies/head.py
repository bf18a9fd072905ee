"""Last-layer refit on background-swapped composites: `refit_head`.

Deep Feature Reweighting (Kirichenko, Izmailov, Wilson, 2022): a network that learned a
shortcut usually still computes features of the object; it is the last layer that weighs the
shortcut's features. Refitting only that layer, on data where the shortcut does not predict the
class, recovers most of the accuracy lost where it disagrees (Waterbirds' worst group: 74.9 to
92.9), in seconds. Here the balanced data are composites of held-out images: each image's object
pasted onto the object-removed backgrounds (`background.remove_objects`) of images of every
class, so every class of object stands on every class of background equally often.

The features are the input of the model's last `Dense` layer, computed once with a feature
extractor (`training=False`: batch-normalisation statistics and every other weight stay as they
are). The new head is a multinomial logistic regression with an L2 penalty, fitted with
SciPy's L-BFGS on standardised features (the standardisation is folded back into the weights),
and written into the `Dense` layer's kernel and bias. Nothing else of the model changes: its
config, its other weights and its optimizer state are left bitwise as they were.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

import saliency_callback.remedies._checks as _checks
from saliency_callback.maps.inputs import check_labels
from saliency_callback.remedies.swap import check_images, composite, object_backgrounds

_OWNER = "refit_head"
_ACTIVATIONS = ("softmax", "linear")


@dataclass(frozen=True)
class HeadRefit:
    """What `refit_head` did, measured on the composites it was fitted on.

    Attributes:
        composites: How many composites the head was fitted on.
        skipped: Images left out (an empty, full or fallback mask, or no partner image).
        accuracy_before: The model's accuracy on all the composites, before the refit.
        accuracy_after: The same after it.
        disagree_before: Accuracy on the composites whose background comes from an image of
            another class (where a background reader fails), before the refit.
        disagree_after: The same after it.
    """

    composites: int
    skipped: int
    accuracy_before: float
    accuracy_after: float
    disagree_before: float
    disagree_after: float


def _head(model: Any) -> tuple[Any, int, str]:
    """The model's last `Dense` layer, its number of classes and its activation's name.

    Raises:
        TypeError: If `model` is not a Keras model.
        ValueError: If the model does not end in a `Dense` layer with a softmax or linear
            activation (or one sigmoid unit), or its input cannot be reached.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{_OWNER}` expected `model` to be a keras.Model. Received: {type(model).__name__}"
        )
    layer = model.layers[-1] if model.layers else None
    if not isinstance(layer, keras.layers.Dense):
        raise ValueError(
            f"`{_OWNER}` expected a model whose last layer is `Dense` (the classification "
            f"head). Received: last layer {type(layer).__name__}"
        )
    units = int(layer.units)
    name = str(getattr(layer.activation, "__name__", layer.activation))
    allowed = (*_ACTIVATIONS, "sigmoid") if units == 1 else _ACTIVATIONS
    if name not in allowed:
        raise ValueError(
            f"`{_OWNER}` expected the head `{layer.name}` to have a softmax or linear "
            f"activation (or one sigmoid unit). Received: activation={name!r}, units={units}"
        )
    return layer, max(units, 2), name


def _extractor(model: Any, layer: Any) -> Any:
    import keras

    try:
        features = layer.input
    except (AttributeError, ValueError) as err:
        raise ValueError(
            f"`{_OWNER}` needs a functional or Sequential model (the input of `{layer.name}` "
            f"must be reachable). Received: {type(model).__name__} ({err})"
        ) from None
    return keras.Model(model.inputs, features)


def _balanced_partners(
    classes: np.ndarray, usable: np.ndarray, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per usable image and per class, one partner of that class (never the image itself).

    Returns:
        `(objects, partners)`: int64 `(M,)` the image giving the object and the image giving
        the background of each composite.
    """
    objects, partners = [], []
    pools = [np.flatnonzero(usable & (classes == c)) for c in range(num_classes)]
    for i in np.flatnonzero(usable):
        for pool in pools:
            others = pool[pool != i]
            if len(others):
                objects.append(i)
                partners.append(int(rng.choice(others)))
    return np.array(objects, np.int64), np.array(partners, np.int64)


def fit_logistic(
    features: np.ndarray,
    classes: np.ndarray,
    weights: np.ndarray,
    num_classes: int,
    l2: float,
    bias: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression with an L2 penalty on the kernel (SciPy L-BFGS).

    Minimises `sum_i w_i CE(softmax(x_i W + b), y_i) / sum_i w_i + l2 / 2 * |W|^2` over
    standardised features, then folds the standardisation back.

    Args:
        features: float `(M, D)`.
        classes: int `(M,)` in `[0, num_classes)`.
        weights: float `(M,)` per-sample weights (group balance).
        num_classes: `K`.
        l2: The penalty's strength.
        bias: Whether to fit a bias (else it is 0).

    Returns:
        `(kernel, bias)`: float64 `(D, K)` and `(K,)`, for the raw features.
    """
    from scipy import optimize

    x = np.asarray(features, np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    if not bias:
        mean = np.zeros_like(mean)
    z = (x - mean) / scale
    d = z.shape[1]
    onehot = np.eye(num_classes)[classes]
    w = np.asarray(weights, np.float64) / np.sum(weights)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        kernel = theta[: d * num_classes].reshape(d, num_classes)
        b = theta[d * num_classes :] if bias else np.zeros(num_classes)
        logits = z @ kernel + b
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        value = -np.sum(w * (onehot * log_p).sum(axis=1)) + 0.5 * l2 * np.sum(kernel**2)
        residual = (np.exp(log_p) - onehot) * w[:, None]
        grad = [(z.T @ residual + l2 * kernel).reshape(-1)]
        if bias:
            grad.append(residual.sum(axis=0))
        return float(value), np.concatenate(grad)

    size = d * num_classes + (num_classes if bias else 0)
    result = optimize.minimize(
        loss, np.zeros(size), jac=True, method="L-BFGS-B", options={"maxiter": 1000}
    )
    kernel = result.x[: d * num_classes].reshape(d, num_classes)
    b = result.x[d * num_classes :] if bias else np.zeros(num_classes)
    kernel_raw = kernel / scale[:, None]
    return kernel_raw, b - mean @ kernel_raw


def _correct(
    model: Any, x: np.ndarray, classes: np.ndarray, activation: str, batch_size: int
) -> np.ndarray:
    """bool `(M,)`: whether the model's prediction is `classes` (one unit: class 1 above 0.5
    for a sigmoid, above 0 for a logit)."""
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if out.shape[1] > 1:
        return out.argmax(axis=1) == classes
    threshold = 0.5 if activation == "sigmoid" else 0.0
    return (out[:, 0] > threshold).astype(np.int64) == classes


def refit_head(
    model: Any,
    images: Any,
    masks: Any,
    labels: Any,
    *,
    l2: float = 1e-2,
    seed: int = 0,
    batch_size: int = 256,
) -> HeadRefit:
    """Refits the model's last `Dense` layer on background-swapped composites, in place.

    Deep Feature Reweighting (Kirichenko et al. 2022) with composites for the balanced set:
    each held-out image's object is pasted onto the object-removed background of one other
    image of every class (so each class of object stands on each class of background), the
    model's penultimate features are computed once, and a new head (an L2-penalised logistic
    regression, groups weighted equally) replaces the kernel and bias of the last `Dense`
    layer. Every other weight, the optimizer state and the model's config are left bitwise
    as they were. Use images the model did not train on, and not the probes of
    `SaliencyCallback` (the alarm's verdict after the refit must come from other images).

    Args:
        model: A functional or Sequential Keras model ending in a `Dense` layer (softmax or
            linear; one sigmoid unit for two classes).
        images: `(N, H, W, C)` held-out images in the model's input range.
        masks: bool or 0/1 `(N, H, W)`, 1 on the object; or `ProposedMasks`.
        labels: `(N,)` class ids or one-hot `(N, K)`.
        l2: The L2 penalty on the new kernel (features are standardised). Defaults to `1e-2`.
        seed: Seed of the partners' draw. Defaults to `0`.
        batch_size: Batch size of the forward passes. Defaults to `256`.

    Returns:
        A `HeadRefit`: accuracy on the composites before and after, overall and where the
        background's class disagrees with the object's.

    Raises:
        TypeError: For a non-Keras model or non-numeric inputs.
        ValueError: For a model without a `Dense` head, masks or labels of the wrong shape or
            count, `l2` below 0, or fewer than two classes among the usable images.

    Example:

    ```python
    report = sc.refit_head(model, x_heldout, masks_heldout, y_heldout)
    print(report.disagree_before, "->", report.disagree_after)
    ```
    """
    layer, num_classes, activation = _head(model)
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not float(l2) >= 0:
        raise ValueError(f"`{_OWNER}` expected `l2` >= 0. Received: l2={l2!r}")
    seed = _checks.check_seed(_OWNER, seed)
    batch_size = _checks.check_positive_int(_OWNER, "batch_size", batch_size)
    x = check_images(_OWNER, images)
    mask_array, fallback = _checks.check_masks(_OWNER, masks, len(x), x.shape[1:3])
    classes = check_labels(labels, len(x), num_classes).astype(np.int64)
    usable = _checks.usable(mask_array, fallback)
    if len(np.unique(classes[usable])) < 2:
        raise ValueError(
            f"`{_OWNER}` expected usable images (a mask neither empty, full nor a fallback) of "
            f"at least two classes. Received: classes {np.unique(classes[usable]).tolist()}"
        )
    objects, partners = _balanced_partners(
        classes, usable, num_classes, np.random.default_rng(seed)
    )
    backgrounds = object_backgrounds(x, mask_array, usable)
    composites = composite(x[objects], mask_array[objects], backgrounds, partners)
    y, background_class = classes[objects], classes[partners]
    disagree = y != background_class

    features = np.asarray(_extractor(model, layer).predict(composites, batch_size, verbose=0))
    groups = y * num_classes + background_class
    counts = np.bincount(groups, minlength=num_classes**2)
    weights = 1.0 / counts[groups]
    right_before = _correct(model, composites, y, activation, batch_size)
    kernel, bias = fit_logistic(features, y, weights, num_classes, float(l2), layer.use_bias)
    if layer.units == 1:  # one unit: the logit of class 1 against class 0
        kernel, bias = kernel[:, 1:] - kernel[:, :1], bias[1:] - bias[:1]
    layer.kernel.assign(kernel.astype(layer.kernel.dtype))
    if layer.use_bias:
        layer.bias.assign(bias.astype(layer.bias.dtype))
    right_after = _correct(model, composites, y, activation, batch_size)
    return HeadRefit(
        composites=len(objects),
        skipped=int(len(x) - len(np.unique(objects))),
        accuracy_before=float(right_before.mean()),
        accuracy_after=float(right_after.mean()),
        disagree_before=float(right_before[disagree].mean()) if disagree.any() else np.nan,
        disagree_after=float(right_after[disagree].mean()) if disagree.any() else np.nan,
    )
