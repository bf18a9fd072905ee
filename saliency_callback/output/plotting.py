"""Saliency in a notebook: one call, one matplotlib `Figure`.

`plot_saliency` builds the figure with `matplotlib.figure.Figure` directly (no `pyplot` state,
works with the Agg backend); a notebook displays the returned figure as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from saliency_callback.maps.inputs import TargetSpec, to_numpy
from saliency_callback.maps.methods import Method, get_method

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure

__all__ = ["plot_saliency"]


def _as_batch(model: Any, images: Any) -> np.ndarray:
    """A batch `(N, H, W[, C])` from one image or several (a list, or an array)."""
    if isinstance(images, (list, tuple)):
        images = np.stack([to_numpy(im, "images") for im in images])
    arr = to_numpy(images, "images")
    try:
        expected = tuple(model.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):
        expected = ()
    if arr.ndim == 2:
        return arr[None, ..., None] if expected[-1:] == (1,) else arr[None]
    if arr.ndim == 3 and len(expected) == 3:
        fits = all(e is None or e == g for e, g in zip(expected, arr.shape, strict=True))
        if fits:
            return arr[None]
    return arr


def _class_name(index: int, class_names: Sequence[str] | None) -> str:
    if class_names is not None and 0 <= index < len(class_names):
        return str(class_names[index])
    return str(index)


def plot_saliency(
    model: keras.Model,
    images: Any,
    *,
    method: str | Method = "vanilla",
    target: TargetSpec = "predicted",
    labels: Any | None = None,
    class_names: Sequence[str] | None = None,
    sigma: float = 1.0,
    colormap: str = "inferno",
    alpha: float = 0.5,
    value_range: tuple[float, float] | None = None,
    tile_inches: float = 2.6,
) -> Figure:
    """Plots the image, its raw saliency map and the smoothed overlay, side by side.

    One row per image, three axes per row:

    1. the image, titled with the predicted class and its confidence (`"cat 93.1%"`; the value
       for a regression model);
    2. the raw map (normalised to [0, 1]) through `colormap`, titled with the method (and the
       explained class when it is not the predicted one);
    3. the map smoothed with a Gaussian of `sigma` pixels blended over the image
       (`render.overlay`, opacity up to `alpha`).

    Args:
        model: A built Keras 3 image model.
        images: One image `(H, W, C)` / `(H, W)`, a batch `(N, H, W[, C])`, or a list of
            images, in the range the model expects (never rescaled).
        method: `"vanilla"`, `"smoothgrad"`, `"integrated_gradients"`, `"gradcam"` or a
            `Method`. Defaults to `"vanilla"`.
        target: `"predicted"`, `"label"` (with `labels`), an int, or one int per image.
            Defaults to `"predicted"`.
        labels: Class ids for `target="label"`. Defaults to `None`.
        class_names: Names of the classes for the titles. Defaults to `None` (indices).
        sigma: Gaussian smoothing of the overlay in pixels; `0` turns it off. Defaults to
            `1.0`.
        colormap: A matplotlib colormap name. Defaults to `"inferno"`.
        alpha: Maximum opacity of the heatmap in the overlay. Defaults to `0.5`.
        value_range: `(low, high)` of the images for display; inferred by default.
        tile_inches: Size of each axis in inches. Defaults to `2.6`.

    Returns:
        A `matplotlib.figure.Figure` with `3 * N` axes (row-major).

    Raises:
        TypeError, ValueError: For a bad model, images, method, target or option, naming the
            argument.

    Example:
    >>> fig = plot_saliency(model, x_test[:3], method="smoothgrad", class_names=names)
    >>> fig.savefig("saliency.png")
    """
    from matplotlib.figure import Figure

    from saliency_callback.maps.engine import Explainer
    from saliency_callback.output.render import (
        Renderer,
        colorize,
        gaussian_smooth,
        overlay,
        to_display_rgb,
    )

    renderer = Renderer(sigma=sigma, colormap=colormap, alpha=alpha, value_range=value_range)
    method_obj = get_method(method)
    x = _as_batch(model, images)
    explainer = Explainer(model, method_obj, target=target)
    result = explainer(x, labels)
    n = len(result.maps)
    shown = np.asarray(x)
    if shown.ndim == 4 and shown.shape[-1] == 4:
        shown = shown[..., :3]
    rgb = to_display_rgb(shown, renderer.value_range)
    cmap = str(renderer.colormap)
    smooth = gaussian_smooth(result.maps, renderer.sigma)
    blended = overlay(rgb, smooth, colorize(smooth, cmap), renderer.alpha)

    head = explainer.head
    regression = head.num_classes is None
    if regression:
        predicted = np.zeros(n, np.int64)
    elif result.outputs.shape[1] == 1:
        predicted = (result.outputs[:, 0] > 0.5).astype(np.int64)
    else:
        predicted = result.outputs.argmax(axis=1)

    fig = Figure(figsize=(3 * tile_inches, n * (tile_inches + 0.35)), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        ax_img, ax_map, ax_over = axes[i]
        if regression:
            title = f"pred {float(result.outputs[i, 0]):.4g}"
        else:
            p = int(predicted[i])
            conf = result.outputs[i, p] if result.outputs.shape[1] > 1 else result.outputs[i, 0]
            if result.outputs.shape[1] == 1 and p == 0:
                conf = 1.0 - conf
            title = f"{_class_name(p, class_names)} {float(conf):.1%}"
        ax_img.imshow(rgb[i], interpolation="nearest")
        ax_img.set_title(title, fontsize=10)
        map_title = method_obj.name
        explained = int(result.targets[i])
        if not regression and not callable(target) and explained != int(predicted[i]):
            map_title += f" (class {_class_name(explained, class_names)})"
        ax_map.imshow(result.maps[i], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax_map.set_title(map_title, fontsize=10)
        ax_over.imshow(blended[i], interpolation="nearest")
        ax_over.set_title(f"overlay, sigma={renderer.sigma:g}", fontsize=10)
        for ax in (ax_img, ax_map, ax_over):
            ax.set_axis_off()
    return fig
