"""The mask-free families: objects at a random position and scale, and no object at all."""

from __future__ import annotations

import numpy as np
import pytest

from saliency_callback.data import datasets
from saliency_callback.data.textures import TEXTURES, make_texture_data


@pytest.mark.parametrize("cue", [c for c in datasets.CUES if c != "distractor"])
def test_random_scale_spans_the_requested_areas(cue):
    data = datasets.make_shortcut_data(
        300, image_size=64, cue=cue, seed=2, object_area=datasets.RANDOM_SCALE
    )
    area = data.masks.mean(axis=(1, 2))
    low, high = datasets.RANDOM_SCALE
    # Every shape has an area of about pi * r**2 (pixelation adds a little either way).
    assert area.min() >= 0.6 * low and area.max() <= 1.2 * high
    assert area.min() < 0.04 and area.max() > 0.2  # much wider than the usual 11% to 26%
    usual = datasets.make_shortcut_data(300, image_size=64, cue=cue, seed=2)
    assert usual.masks.mean(axis=(1, 2)).min() > 0.08
    # Objects stay inside the image with a pixel of background around them.
    assert not data.masks[:, [0, -1], :].any() and not data.masks[:, :, [0, -1]].any()


def test_object_area_none_is_the_usual_data():
    a = datasets.make_shortcut_data(20, image_size=32, cue="patch", seed=4)
    b = datasets.make_shortcut_data(20, image_size=32, cue="patch", seed=4, object_area=None)
    np.testing.assert_array_equal(a.images, b.images)
    tr, te = datasets.make_shortcut_splits(8, 8, image_size=32, object_area=(0.02, 0.05))
    assert tr.masks.mean(axis=(1, 2)).max() < 0.07 and te.masks.mean(axis=(1, 2)).max() < 0.07


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"object_area": (0.005, 0.2)}, ValueError),
        ({"object_area": (0.2, 0.1)}, ValueError),
        ({"object_area": (0.1, 0.5)}, ValueError),
        ({"object_area": "big"}, TypeError),
        ({"object_area": (0.05, 0.2), "cue": "distractor"}, ValueError),
    ],
)
def test_bad_object_area_names_the_argument(kwargs, error):
    with pytest.raises(error, match="object_area"):
        datasets.make_shortcut_data(4, image_size=32, **kwargs)


def _orientation(image: np.ndarray) -> float:
    """The grating's orientation in degrees [0, 180), from the peak of its spectrum."""
    grey = image.mean(axis=-1) - image.mean()
    power = np.abs(np.fft.fft2(grey)) ** 2
    power[0, 0] = 0
    fy, fx = np.unravel_index(np.argmax(power), power.shape)
    n = image.shape[0]
    fy, fx = (fy + n // 2) % n - n // 2, (fx + n // 2) % n - n // 2
    return float(np.degrees(np.arctan2(fy, fx)) % 180)


def test_texture_classes_are_the_whole_image_and_have_no_object():
    data = make_texture_data(12, image_size=48, num_classes=3, seed=5, noise=0.0)
    assert not data.masks.any() and data.cue_agrees.all()
    np.testing.assert_array_equal(data.background_classes, data.labels)
    assert np.bincount(data.labels).tolist() == [4, 4, 4]
    assert data.images.dtype == np.float32 and 0 <= data.images.min() <= data.images.max() <= 1
    # Independent truth: the spectrum's peak gives each image's orientation, 60 * class.
    for image, label in zip(data.images, data.labels, strict=True):
        difference = (_orientation(image) - 60 * label) % 180
        assert min(difference, 180 - difference) < 8


@pytest.mark.parametrize("texture", TEXTURES)
def test_textures_are_seeded(texture):
    a = make_texture_data(4, image_size=32, seed=1, texture=texture)
    b = make_texture_data(4, image_size=32, seed=1, texture=texture)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.cue == "texture" and a.class_names == ("texture_0", "texture_1", "texture_2")


def test_bad_texture_arguments_name_the_argument():
    with pytest.raises(ValueError, match="texture"):
        make_texture_data(4, texture="stripes")
    with pytest.raises(ValueError, match="image_size"):
        make_texture_data(4, image_size=8)
