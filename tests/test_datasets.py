"""Tests for saliency_callback.datasets."""

from __future__ import annotations

import numpy as np
import pytest

from saliency_callback.datasets import (
    BACKGROUND_TINTS,
    SHAPES,
    ShortcutData,
    make_shortcut_data,
    make_shortcut_splits,
)


@pytest.fixture(scope="module")
def data() -> ShortcutData:
    return make_shortcut_data(300, num_classes=4, agreement=0.8, seed=7)


@pytest.fixture(scope="module")
def clean() -> ShortcutData:
    return make_shortcut_data(120, image_size=32, num_classes=6, agreement=0.5, seed=3, noise=0.0)


def _nearest_tint(colors: np.ndarray, num_classes: int) -> np.ndarray:
    dist = np.linalg.norm(colors[:, None, :] - BACKGROUND_TINTS[None, :num_classes], axis=-1)
    return dist.argmin(axis=1)


def _mean_background(d: ShortcutData) -> np.ndarray:
    background = ~d.masks[..., None]
    return (d.images * background).sum(axis=(1, 2)) / background.sum(axis=(1, 2))


def test_shapes_dtypes_and_ranges(data: ShortcutData) -> None:
    assert len(data) == 300
    assert data.images.shape == (300, 48, 48, 3)
    assert data.images.dtype == np.float32
    assert data.images.min() >= 0.0
    assert data.images.max() <= 1.0
    assert data.labels.shape == (300,)
    assert data.labels.dtype == np.int64
    assert data.masks.shape == (300, 48, 48)
    assert data.masks.dtype == np.bool_
    assert data.cue_agrees.shape == (300,)
    assert data.cue_agrees.dtype == np.bool_
    assert data.background_classes.dtype == np.int64
    assert data.class_names == ("circle", "square", "triangle", "cross")
    assert data.background_colors.shape == (4, 3)
    assert data.background_colors.dtype == np.float32
    np.testing.assert_array_equal(data.background_colors, BACKGROUND_TINTS[:4])
    assert not BACKGROUND_TINTS.flags.writeable


def test_masks_are_exactly_the_object_pixels(clean: ShortcutData) -> None:
    for image, mask in zip(clean.images, clean.masks, strict=True):
        background = image[~mask]
        obj = image[mask]
        # Noise-free: the background is one flat colour ...
        np.testing.assert_array_equal(background, np.broadcast_to(background[0], background.shape))
        # ... the object is one flat colour ...
        np.testing.assert_array_equal(obj, np.broadcast_to(obj[0], obj.shape))
        # ... and the two differ clearly, so image != background exactly on the mask.
        assert np.linalg.norm(obj[0] - background[0]) > 0.2
        differs = np.any(image != background[0], axis=-1)
        np.testing.assert_array_equal(differs, mask)


def test_objects_fully_inside_and_connected(clean: ShortcutData) -> None:
    from scipy import ndimage

    for mask in clean.masks:
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        _, n_components = ndimage.label(mask, structure=np.ones((3, 3)))
        assert n_components == 1


