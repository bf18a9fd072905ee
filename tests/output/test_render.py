"""Tests for `saliency_callback.output.render`: NumPy/SciPy/Matplotlib/Pillow, no model needed."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import ImageFont
from scipy import ndimage

from saliency_callback.output import captions, render
from saliency_callback.output.captions import CAPTION_BG_RGB, draw_caption_strip
from saliency_callback.output.render import (
    BACKGROUND_RGB,
    Renderer,
    caption_height,
    colorize,
    gaussian_smooth,
    make_grid,
    overlay,
    render_panels,
    resize_stack,
    tile_size,
    to_display_rgb,
    validate_colormap,
)

RNG = np.random.default_rng(1234)


def nearest_up(x: np.ndarray, k: int) -> np.ndarray:
    """Reference nearest-neighbour upscale by explicit index arithmetic."""
    ys = np.arange(x.shape[1] * k) // k
    xs = np.arange(x.shape[2] * k) // k
    return x[:, ys][:, :, xs]


def mpl_bytes(name: str, values) -> np.ndarray:
    """Matplotlib's own colours (uint8 RGB) for `values`, shape `values.shape + (3,)`."""
    v = np.asarray(values, dtype=np.float64)
    rgba = np.asarray(matplotlib.colormaps[name](v.ravel(), bytes=True))
    return rgba[:, :3].reshape(*v.shape, 3)


# --------------------------------------------------------------------------- smoothing


def test_smooth_equals_scipy_per_map_then_minmax():
    maps = RNG.random((3, 20, 24)).astype(np.float32)
    got = gaussian_smooth(maps, 1.5)
    assert got.dtype == np.float32 and got.shape == maps.shape
    for i in range(3):
        ref = ndimage.gaussian_filter(maps[i].astype(np.float64), 1.5, mode="reflect")
        ref = (ref - ref.min()) / (ref.max() - ref.min())
        np.testing.assert_allclose(got[i], ref, atol=1e-5)


def test_smooth_sigma_zero_is_identity():
    maps = RNG.random((2, 7, 9)).astype(np.float32) * 0.5  # not min-max normalised
    got = gaussian_smooth(maps, 0)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, maps)
    got[0, 0, 0] = 99.0
    assert maps[0, 0, 0] != 99.0  # a copy, not a view


def test_smooth_delta_peak_stays_and_is_symmetric():
    maps = np.zeros((1, 21, 21), np.float32)
    maps[0, 10, 10] = 1.0
    got = gaussian_smooth(maps, 2.0)[0]
    assert np.unravel_index(np.argmax(got), got.shape) == (10, 10)
    assert got[10, 10] == pytest.approx(1.0) and got.min() == pytest.approx(0.0)
    np.testing.assert_allclose(got, got.T, atol=1e-6)
    np.testing.assert_allclose(got, got[::-1], atol=1e-6)
    np.testing.assert_allclose(got, got[:, ::-1], atol=1e-6)
    assert 0 < got[10, 12] < got[10, 11] < 1  # actually blurred


def test_smooth_constant_map_becomes_zero_and_maps_are_independent():
    maps = np.stack([np.full((8, 8), 0.7, np.float32), RNG.random((8, 8)).astype(np.float32)])
    got = gaussian_smooth(maps, 1.0)
    np.testing.assert_array_equal(got[0], 0.0)
    assert got[1].min() == pytest.approx(0.0) and got[1].max() == pytest.approx(1.0)


def test_smooth_signed_keeps_sign_and_zero():
    maps = np.zeros((1, 15, 15), np.float32)
    maps[0, 3, 3], maps[0, 11, 11] = 0.5, -1.0
    got = gaussian_smooth(maps, 1.0, signed=True)[0]
    assert got[11, 11] == pytest.approx(-1.0)
    assert got[3, 3] == pytest.approx(0.5, abs=1e-5)
    assert np.abs(got).max() == pytest.approx(1.0)


@pytest.mark.parametrize("sigma", [-1, -0.5, float("nan")])
def test_smooth_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match=r"`sigma`.*received " + str(sigma)):
        gaussian_smooth(np.zeros((1, 4, 4)), sigma)


# --------------------------------------------------------------------------- colours


@pytest.mark.parametrize("name", ["inferno", "viridis", "jet", "gray"])
def test_colorize_matches_matplotlib(name):
    cmap = matplotlib.colormaps[name]
    values = np.array([0.0, 0.5, 1.0], np.float32)
    got = colorize(values.reshape(1, 1, 3), name)[0, 0]
    direct = np.round(cmap(values.astype(np.float64))[:, :3] * 255)
    np.testing.assert_allclose(got, direct, atol=1)
    # Random values: same quantisation as Matplotlib, so exact against bytes=True.
    rand = RNG.random((2, 5, 7)).astype(np.float32)
    np.testing.assert_array_equal(colorize(rand, name), mpl_bytes(name, rand))


