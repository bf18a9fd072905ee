"""Tests for saliency_callback.data.datasets."""

from __future__ import annotations

import numpy as np
import pytest

from saliency_callback.data.datasets import (
    BACKGROUND_TINTS,
    CUES,
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


# --- Cue families ------------------------------------------------------------------------------

FAMILIES = ("background_texture", "patch", "frame", "blur", "distractor")


def _default_cue_cases(**kw: str) -> dict[str, ShortcutData]:
    """The default-cue datasets the benchmarks were recorded with, and splits."""
    train4, test4 = make_shortcut_splits(200, 60, seed=4, image_size=32, **kw)
    train9, test9 = make_shortcut_splits(
        50, 30, agreement=0.7, test_agreement=0.2, seed=9, num_classes=5, image_size=24, **kw
    )
    return {
        "data-300": make_shortcut_data(300, num_classes=4, agreement=0.8, seed=7, **kw),
        "data-57": make_shortcut_data(
            57, image_size=16, num_classes=2, agreement=0.3, seed=11, noise=0.1, **kw
        ),
        "data-10": make_shortcut_data(10, **kw),
        "splits-4-train": train4,
        "splits-4-test": test4,
        "splits-9-train": train9,
        "splits-9-test": test9,
    }


AGREEMENT = {
    "data-300": 0.8,
    "data-57": 0.3,
    "data-10": 0.95,
    "splits-4-train": 0.95,
    "splits-4-test": 0.5,
    "splits-9-train": 0.7,
    "splits-9-test": 0.2,
}


def test_the_default_cue_is_the_background_colour_decoded_from_the_pixels() -> None:
    """Properties decoded from the data, not golden digests (numpy may change its random
    streams, NEP 19): the default cue is `background_color`, bit for bit the explicit one; each
    background is its background class's tint, which is the label exactly where the cue agrees,
    for the recorded share of the images; the labels are balanced."""
    implicit, explicit = _default_cue_cases(), _default_cue_cases(cue="background_color")
    for key, d in implicit.items():
        assert d.cue == "background_color", key
        for name in ("images", "labels", "masks", "cue_agrees", "background_classes"):
            np.testing.assert_array_equal(getattr(d, name), getattr(explicit[key], name))
        k = len(d.background_colors)
        nearest = _nearest_tint(_mean_background(d), k)
        np.testing.assert_array_equal(nearest, d.background_classes, err_msg=key)
        np.testing.assert_array_equal(d.cue_agrees, nearest == d.labels, err_msg=key)
        assert int(d.cue_agrees.sum()) == round(AGREEMENT[key] * len(d)), key
        counts = np.bincount(d.labels, minlength=k)
        assert counts.max() - counts.min() <= 1, key


def test_cues_constant() -> None:
    assert ("background_color", *FAMILIES) == CUES


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> tuple[str, ShortcutData]:
    """Noise-free, so each object is one flat colour."""
    cue = request.param
    return cue, make_shortcut_data(
        240, image_size=32, num_classes=6, agreement=0.5, seed=13, noise=0.0, cue=cue
    )


def _object_colors(d: ShortcutData) -> np.ndarray:
    return np.array([img[m][0] for img, m in zip(d.images, d.masks, strict=True)])


def test_family_shapes_dtypes_and_fields(family: tuple[str, ShortcutData]) -> None:
    cue, d = family
    assert d.cue == cue
    assert d.images.shape == (240, 32, 32, 3)
    assert d.images.dtype == np.float32
    assert d.images.min() >= 0.0 and d.images.max() <= 1.0
    assert d.masks.shape == (240, 32, 32) and d.masks.dtype == np.bool_
    assert d.labels.dtype == np.int64 and d.background_classes.dtype == np.int64
    assert d.class_names == SHAPES
    np.testing.assert_array_equal(d.background_colors, BACKGROUND_TINTS)


def test_family_masks_are_exactly_the_object_pixels(family: tuple[str, ShortcutData]) -> None:
    # Noise-free, the object is one flat colour and nothing else in the image has exactly that
    # colour (textures, the base, the patch/frame and the distractor all differ), so the pixels
    # of the object's colour must be exactly the mask: a mask shifted, too large or too small,
    # or one that also covers the distractor, fails.
    _, d = family
    for image, mask, color in zip(d.images, d.masks, _object_colors(d), strict=True):
        assert mask.sum() > 0
        np.testing.assert_array_equal(image[mask], np.broadcast_to(color, image[mask].shape))
        np.testing.assert_array_equal(np.all(image == color, axis=-1), mask)
        # ... and the object contrasts with the background around it.
        assert np.linalg.norm(np.median(image[~mask], axis=0) - color) > 0.2


def test_family_objects_inside_connected_and_their_shape(family: tuple[str, ShortcutData]) -> None:
    from scipy import ndimage

    _, d = family
    for label, mask in zip(d.labels, d.masks, strict=True):
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        _, n_components = ndimage.label(mask, structure=np.ones((3, 3)))
        assert n_components == 1
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        center = box[box.shape[0] // 2, box.shape[1] // 2]
        name = SHAPES[label]
        if name == "square":
            assert box.all()
        elif name == "ring":
            assert not center
        elif name == "triangle":
            assert box[0].sum() <= 2 and box[-1].all()
        else:
            assert center and not box.all()


@pytest.mark.parametrize("cue", FAMILIES)
@pytest.mark.parametrize(("n", "agreement"), [(300, 0.8), (101, 0.95), (7, 0.0), (40, 1.0)])
def test_family_exact_agreement_count(cue: str, n: int, agreement: float) -> None:
    d = make_shortcut_data(n, image_size=32, agreement=agreement, seed=1, cue=cue)
    assert int(d.cue_agrees.sum()) == round(agreement * n)
    np.testing.assert_array_equal(d.cue_agrees, d.background_classes == d.labels)


def test_clean_twin_cue_is_independent_of_the_label() -> None:
    # agreement = 1 / num_classes: the cue class is uniform whatever the label.
    d = make_shortcut_data(1800, image_size=32, num_classes=3, agreement=1 / 3, cue="patch")
    table = np.zeros((3, 3), dtype=int)
    np.add.at(table, (d.labels, d.background_classes), 1)
    assert table.sum() == 1800
    assert np.abs(table - 200).max() < 45  # each (label, cue class) cell about 1800 / 9


# Hand-written decoders of each cue, from the documented geometry only (never from
# `background_classes`); each returns the decoded cue class of every image.


def _nearest_tint_of(colors: np.ndarray, num_classes: int) -> np.ndarray:
    return _nearest_tint(colors, num_classes)


def _decode_patch(d: ShortcutData, k: int) -> np.ndarray:
    p = max(2, d.images.shape[1] // 8)
    return _nearest_tint_of(d.images[:, :p, :p].mean(axis=(1, 2)), k)


def _frame_band(size: int) -> np.ndarray:
    w = max(1, size // 16)
    band = np.ones((size, size), dtype=bool)
    band[w:-w, w:-w] = False
    return band


def _decode_frame(d: ShortcutData, k: int) -> np.ndarray:
    return _nearest_tint_of(d.images[:, _frame_band(d.images.shape[1])].mean(axis=1), k)


def _grey_background(d: ShortcutData) -> np.ndarray:
    """Grey images minus their background mean, the object filled with 0."""
    grey = d.images.mean(axis=-1)
    bg = ~d.masks
    mean = (grey * bg).sum(axis=(1, 2)) / bg.sum(axis=(1, 2))
    return np.where(bg, grey - mean[:, None, None], 0.0)


def _decode_texture(d: ShortcutData, k: int) -> np.ndarray:
    # Matched filter: energy of the background at the stripe frequency of each orientation.
    size = d.images.shape[1]
    period = max(4.0, size / 8)
    y, x = np.mgrid[0:size, 0:size] + 0.5
    theta = np.pi * np.arange(k) / k
    phase = x[None] * np.cos(theta)[:, None, None] + y[None] * np.sin(theta)[:, None, None]
    kernels = np.exp(-2j * np.pi * phase / period)
    return np.abs(np.einsum("nyx,kyx->nk", _grey_background(d), kernels)).argmax(axis=1)


BLUR_SIGMAS = (0.0, 0.5, 0.8, 1.2, 1.7, 2.4)  # as documented


def _decode_blur(d: ShortcutData, k: int, noise: float) -> np.ndarray:
    # Structure function D(lag) = mean squared difference of background pixels `lag` apart,
    # against its value for Gaussian-blurred noise of std 0.1: 2 * 0.01 * (1 - rho(lag)) with
    # rho = exp(-lag^2 / (4 sigma^2)), plus the pixel noise (averaged over the 3 channels).
    grey, bg = d.images.mean(axis=-1), ~d.masks
    lags = (1, 2, 3, 4)
    measured = []
    for lag in lags:
        sq_h, ok_h = (grey[:, :, lag:] - grey[:, :, :-lag]) ** 2, bg[:, :, lag:] & bg[:, :, :-lag]
        sq_v, ok_v = (grey[:, lag:] - grey[:, :-lag]) ** 2, bg[:, lag:] & bg[:, :-lag]
        total = (sq_h * ok_h).sum(axis=(1, 2)) + (sq_v * ok_v).sum(axis=(1, 2))
        measured.append(total / (ok_h.sum(axis=(1, 2)) + ok_v.sum(axis=(1, 2))))
    log_measured = np.log(np.stack(measured, axis=1))
    expected = []
    for sigma in BLUR_SIGMAS[:k]:
        rho = np.array([np.exp(-(lag**2) / (4 * sigma**2)) if sigma else 0.0 for lag in lags])
        expected.append(np.log(2 * 0.01 * (1 - rho) + 2 * noise**2 / 3))
    return ((log_measured[:, None] - np.array(expected)[None]) ** 2).sum(axis=-1).argmin(axis=1)


def _distractor_pixels(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The largest blob off the object that differs clearly from the (median) background."""
    from scipy import ndimage

    off = (np.linalg.norm(image - np.median(image[~mask], axis=0), axis=-1) > 0.2) & ~mask
    blobs, count = ndimage.label(off)
    if count == 0:
        return off
    sizes = ndimage.sum(off, blobs, range(1, count + 1))
    return blobs == 1 + int(np.argmax(sizes))


def _decode_distractor(d: ShortcutData, k: int) -> np.ndarray:
    # Template matching: best IoU of each class's shape over the documented distractor sizes
    # (radius 0.10 to 0.12 of the image side) and a small grid of centres around the blob's
    # bounding box.
    from saliency_callback.data.shapes import _PREDICATES

    size = d.images.shape[1]
    coords = np.arange(size) + 0.5
    offsets = np.linspace(-0.5, 0.5, 9)
    radii = size * np.linspace(0.10, 0.12, 9)[None, None, :, None, None]
    decoded = []
    for image, mask in zip(d.images, d.masks, strict=True):
        blob = _distractor_pixels(image, mask)
        rows, cols = np.flatnonzero(blob.any(1)), np.flatnonzero(blob.any(0))
        if rows.size == 0:
            decoded.append(-1)
            continue
        cy = (rows[0] + rows[-1] + 1) / 2 + offsets[:, None, None, None, None]
        cx = (cols[0] + cols[-1] + 1) / 2 + offsets[None, :, None, None, None]
        best = []
        for cls in range(k):
            t = _PREDICATES[cls](coords[:, None] - cy, coords[None, :] - cx, radii)
            best.append(((t & blob).sum(axis=(-1, -2)) / (t | blob).sum(axis=(-1, -2))).max())
        decoded.append(int(np.argmax(best)))
    return np.array(decoded)


def _decode(cue: str, d: ShortcutData, k: int, noise: float) -> np.ndarray:
    if cue == "patch":
        return _decode_patch(d, k)
    if cue == "frame":
        return _decode_frame(d, k)
    if cue == "background_texture":
        return _decode_texture(d, k)
    if cue == "blur":
        return _decode_blur(d, k, noise)
    return _decode_distractor(d, k)


@pytest.mark.parametrize("cue", FAMILIES)
def test_cue_is_decodable_and_encodes_the_label_when_agreeing(cue: str) -> None:
    d = make_shortcut_data(300, image_size=32, num_classes=3, agreement=0.5, seed=21, cue=cue)
    decoded = _decode(cue, d, 3, noise=0.05)
    assert (decoded == d.background_classes).mean() >= 0.95
    agree = d.cue_agrees
    assert 100 < agree.sum() < 200
    np.testing.assert_array_equal(decoded[agree], d.labels[agree])
    # ... and it is a cue, not a copy of the label: the disagreeing ones decode to another class.
    assert (decoded[~agree] != d.labels[~agree]).mean() >= 0.95


@pytest.mark.parametrize("cue", FAMILIES)
def test_cue_is_decodable_with_six_classes(cue: str) -> None:
    d = make_shortcut_data(240, image_size=48, num_classes=6, agreement=0.2, seed=22, cue=cue)
    decoded = _decode(cue, d, 6, noise=0.05)
    assert (decoded == d.background_classes).mean() >= 0.95


def test_decoders_fail_on_the_wrong_cue() -> None:
    # The decoders read their cue, not something every family shares: each one is at chance
    # level (1/3) on images of another family.
    d = make_shortcut_data(300, image_size=32, num_classes=3, agreement=0.5, seed=23, cue="blur")
    for cue in ("patch", "frame", "background_texture"):
        assert (_decode(cue, d, 3, noise=0.05) == d.background_classes).mean() < 0.5, cue
    d = make_shortcut_data(300, image_size=32, num_classes=3, agreement=0.5, seed=23, cue="frame")
    for cue in ("blur", "distractor"):
        assert (_decode(cue, d, 3, noise=0.05) == d.background_classes).mean() < 0.5, cue


@pytest.mark.parametrize("cue", ["background_texture", "blur"])
def test_mean_background_color_carries_no_cue(cue: str) -> None:
    d = make_shortcut_data(1200, image_size=32, num_classes=3, agreement=0.5, seed=5, cue=cue)
    means = np.array([_mean_background(d)[d.background_classes == c].mean(0) for c in range(3)])
    # Per-image base colours vary by ~0.09; averaged over ~400 images per class, 0.02 is ~4 SE.
    assert np.abs(means - means.mean(axis=0)).max() < 0.02
    # Whereas with the tint the cue class is plain in the mean colour.
    tinted = make_shortcut_data(1200, image_size=32, num_classes=3, seed=5)
    tmeans = np.array(
        [_mean_background(tinted)[tinted.background_classes == c].mean(0) for c in range(3)]
    )
    assert np.abs(tmeans - tmeans.mean(axis=0)).max() > 0.2


def test_patch_is_intact_and_clear_of_the_object() -> None:
    for size in (16, 20, 32, 48):
        d = make_shortcut_data(
            400, image_size=size, num_classes=6, seed=size, noise=0.0, cue="patch"
        )
        p = max(2, size // 8)
        corner = d.images[:, :p, :p].reshape(400, -1, 3)
        np.testing.assert_array_equal(corner, np.broadcast_to(corner[:, :1], corner.shape))
        # The pixels next to the patch are background, not patch.
        assert np.all(np.linalg.norm(d.images[:, p, :p] - corner[:, :1], axis=-1) > 0.1)
        gap = 1 if size >= 20 else 0
        assert not d.masks[:, : p + gap, : p + gap].any(), size


def test_frame_is_intact_and_clear_of_the_object() -> None:
    for size in (16, 32, 48):
        d = make_shortcut_data(
            300, image_size=size, num_classes=6, seed=size, noise=0.0, cue="frame"
        )
        w = max(1, size // 16)
        band = _frame_band(size)
        pixels = d.images[:, band]
        np.testing.assert_array_equal(pixels, np.broadcast_to(pixels[:, :1], pixels.shape))
        # The object stays in the interior, one pixel of background away from the frame.
        inner = np.zeros((size, size), dtype=bool)
        inner[w + 1 : -w - 1, w + 1 : -w - 1] = True
        assert not d.masks[:, ~inner].any()


def test_distractor_is_apart_from_the_object_and_outside_the_mask() -> None:
    from scipy import ndimage

    d = make_shortcut_data(300, image_size=32, num_classes=6, seed=3, noise=0.0, cue="distractor")
    for image, mask in zip(d.images, d.masks, strict=True):
        blob = _distractor_pixels(image, mask)
        assert 5 <= blob.sum() < mask.sum()  # present, and smaller than the object
        assert not (blob & ndimage.binary_dilation(mask, iterations=2)).any()
        # Flat colour, unlike the object's (the mask test checks the object's colour is
        # nowhere else).
        colors = image[blob]
        np.testing.assert_array_equal(colors, np.broadcast_to(colors[0], colors.shape))
    area = d.masks.mean(axis=(1, 2))
    assert area.min() >= 0.06 and area.max() <= 0.16


@pytest.mark.parametrize("cue", FAMILIES)
def test_family_determinism_seed_and_noise(cue: str) -> None:
    a = make_shortcut_data(30, image_size=32, seed=5, cue=cue)
    b = make_shortcut_data(30, image_size=32, seed=5, cue=cue)
    c = make_shortcut_data(30, image_size=32, seed=6, cue=cue)
    for field in ("images", "labels", "masks", "cue_agrees", "background_classes"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.images, c.images)
    clean = make_shortcut_data(30, image_size=32, seed=5, cue=cue, noise=0.0)
    np.testing.assert_array_equal(clean.masks, a.masks)
    assert 0.03 < (a.images - clean.images).std() < 0.07
    # A family changes the images, not the labels or cue draws.
    tint = make_shortcut_data(30, image_size=32, seed=5)
    np.testing.assert_array_equal(tint.background_classes, a.background_classes)
    assert not np.array_equal(tint.images, a.images)


@pytest.mark.parametrize("cue", FAMILIES)
def test_family_does_not_touch_global_random_state(cue: str) -> None:
    np.random.seed(0)
    expected = np.random.random()
    np.random.seed(0)
    make_shortcut_data(10, image_size=32, cue=cue)
    assert np.random.random() == expected


@pytest.mark.parametrize("cue", CUES)
def test_family_splits(cue: str) -> None:
    train, test = make_shortcut_splits(100, 40, seed=4, image_size=32, cue=cue)
    assert train.cue == test.cue == cue
    assert int(train.cue_agrees.sum()) == 95
    assert int(test.cue_agrees.sum()) == 20
    assert not np.array_equal(train.images[:40], test.images)
    again, _ = make_shortcut_splits(100, 40, seed=4, image_size=32, cue=cue)
    np.testing.assert_array_equal(train.images, again.images)


@pytest.mark.parametrize("bad", ["tint", "Background_Color", "", None, 3])
def test_bad_cue_names_the_argument_and_lists_the_cues(bad: object) -> None:
    listing = r".*".join(CUES)
    with pytest.raises(ValueError, match=rf"`cue` to be one of .*{listing}.*received {bad!r}"):
        make_shortcut_data(10, cue=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`cue`"):
        make_shortcut_splits(10, 10, cue=bad)  # type: ignore[arg-type]


def test_distractor_needs_room() -> None:
    with pytest.raises(ValueError, match=r"`image_size` >= 32 with cue='distractor', received 31"):
        make_shortcut_data(10, image_size=31, cue="distractor")
    with pytest.raises(ValueError, match=r"`image_size` >= 32"):
        make_shortcut_splits(10, 10, image_size=24, cue="distractor")
    assert make_shortcut_data(10, image_size=32, cue="distractor").images.shape[1] == 32