def test_each_class_is_its_shape(clean: ShortcutData) -> None:
    # Fill ratio of the bounding box separates the shapes: ~pi/4 circle, 1 square,
    # ~1/2 triangle and diamond, ~0.5 cross, ring has a hole.
    for label, mask in zip(clean.labels, clean.masks, strict=True):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        fill = box.mean()
        name = SHAPES[label]
        center = box[box.shape[0] // 2, box.shape[1] // 2]
        if name == "square":
            assert fill == 1.0
        elif name == "circle":
            assert 0.65 < fill < 0.9
            assert center
        elif name == "ring":
            assert not center
        elif name == "triangle":
            assert box[0].sum() <= 2  # pointed top
            assert box[-1].all()  # flat base
        elif name == "diamond":
            assert box[0].sum() <= 2
            assert box[-1].sum() <= 2
        elif name == "cross":
            assert not box[0, 0]
            assert center


def test_mask_area_within_documented_range() -> None:
    for size in (32, 48, 64):
        d = make_shortcut_data(600, image_size=size, num_classes=6, seed=size)
        area = d.masks.mean(axis=(1, 2))
        assert area.min() >= 0.09, size
        assert area.max() <= 0.30, size
        assert 0.14 < area.mean() < 0.22, size


@pytest.mark.parametrize(("n", "agreement"), [(300, 0.8), (101, 0.95), (10, 0.25), (7, 0.0)])
def test_exact_agreement_count(n: int, agreement: float) -> None:
    d = make_shortcut_data(n, agreement=agreement, seed=1)
    assert int(d.cue_agrees.sum()) == round(agreement * n)
    np.testing.assert_array_equal(d.cue_agrees, d.background_classes == d.labels)


def test_agreement_extremes() -> None:
    assert make_shortcut_data(50, agreement=1.0).cue_agrees.all()
    assert not make_shortcut_data(50, agreement=0.0).cue_agrees.any()


def test_background_carries_the_cue(data: ShortcutData) -> None:
    nearest = _nearest_tint(_mean_background(data), 4)
    np.testing.assert_array_equal(nearest, data.background_classes)
    agree = data.cue_agrees
    assert agree.sum() > 0
    assert (~agree).sum() > 0
    np.testing.assert_array_equal(nearest[agree], data.labels[agree])
    assert not np.any(nearest[~agree] == data.labels[~agree])


def test_disagreeing_cues_cover_the_other_classes() -> None:
    d = make_shortcut_data(900, num_classes=3, agreement=0.0, seed=5)
    for cls in range(3):
        others = d.background_classes[d.labels == cls]
        counts = np.bincount(others, minlength=3)
        assert counts[cls] == 0
        assert min(np.delete(counts, cls)) > 100  # both other classes used, ~150 each


def test_object_color_independent_of_class() -> None:
    d = make_shortcut_data(1200, num_classes=3, seed=11, noise=0.0)
    obj = np.array([img[m][0] for img, m in zip(d.images, d.masks, strict=True)])
    means = np.array([obj[d.labels == c].mean(axis=0) for c in range(3)])
    assert np.abs(means - means.mean(axis=0)).max() < 0.05


def test_labels_balanced() -> None:
    for n, c in [(300, 4), (301, 3), (5, 2)]:
        counts = np.bincount(make_shortcut_data(n, num_classes=c).labels, minlength=c)
        assert counts.max() - counts.min() <= 1
        assert counts.sum() == n


def test_determinism_and_seed_sensitivity() -> None:
    a = make_shortcut_data(40, seed=123)
    b = make_shortcut_data(40, seed=123)
    c = make_shortcut_data(40, seed=124)
    for field in ("images", "labels", "masks", "cue_agrees", "background_classes"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.masks, c.masks)


def test_does_not_touch_global_random_state() -> None:
    np.random.seed(0)
    expected = np.random.random()
    np.random.seed(0)
    make_shortcut_data(10)
    assert np.random.random() == expected


def test_supported_num_classes() -> None:
    for c in range(2, len(SHAPES) + 1):
        d = make_shortcut_data(2 * c, num_classes=c)
        assert d.class_names == SHAPES[:c]
        assert set(d.labels.tolist()) == set(range(c))


def test_noise_changes_pixels_but_not_masks() -> None:
    clean = make_shortcut_data(20, noise=0.0, seed=9)
    noisy = make_shortcut_data(20, noise=0.1, seed=9)
    np.testing.assert_array_equal(clean.masks, noisy.masks)
    diff = noisy.images - clean.images
    assert 0.05 < diff.std() < 0.12


def test_splits() -> None:
    train, test = make_shortcut_splits(200, 60, seed=4, image_size=32)
    assert train.images.shape == (200, 32, 32, 3)
    assert test.images.shape == (60, 32, 32, 3)
    assert int(train.cue_agrees.sum()) == 190
    assert int(test.cue_agrees.sum()) == 30
    again_train, again_test = make_shortcut_splits(200, 60, seed=4, image_size=32)
    np.testing.assert_array_equal(train.images, again_train.images)
    np.testing.assert_array_equal(test.images, again_test.images)
    # Independent streams: the test images are not a prefix of the train images.
    assert not np.array_equal(train.images[:60], test.images)
    _, other_test = make_shortcut_splits(200, 60, seed=5, image_size=32)
    assert not np.array_equal(test.images, other_test.images)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"n": 0}, ValueError, r"`n` >= 1, received 0"),
        ({"n": 2.5}, TypeError, r"`n` to be an int"),
        ({"image_size": 15}, ValueError, r"`image_size` >= 16, received 15"),
        ({"num_classes": 1}, ValueError, r"`num_classes` between 2 and 6, received 1"),
        ({"num_classes": 7}, ValueError, r"`num_classes` between 2 and 6, received 7"),
        ({"agreement": 1.5}, ValueError, r"`agreement` in \[0, 1\], received 1.5"),
        ({"agreement": -0.1}, ValueError, r"`agreement` in \[0, 1\]"),
        ({"agreement": float("nan")}, ValueError, r"`agreement` in \[0, 1\]"),
        ({"agreement": "high"}, TypeError, r"`agreement` to be a real number"),
        ({"noise": -0.1}, ValueError, r"`noise` to be finite and >= 0, received -0.1"),
    ],
)
def test_invalid_arguments(kwargs: dict, error: type[Exception], pattern: str) -> None:
    args = {"n": 10, **kwargs}
    n = args.pop("n")
    with pytest.raises(error, match=pattern):
        make_shortcut_data(n, **args)


def test_split_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="`n_test` >= 1"):
        make_shortcut_splits(10, 0)
    with pytest.raises(ValueError, match="`test_agreement` in"):
        make_shortcut_splits(10, 10, test_agreement=2.0)