def test_colorize_clips_and_handles_nan():
    maps = np.array([[[-0.5, 0.0, 2.0, 1.0, np.nan]]], np.float32)
    got = colorize(maps)[0, 0]
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_array_equal(got[2], got[3])
    np.testing.assert_array_equal(got[4], got[1])
    np.testing.assert_array_equal(got[1], mpl_bytes("inferno", 0.0))


def test_colorize_signed_uses_diverging_map_centred_at_zero():
    got = colorize(np.array([[[-1.0, 0.0, 1.0]]], np.float32), signed=True)[0, 0]
    np.testing.assert_array_equal(got, mpl_bytes("RdBu_r", [0.0, 0.5, 1.0]))


def test_unknown_colormap():
    with pytest.raises(ValueError, match=r"`colormap`.*'not_a_cmap'"):
        colorize(np.zeros((1, 2, 2)), "not_a_cmap")
    with pytest.raises(ValueError, match=r"`colormap`.*'infern'.*inferno"):
        validate_colormap("infern")
    with pytest.raises(TypeError, match="`colormap`"):
        validate_colormap(3)
    assert validate_colormap("viridis") == "viridis"


# --------------------------------------------------------------------------- overlay


def test_overlay_equals_original_where_map_is_zero_and_differs_where_one():
    rgb = RNG.integers(0, 100, (2, 6, 8, 3), dtype=np.uint8)
    heat = RNG.integers(156, 256, (2, 6, 8, 3), dtype=np.uint8)  # differs from rgb everywhere
    maps = np.zeros((2, 6, 8), np.float32)
    maps[:, :, 4:] = 1.0
    got = overlay(rgb, maps, heat, 0.5)
    np.testing.assert_array_equal(got[:, :, :4], rgb[:, :, :4])
    assert np.all(got[:, :, 4:] != rgb[:, :, 4:])
    expected = 0.5 * rgb[:, :, 4:].astype(float) + 0.5 * heat[:, :, 4:]
    np.testing.assert_allclose(got[:, :, 4:], expected, atol=0.5 + 1e-6)


def test_overlay_weight_grows_with_saliency():
    rgb = np.zeros((1, 1, 3, 3), np.uint8)
    heat = np.full((1, 1, 3, 3), 200, np.uint8)
    got = overlay(rgb, np.array([[[0.25, 0.5, 1.0]]], np.float32), heat, 0.8)[0, 0, :, 0]
    np.testing.assert_array_equal(got, [40, 80, 160])  # 200 * 0.8 * map


def test_overlay_alpha_zero_gives_original():
    rgb = RNG.integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    heat = 255 - rgb
    np.testing.assert_array_equal(overlay(rgb, np.ones((2, 5, 5)), heat, 0.0), rgb)


@pytest.mark.parametrize("alpha", [1.5, -0.1])
def test_overlay_rejects_bad_alpha(alpha):
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match=rf"expected `alpha` in \[0, 1\], received {alpha}"):
        overlay(rgb, np.zeros((1, 2, 2)), rgb, alpha)


# --------------------------------------------------------------------------- display


def test_display_uint8_is_unchanged():
    x = RNG.integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    got = to_display_rgb(x)
    np.testing.assert_array_equal(got, x)
    assert not np.shares_memory(got, x)


@pytest.mark.parametrize("shape", [(1, 2, 2), (1, 2, 2, 1)])
def test_display_grayscale_becomes_three_equal_channels(shape):
    x = np.array([10, 20, 30, 250], np.uint8).reshape(shape)
    got = to_display_rgb(x)
    assert got.shape == (1, 2, 2, 3)
    for c in range(3):
        np.testing.assert_array_equal(got[0, :, :, c], [[10, 20], [30, 250]])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # Values do not span the whole range, so per-image min/max would differ.
        ([0.2, 0.4, 0.5, 0.8], [51, 102, 128, 204]),  # float in [0, 1]
        ([0.0, 1.0], [0, 255]),
        ([3.0, 37.0, 200.0, 250.0], [3, 37, 200, 250]),  # float in [0, 255]
        ([2.0, 0.4, 1.0, 3.0], [2, 0, 1, 3]),  # [0, 255] even if the max is small
        ([-0.5, 0.0, 0.5, 1.0], [64, 128, 191, 255]),  # float in [-1, 1]
        ([-1.0, 1.0], [0, 255]),
    ],
)
def test_display_float_ranges(values, expected):
    got = to_display_rgb(np.array(values, np.float32).reshape(1, 1, -1))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got[0, 0, :, 1], expected)


