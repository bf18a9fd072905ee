"""`plot_saliency`: a matplotlib Figure with image | raw map | smoothed overlay per image."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
from conftest import images, tiny_cnn
from matplotlib.figure import Figure

from saliency_callback import compute_saliency
from saliency_callback.output.plotting import plot_saliency
from saliency_callback.output.render import colorize, gaussian_smooth, overlay, to_display_rgb

SHAPE = (12, 12, 3)
NAMES = ["cat", "dog", "bird"]


@pytest.fixture(scope="module")
def model():
    return tiny_cnn(SHAPE)


def test_axes_titles_and_image_data(model):
    x = images(2, SHAPE)
    fig = plot_saliency(model, x, class_names=NAMES, sigma=1.5, colormap="viridis", alpha=0.7)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6
    probs = model.predict(x, verbose=0)
    maps = compute_saliency(model, x)
    rgb = to_display_rgb(x)
    smooth = gaussian_smooth(maps, 1.5)
    blended = overlay(rgb, smooth, colorize(smooth, "viridis"), 0.7)
    for i in range(2):
        ax_img, ax_map, ax_over = fig.axes[3 * i : 3 * i + 3]
        p = int(probs[i].argmax())
        assert ax_img.get_title() == f"{NAMES[p]} {probs[i, p]:.1%}"
        assert ax_map.get_title() == "vanilla"
        assert ax_over.get_title() == "overlay, sigma=1.5"
        np.testing.assert_array_equal(np.asarray(ax_img.images[0].get_array()), rgb[i])
        np.testing.assert_allclose(np.asarray(ax_map.images[0].get_array()), maps[i], atol=1e-6)
        assert ax_map.images[0].get_cmap().name == "viridis"
        assert ax_map.images[0].get_clim() == (0.0, 1.0)
        assert np.abs(np.asarray(ax_over.images[0].get_array()).astype(int) - blended[i]).max() <= 1
    png = io.BytesIO()
    fig.savefig(png, format="png")  # renders without pyplot (Agg)
    assert png.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_image_and_an_explicit_target(model):
    x = images(1, SHAPE)[0]  # (H, W, C): one image
    probs = model.predict(x[None], verbose=0)[0]
    other = int(np.argsort(probs)[0])  # the least likely class
    fig = plot_saliency(model, x, target=other, method="smoothgrad")
    assert len(fig.axes) == 3
    assert fig.axes[0].get_title().startswith(f"{int(probs.argmax())} ")
    assert fig.axes[1].get_title() == f"smoothgrad (class {other})"
    expected = compute_saliency(model, x[None], "smoothgrad", target=other)[0]
    np.testing.assert_allclose(np.asarray(fig.axes[1].images[0].get_array()), expected, atol=1e-6)


def test_regression_and_grayscale():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    out = keras.layers.Dense(1)(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    x = images(2, (8, 8, 1))
    fig = plot_saliency(model, [x[0], x[1]])
    value = float(model.predict(x, verbose=0)[1, 0])
    assert fig.axes[3].get_title() == f"pred {value:.4g}"
    assert np.asarray(fig.axes[0].images[0].get_array()).shape == (8, 8, 3)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"sigma": -1}, ValueError),
        ({"colormap": "nope"}, ValueError),
        ({"alpha": 2.0}, ValueError),
        ({"method": "nope"}, ValueError),
    ],
)
def test_bad_options_raise(model, kwargs, error):
    with pytest.raises(error):
        plot_saliency(model, images(1, SHAPE), **kwargs)