def test_display_float_rgb_in_unit_range():
    x = np.zeros((1, 1, 2, 3), np.float64)
    x[0, 0, 0] = [1.0, 0.5, 0.0]
    x[0, 0, 1] = [0.2, 0.4, 0.6]
    np.testing.assert_array_equal(to_display_rgb(x)[0, 0], [[255, 128, 0], [51, 102, 153]])


def test_display_other_ranges_use_per_image_minmax():
    a = np.array([-3.0, 1.0, 5.0, 5.0], np.float32).reshape(2, 2)
    b = np.array([10.0, 15.0, 20.0, 300.0], np.float32).reshape(2, 2)
    c = np.full((2, 2), 7.0, np.float32)  # constant -> black
    got = to_display_rgb(np.stack([a, b, c]))[..., 0]
    np.testing.assert_array_equal(got[0], [[0, 128], [255, 255]])
    np.testing.assert_array_equal(got[1], [[0, 4], [9, 255]])
    np.testing.assert_array_equal(got[2], 0)


def test_display_explicit_value_range():
    x = np.array([0.0, 1.0, 2.0, 3.0], np.float32).reshape(1, 2, 2)
    got = to_display_rgb(x, value_range=(0.0, 2.0))[0, :, :, 0].ravel()
    np.testing.assert_array_equal(got, [0, 128, 255, 255])
    with pytest.raises(ValueError, match="`value_range`"):
        to_display_rgb(x, value_range=(1.0, 1.0))


def test_display_rejects_bad_channels():
    with pytest.raises(ValueError, match="`images`"):
        to_display_rgb(np.zeros((1, 2, 2, 2), np.uint8))


# --------------------------------------------------------------------------- sizing


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((32, 32), (96, 96)),
        ((28, 28), (112, 112)),
        ((64, 64), (128, 128)),
        ((96, 96), (96, 96)),
        ((90, 90), (90, 90)),  # x2 would exceed max_tile
        ((20, 50), (40, 100)),
        ((224, 224), (160, 160)),
        ((300, 150), (160, 80)),
    ],
)
def test_tile_size(hw, expected):
    assert tile_size(*hw, min_tile=96, max_tile=160) == expected


def test_tile_size_rejects_bad_bounds():
    with pytest.raises(ValueError, match="`max_tile`"):
        tile_size(32, 32, min_tile=200, max_tile=100)


def test_upscale_is_integer_nearest():
    x = RNG.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    got = resize_stack(x, tile_size(32, 32))
    assert got.shape == (2, 96, 96, 3)
    for dy in range(3):
        for dx in range(3):
            np.testing.assert_array_equal(got[:, dy::3, dx::3], x)


def test_downscale_caps_long_side():
    x = np.zeros((2, 200, 100, 3), np.uint8)
    x[:, 100:] = 255  # bottom half white
    size = tile_size(200, 100, max_tile=160)
    got = resize_stack(x, size)
    assert got.shape == (2, 160, 80, 3)
    np.testing.assert_array_equal(got[:, :75], 0)
    np.testing.assert_array_equal(got[:, 85:], 255)


# --------------------------------------------------------------------------- captions


def test_caption_strip_is_deterministic_and_draws_text():
    a = draw_caption_strip(300, "#3 true: cat  pred: dog 0.93")
    b = draw_caption_strip(300, "#3 true: cat  pred: dog 0.93")
    blank = draw_caption_strip(300, "")
    assert a.shape == (caption_height(), 300, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(blank, np.broadcast_to(CAPTION_BG_RGB, blank.shape))
    assert (a != blank).any()
    assert (a != draw_caption_strip(300, "#3 true: cat  pred: cat 0.93")).any()
    np.testing.assert_array_equal(draw_caption_strip(300, "a\nb"), draw_caption_strip(300, "a b"))


def test_caption_is_truncated_to_fit():
    long = "W" * 200
    strip = draw_caption_strip(80, long)
    assert strip.shape == (caption_height(), 80, 3)
    # Cut before the right margin: the last columns are background, not clipped glyphs.
    np.testing.assert_array_equal(
        strip[:, -3:], np.broadcast_to(CAPTION_BG_RGB, (len(strip), 3, 3))
    )
    assert (strip != np.asarray(CAPTION_BG_RGB, np.uint8)).any()
    np.testing.assert_array_equal(strip, draw_caption_strip(80, long + " and more"))


def test_caption_with_bitmap_fallback_font(monkeypatch):
    if not hasattr(ImageFont, "load_default_imagefont"):
        pytest.skip("Pillow < 10.1 already uses the bitmap font")
    monkeypatch.setattr(captions, "_font", lambda size: ImageFont.load_default_imagefont())
    captions.caption_strip_cached.cache_clear()
    try:
        strip = draw_caption_strip(120, "猫 pred: cat 0.93 and a long tail of words")
        assert strip.shape == (caption_height(), 120, 3)
        assert (strip != np.asarray(CAPTION_BG_RGB, np.uint8)).any()
    finally:
        captions.caption_strip_cached.cache_clear()


# --------------------------------------------------------------------------- panels


def test_panel_tiles_contain_original_heatmap_and_overlay():
    n, k = 3, 3  # 32x32 probes -> 96x96 tiles
    images = RNG.random((n, 32, 32, 3)).astype(np.float32)
    maps = RNG.random((n, 32, 32)).astype(np.float32)
    maps[:, :8] = 0.0  # top rows not salient
    panels = render_panels(images, maps, sigma=0, alpha=0.5)
    t = 96
    assert panels.shape == (n, t, 3 * t + 4, 3) and panels.dtype == np.uint8
    left, mid, right = panels[:, :, :t], panels[:, :, t + 2 : 2 * t + 2], panels[:, :, 2 * t + 4 :]
    rgb = (images * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(left, nearest_up(rgb, k))
    np.testing.assert_array_equal(mid, nearest_up(mpl_bytes("inferno", maps), k))
    np.testing.assert_array_equal(right[:, : 8 * k], left[:, : 8 * k])  # map == 0 -> original
    w = 0.5 * maps[..., None]
    expected = nearest_up(rgb + w * (mpl_bytes("inferno", maps).astype(float) - rgb), k)
    np.testing.assert_allclose(right, expected, atol=0.5 + 1e-3)
    sep = np.asarray(BACKGROUND_RGB, np.uint8)
    for x0 in (t, 2 * t + 2):
        np.testing.assert_array_equal(panels[:, :, x0 : x0 + 2], np.broadcast_to(sep, (n, t, 2, 3)))


def test_panel_heatmap_uses_smoothed_map():
    images = np.zeros((1, 24, 24), np.uint8)
    maps = RNG.random((1, 24, 24)).astype(np.float32)
    panels = render_panels(images, maps, sigma=1.0, colormap="viridis", min_tile=24)
    mid = panels[:, :, 26:50]
    np.testing.assert_array_equal(mid, colorize(gaussian_smooth(maps, 1.0), "viridis"))
    assert (mid != colorize(maps, "viridis")).any()


def test_panel_downscales_large_probes():
    images = np.zeros((2, 200, 100, 3), np.uint8)
    images[:, 100:] = 255
    panels = render_panels(images, np.zeros((2, 200, 100)), max_tile=160)
    assert panels.shape == (2, 160, 3 * 80 + 4, 3)
    np.testing.assert_array_equal(panels[:, :75, :80], 0)
    np.testing.assert_array_equal(panels[:, 85:, :80], 255)
    np.testing.assert_array_equal(panels[:, :, 164:], panels[:, :, :80])  # map 0 -> original


def test_panel_signed_maps():
    maps = np.zeros((1, 8, 8), np.float32)
    maps[0, 0, 0], maps[0, 7, 7] = 1.0, -1.0
    images = np.full((1, 8, 8, 3), 50, np.uint8)
    panels = render_panels(images, maps, sigma=0, signed=True, min_tile=8)
    mid, right = panels[0, :, 10:18], panels[0, :, 20:28]
    np.testing.assert_array_equal(mid[3, 3], mpl_bytes("RdBu_r", 0.5))
    np.testing.assert_array_equal(mid[0, 0], mpl_bytes("RdBu_r", 1.0))
    np.testing.assert_array_equal(mid[7, 7], mpl_bytes("RdBu_r", 0.0))
    np.testing.assert_array_equal(right[3, 3], [50, 50, 50])
    assert (right[7, 7] != 50).any()


def test_captions_change_only_the_strip():
    images = RNG.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    maps = RNG.random((2, 32, 32)).astype(np.float32)
    plain = render_panels(images, maps)
    captions = ["#0 true: cat  pred: dog 0.93", "#1 true: dog  pred: dog 0.99"]
    with_caps = render_panels(images, maps, captions=captions)
    h = caption_height()
    assert with_caps.shape == (2, plain.shape[1] + h, plain.shape[2], 3)
    np.testing.assert_array_equal(with_caps[:, h:], plain)
    for i, text in enumerate(captions):
        np.testing.assert_array_equal(with_caps[i, :h], draw_caption_strip(plain.shape[2], text))
        assert (with_caps[i, :h] != draw_caption_strip(plain.shape[2], "")).any()


def test_panel_argument_errors():
    images = np.zeros((2, 8, 8, 3), np.uint8)
    maps = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match=r"`captions`.*\(2\).*received 1"):
        render_panels(images, maps, captions=["only one"])
    with pytest.raises(ValueError, match=r"`alpha` in \[0, 1\], received 1.5"):
        render_panels(images, maps, alpha=1.5)
    with pytest.raises(ValueError, match=r"`sigma`.*received -2"):
        render_panels(images, maps, sigma=-2)
    with pytest.raises(ValueError, match=r"`colormap`.*'nope'"):
        render_panels(images, maps, colormap="nope")
    with pytest.raises(ValueError, match="`maps`"):
        render_panels(images, np.zeros((2, 8, 9)))


# --------------------------------------------------------------------------- grid


def test_grid_layout():
    colours = np.arange(1, 6, dtype=np.uint8) * 40
    panels = np.broadcast_to(colours[:, None, None, None], (5, 10, 30, 3)).copy()
    grid = make_grid(panels, ncols=2, pad=4)
    assert grid.shape == (1, 3 * 10 + 4 * 4, 2 * 30 + 3 * 4, 3) and grid.dtype == np.uint8
    for i in range(5):
        r, c = divmod(i, 2)
        y, x = 4 + r * 14, 4 + c * 34
        np.testing.assert_array_equal(grid[0, y : y + 10, x : x + 30], colours[i])
    bg = np.asarray(BACKGROUND_RGB, np.uint8)
    np.testing.assert_array_equal(grid[0, 32:42, 38:68], np.broadcast_to(bg, (10, 30, 3)))
    np.testing.assert_array_equal(grid[0, :4], np.broadcast_to(bg, (4, 72, 3)))
    assert make_grid(panels[:3], ncols=10).shape[2] == 3 * 30 + 4 * 4  # clamped to N


def test_grid_auto_columns_is_roughly_square():
    assert make_grid(np.zeros((9, 20, 20, 3), np.uint8)).shape == (1, 76, 76, 3)
    grid = make_grid(np.zeros((32, 147, 388, 3), np.uint8))
    aspect = abs(math.log(grid.shape[2] / grid.shape[1]))
    for ncols in (3, 6, math.ceil(math.sqrt(32))):
        other = make_grid(np.zeros((32, 147, 388, 3), np.uint8), ncols=ncols)
        assert aspect <= abs(math.log(other.shape[2] / other.shape[1]))
    assert aspect < 0.4


# --------------------------------------------------------------------------- Renderer


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"alpha": 1.5}, ValueError, r"expected `alpha` in \[0, 1\], received 1.5"),
        ({"sigma": -1.0}, ValueError, r"`sigma`.*received -1.0"),
        ({"sigma": "1"}, TypeError, r"`sigma`.*received '1'"),
        ({"colormap": "nope"}, ValueError, r"`colormap`.*'nope'"),
        ({"min_tile": 0}, ValueError, r"`min_tile`.*received 0"),
        ({"min_tile": 200, "max_tile": 100}, ValueError, r"`max_tile`"),
        ({"value_range": (1.0, 0.0)}, ValueError, r"`value_range`"),
        ({"ncols": 0}, ValueError, r"`ncols`"),
    ],
)
def test_renderer_validates(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        Renderer(**kwargs)


def test_renderer_renders_like_the_functions():
    assert Renderer().colormap == "inferno"
    assert Renderer(signed=True).colormap == "RdBu_r"
    images = RNG.random((3, 16, 16)).astype(np.float32)
    maps = RNG.random((3, 16, 16)).astype(np.float32)
    r = Renderer(sigma=0.5, colormap="magma", alpha=0.7, ncols=2)
    caps = ["a", "b", "c"]
    expected = render_panels(images, maps, sigma=0.5, colormap="magma", alpha=0.7, captions=caps)
    np.testing.assert_array_equal(r.panels(images, maps, caps), expected)
    np.testing.assert_array_equal(r.render(images, maps, caps), make_grid(expected, ncols=2))


@pytest.mark.parametrize("module", ["render", "captions", "images", "checks"])
def test_render_module_does_not_import_tensorflow(module):
    path = Path(render.__file__).with_name(f"{module}.py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    assert not names & {"tensorflow", "keras", "jax", "torch"}
