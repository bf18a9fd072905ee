"""The remedies against independent truth: background-swap training (NumPy and tf.data), the mask
cache, and the head refit.

Provenance is checked pixel by pixel against backgrounds recomputed here with
`background.remove_objects`: a swapped image's object pixels are its own, every other pixel is
its partner's object-removed background, and the partner is another usable image. Labels carry
each image's index, so a batch says where every row came from.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

import saliency_callback as sc
from saliency_callback.remedies import mask_cache
from saliency_callback.shortcuts import background as bg
from saliency_callback.shortcuts.proposals import ProposedMasks

tf_only = pytest.mark.tf_only


def bed(n=40, size=10, seed=0):
    """Noise images with a random rectangle as each object; labels are the images' indices."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, size, size, 3)).astype(np.float32)
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        y0, x0 = rng.integers(0, size // 2, 2)
        h, w = rng.integers(2, size // 2, 2)
        masks[i, y0 : y0 + h, x0 : x0 + w] = True
    return images, masks, np.arange(n)


def all_batches(data):
    xs, ys = zip(*(data[i] for i in range(len(data))), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def provenance(x, index, images, masks, filled, usable):
    """For one output image: `None` if it is the input image bitwise, else its partner, after
    checking object pixels are the image's own and the rest the partner's filled background."""
    if np.array_equal(x, images[index]):
        return None
    m = masks[index]
    assert np.array_equal(x[m], images[index][m]), "object pixels are not the image's own"
    partners = [j for j in range(len(images)) if np.array_equal(x[~m], filled[j][~m])]
    assert len(partners) == 1, f"background of image {index} matches {partners}"
    (j,) = partners
    assert j != index and usable[j]
    return j


# -- BackgroundSwap (NumPy) --------------------------------------------------------------------


@pytest.mark.parametrize("shuffle", [False, True])
def test_p0_batches_are_the_inputs_bitwise(shuffle):
    images, masks, labels = bed()
    data = sc.BackgroundSwap(images, labels, masks, p=0.0, batch_size=7, seed=3, shuffle=shuffle)
    assert len(data) == 6  # ceil(40 / 7)
    for epoch in range(2):
        data.on_epoch_begin()  # as fit calls it: the first keeps epoch 0
        assert data.epoch == epoch
        x, y = all_batches(data)
        assert x.dtype == images.dtype and sorted(y) == list(labels)
        np.testing.assert_array_equal(x, images[y])
        if not shuffle:
            np.testing.assert_array_equal(x, images)


def test_p1_pastes_each_object_on_another_images_filled_background():
    images, masks, labels = bed(n=24)
    masks[5] = False  # no object: never swapped, never a background
    masks[6] = True  # no background: the same
    filled = bg.remove_objects(images, masks, fill="shift")
    usable = np.ones(24, bool)
    usable[[5, 6]] = False
    with pytest.warns(UserWarning, match="2 of 24 images .* 2 whose mask is empty or covers"):
        data = sc.BackgroundSwap(images, labels, masks, p=1.0, batch_size=8, seed=0)
    x, y = all_batches(data)
    sources = [provenance(x[k], y[k], images, masks, filled, usable) for k in range(len(y))]
    swapped = {int(i) for i, j in zip(y, sources, strict=True) if j is not None}
    assert swapped == set(np.flatnonzero(usable))  # every usable image, and only those
    assert sorted(data.skipped.tolist()) == [5, 6]


def test_share_swapped_is_p_within_a_binomial_bound():
    images, masks, labels = bed(n=600, size=8)
    data = sc.BackgroundSwap(images, labels, masks, p=0.2, batch_size=600, seed=1)
    counts = []
    for _ in range(3):
        data.on_epoch_begin()
        x, y = data[0]
        counts.append(int((x != images[y]).any(axis=(1, 2, 3)).sum()))
    n = 3 * 600
    assert abs(sum(counts) - 0.2 * n) <= 4.5 * np.sqrt(n * 0.2 * 0.8), counts
    assert len(set(counts)) > 1 or counts[0] == 0  # fresh draws each epoch


def test_same_seed_same_batches_other_seed_other_batches():
    images, masks, labels = bed()

    def epochs(seed):
        data = sc.BackgroundSwap(images, labels, masks, p=0.5, batch_size=16, seed=seed)
        out = []
        for _ in range(2):
            data.on_epoch_begin()
            out.append(all_batches(data))
        return out

    first, again, other = epochs(7), epochs(7), epochs(8)
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(first[0][0], other[0][0])
    assert not np.array_equal(first[0][0], first[1][0])  # epochs differ


def test_labels_pass_through_unchanged():
    images, masks, _ = bed()
    onehot = np.eye(40, dtype=np.float32)[::-1]
    data = sc.BackgroundSwap(images, onehot, masks, p=1.0, batch_size=40, seed=0, shuffle=False)
    x, y = data[0]
    np.testing.assert_array_equal(y, onehot)
    assert not np.array_equal(x, images)


def test_uint8_images_stay_uint8_and_exact():
    images, masks, labels = bed()
    pixels = (images * 255).astype(np.uint8)
    filled = bg.remove_objects(pixels, masks).astype(np.uint8)
    data = sc.BackgroundSwap(pixels, labels, masks, p=1.0, batch_size=40, seed=0)
    x, y = data[0]
    assert x.dtype == np.uint8
    for k in range(5):
        provenance(x[k], y[k], pixels, masks, filled, np.ones(40, bool))


def test_fallback_proposals_are_skipped_and_counted():
    images, masks, labels = bed(n=12)
    fallback = np.zeros(12, bool)
    fallback[[0, 3, 4]] = True
    proposed = ProposedMasks(masks, np.zeros((12, 4), np.int64), fallback, "grabcut")
    with pytest.warns(UserWarning, match=r"3 of 12 images .* 3 whose proposed mask is a fallback"):
        data = sc.BackgroundSwap(images, labels, proposed, p=1.0, batch_size=12, seed=0)
    filled = bg.remove_objects(images, masks)
    x, y = data[0]
    for k in range(12):
        j = provenance(x[k], y[k], images, masks, filled, ~fallback)
        assert (j is None) == bool(fallback[y[k]])


def seeded_linear_model(size=8, classes=3):
    """A linear softmax model built and initialised under seed 0: two calls, the same weights."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, "softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_p0_training_is_bitwise_training_without_the_remedy(op_determinism):
    images, masks, _ = bed(n=48, size=8)
    labels = np.arange(48) % 3

    def trained(data):
        model = seeded_linear_model()
        if data is None:
            model.fit(images, labels, batch_size=16, epochs=2, shuffle=False, verbose=0)
        else:
            model.fit(data, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    swap = sc.BackgroundSwap(images, labels, masks, p=0.0, batch_size=16, shuffle=False)
    for a, b in zip(trained(None), trained(swap), strict=True):
        np.testing.assert_array_equal(a, b)
    assert swap.epoch == 1  # fit moved it on: each epoch draws anew


@tf_only
def test_dataset_p0_training_is_bitwise_training_without_the_remedy(op_determinism):
    images, masks, _ = bed(n=48, size=8)
    labels = np.arange(48) % 3

    def trained(swap):
        model = seeded_linear_model()
        data = dataset(images, labels)
        if swap:
            data = sc.background_swap(data, masks, p=0.0, seed=0)
        model.fit(data.shuffle(48, seed=1).batch(16), epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    for a, b in zip(trained(False), trained(True), strict=True):
        np.testing.assert_array_equal(a, b)


BAD_INPUTS = {
    "p above 1": (
        lambda x, y, m: (x, y, m, {"p": 1.5}),
        ValueError,
        r"`p` in \[0, 1\]. Received: p=1.5",
    ),
    "p below 0": (lambda x, y, m: (x, y, m, {"p": -0.1}), ValueError, r"Received: p=-0.1"),
    "p nan": (lambda x, y, m: (x, y, m, {"p": float("nan")}), ValueError, r"Received: p=nan"),
    "p str": (lambda x, y, m: (x, y, m, {"p": "0.2"}), TypeError, r"`p` to be a real number"),
    "p bool": (lambda x, y, m: (x, y, m, {"p": True}), TypeError, r"`p` to be a real number"),
    "batch_size": (
        lambda x, y, m: (x, y, m, {"batch_size": 0}),
        ValueError,
        r"`batch_size` to be a positive int. Received: batch_size=0",
    ),
    "seed negative": (lambda x, y, m: (x, y, m, {"seed": -1}), ValueError, r"`seed` >= 0"),
    "seed float": (lambda x, y, m: (x, y, m, {"seed": 1.5}), TypeError, r"an int or None"),
    "mask count": (
        lambda x, y, m: (x, y, m[:39], {}),
        ValueError,
        r"one mask per image: 40 masks. Received: 39",
    ),
    "mask size": (
        lambda x, y, m: (x, y, m[:, :8], {}),
        ValueError,
        r"images' height and width \(10, 10\)",
    ),
    "mask rank": (lambda x, y, m: (x, y, m[:, :, 0], {}), ValueError, r"of shape \(N, H, W\)"),
    "soft mask": (
        lambda x, y, m: (x, y, m * 0.5, {}),
        ValueError,
        r"bool or 0/1 .* values such as \[0.5\]",
    ),
    "mask strings": (lambda x, y, m: (x, y, m.astype(str), {}), TypeError, r"numeric array"),
    "label count": (
        lambda x, y, m: (x, y[:39], m, {}),
        ValueError,
        r"one label per image: 40 labels. Received: 39",
    ),
    "image rank": (lambda x, y, m: (x[..., 0], y, m, {}), ValueError, r"\(N, H, W, C\)"),
    "bool images": (lambda x, y, m: (x > 0.5, y, m, {}), TypeError, r"dtype bool"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_naming_the_argument(case):
    build, error, match = BAD_INPUTS[case]
    images, masks, labels = bed()
    images, labels, masks, kwargs = build(images, labels, masks)
    with pytest.raises(error, match=match):
        sc.BackgroundSwap(images, labels, masks, **{"p": 0.2, **kwargs})


def test_masks_as_0_1_numbers_are_accepted():
    images, masks, labels = bed()
    as_bool = sc.BackgroundSwap(images, labels, masks, p=0.5, seed=0)
    as_float = sc.BackgroundSwap(images, labels, masks.astype(np.float32)[..., None], p=0.5, seed=0)
    np.testing.assert_array_equal(as_bool[0][0], as_float[0][0])


# -- background_swap (tf.data) -----------------------------------------------------------------


def dataset(images, labels):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((images, labels))


def elements(ds):
    xs, ys = zip(*ds.as_numpy_iterator(), strict=True)
    return np.stack(xs), np.array(ys)


@tf_only
def test_dataset_p0_is_bitwise_and_p1_has_the_arrays_provenance():
    images, masks, labels = bed(n=24)
    x, y = elements(sc.background_swap(dataset(images, labels), masks, p=0.0, seed=0))
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    filled = bg.remove_objects(images, masks)
    swapped = sc.background_swap(dataset(images, labels), masks, p=1.0, seed=0)
    for _ in range(2):  # two passes (epochs)
        x, y = elements(swapped)
        np.testing.assert_array_equal(y, labels)
        sources = [provenance(x[k], k, images, masks, filled, np.ones(24, bool)) for k in y]
        assert None not in sources


@tf_only
def test_dataset_is_deterministic_under_a_seed_and_redraws_each_pass():
    images, masks, labels = bed()
    a = sc.background_swap(dataset(images, labels), masks, p=0.5, seed=4)
    b = sc.background_swap(dataset(images, labels), masks, p=0.5, seed=4)
    c = sc.background_swap(dataset(images, labels), masks, p=0.5, seed=5)
    first, second = elements(a)[0], elements(a)[0]
    np.testing.assert_array_equal(first, elements(b)[0])
    np.testing.assert_array_equal(second, elements(b)[0])
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, elements(c)[0])


@tf_only
def test_dataset_bad_input_is_refused():
    import tensorflow as tf

    images, masks, labels = bed()
    ds = dataset(images, labels)
    with pytest.raises(TypeError, match=r"for NumPy arrays use `saliency_callback.BackgroundSwap"):
        sc.background_swap(images, masks, p=0.2)
    with pytest.raises(TypeError, match=r"for a `tf.data.Dataset` use"):
        sc.BackgroundSwap(ds, labels, masks, p=0.2)
    with pytest.raises(ValueError, match=r"call `background_swap` before `.batch\(\)`"):
        sc.background_swap(ds.batch(4), masks, p=0.2)
    with pytest.raises(ValueError, match=r"call `.repeat\(\)` after"):
        sc.background_swap(ds.repeat(), masks, p=0.2)
    with pytest.raises(TypeError, match=r"elements `\(image, label\)`"):
        sc.background_swap(tf.data.Dataset.from_tensor_slices(images), masks, p=0.2)
    with pytest.raises(ValueError, match=r"40 masks. Received: 39 masks"):
        sc.background_swap(ds, masks[:39], p=0.2)
    with pytest.raises(ValueError, match=r"Received: p=2"):
        sc.background_swap(ds, masks, p=2)
    shuffled = sc.background_swap(ds.shuffle(40, seed=1), masks, p=0.5, seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="shuffle, repeat and augment after"):
        elements(shuffled)


@tf_only
def test_both_forms_train_under_mirrored_strategy():
    import tensorflow as tf

    images, masks, _ = bed(n=32, size=8)
    labels = np.arange(32) % 3
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
        )
        model.compile("adam", "sparse_categorical_crossentropy")
    before = model.get_weights()
    train = sc.background_swap(dataset(images, labels), masks, p=0.3, seed=0)
    history = model.fit(train.shuffle(32, seed=0).batch(8), epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    after = model.get_weights()
    assert not np.array_equal(before[0], after[0])
    arrays = sc.BackgroundSwap(images, labels, masks, p=0.3, batch_size=8, seed=0)
    history = model.fit(arrays, epochs=2, verbose=0)  # the NumPy form, the same strategy
    assert np.isfinite(history.history["loss"]).all() and arrays.epoch >= 1  # drawn anew
    assert not np.array_equal(after[0], model.get_weights()[0])


# -- cache_masks --------------------------------------------------------------------------------


def shapes(n=6, seed=0):
    return sc.make_shortcut_data(n, image_size=16, num_classes=3, seed=seed).images


def count_proposals(monkeypatch):
    calls = []
    real = mask_cache.propose_masks

    def counting(images, **kwargs):
        calls.append(len(images))
        return real(images, **kwargs)

    monkeypatch.setattr(mask_cache, "propose_masks", counting)
    return calls


def test_mask_cache_round_trip_reuse_and_stale_file(tmp_path, monkeypatch, capsys):
    calls = count_proposals(monkeypatch)
    images, path = shapes(), tmp_path / "sub" / "masks.npz"
    first = sc.cache_masks(images, path, chunk_size=4)
    assert calls == [4, 2] and path.exists()  # two chunks under the progress bar
    assert os.listdir(path.parent) == ["masks.npz"]  # no temporary file left
    assert "proposed 6 masks" in capsys.readouterr().out
    truth = sc.propose_masks(images)
    np.testing.assert_array_equal(first.masks, truth.masks)
    np.testing.assert_array_equal(first.boxes, truth.boxes)
    np.testing.assert_array_equal(first.fallback, truth.fallback)

    again = sc.cache_masks(images, path, verbose=0)
    assert calls == [4, 2]  # read back, nothing proposed
    np.testing.assert_array_equal(again.masks, truth.masks)
    assert again.masks.dtype == bool and again.method == "grabcut"

    other = shapes(seed=1)
    with pytest.warns(UserWarning, match="made for other images"):
        replaced = sc.cache_masks(other, path, verbose=0)
    assert calls == [4, 2, 6]
    np.testing.assert_array_equal(replaced.masks, sc.propose_masks(other).masks)
    with pytest.warns(UserWarning, match="made for other images"):
        sc.cache_masks(images[::-1], path, verbose=0)  # the same images, reordered

    path.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="cannot be read"):
        sc.cache_masks(images, path, verbose=0)
    assert sc.cache_masks(images, path, verbose=0).masks.shape == (6, 16, 16)


def test_mask_cache_says_what_was_skipped(tmp_path, capsys):
    flat = np.full((3, 16, 16, 3), 0.5, np.float32)  # no object anywhere: every one falls back
    out = sc.cache_masks(flat, tmp_path / "m.npz", verbose=1)
    assert out.fallback.all()
    assert "3 of 3 images have no plausible object" in capsys.readouterr().out


def test_mask_cache_write_is_atomic(tmp_path, monkeypatch):
    images, path = shapes(), tmp_path / "masks.npz"
    sc.cache_masks(images, path, verbose=0)
    before = path.read_bytes()

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(mask_cache.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"), pytest.warns(UserWarning):
        sc.cache_masks(shapes(seed=2), path, verbose=0)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["masks.npz"]


def test_mask_cache_bad_arguments():
    with pytest.raises(ValueError, match=r"`method` in"):
        sc.cache_masks(shapes(), "x.npz", method="magic")
    with pytest.raises(ValueError, match=r"`chunk_size` to be a positive int"):
        sc.cache_masks(shapes(), "x.npz", chunk_size=0)
    with pytest.raises(TypeError, match=r"`path` to be a file path"):
        sc.cache_masks(shapes(), 3)


# -- refit_head ---------------------------------------------------------------------------------


def background_reader(size=8):
    """Features: mean colour of the centre square (the object) and of the border (the
    background); a head that reads only the background's colour."""
    centre = np.zeros((size, size), bool)
    centre[2:-2, 2:-2] = True
    kernel = np.zeros((size * size * 3, 6), np.float32)
    for c in range(3):
        where = np.zeros((size, size, 3), bool)
        where[..., c] = centre
        kernel[where.reshape(-1), c] = 1 / centre.sum()
        where[..., c] = ~centre
        kernel[where.reshape(-1), 3 + c] = 1 / (~centre).sum()
    inp = keras.Input((size, size, 3))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(6, use_bias=False, name="features")(x)
    x = keras.layers.BatchNormalization(name="norm")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    model.get_layer("features").set_weights([kernel])
    head = np.zeros((6, 3), np.float32)
    head[3:, :] = 8 * np.eye(3)
    model.get_layer("head").set_weights([head, np.zeros(3, np.float32)])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model, centre


def reader_data(n, size=8, agreement=0.95, seed=0):
    """Class k: object in colour channel k; background in the cue class's channel."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    cue = np.where(rng.random(n) < agreement, labels, (labels + rng.integers(1, 3, n)) % 3)
    images = 0.1 * rng.random((n, size, size, 3)).astype(np.float32)
    _, centre = background_reader(size)
    images[np.arange(n), :, :, cue] += 0.6 * ~centre
    images[np.arange(n), :, :, labels] += 0.6 * centre
    masks = np.broadcast_to(centre, (n, size, size)).copy()
    return images, masks, labels, cue


def test_refit_head_fixes_a_background_reader_and_touches_nothing_else():
    model, _ = background_reader()
    images, masks, labels, _ = reader_data(60)
    model.fit(images, labels, epochs=1, batch_size=30, verbose=0)  # optimizer state exists
    head = model.get_layer("head")
    refitted = {id(head.kernel), id(head.bias)}
    others = [v for v in [*model.weights, *model.optimizer.variables] if id(v) not in refitted]
    saved = [np.array(v.numpy()) for v in others]
    config = model.get_config()

    test, _, test_labels, test_cue = reader_data(300, seed=1, agreement=0.5)
    disagree = test_labels != test_cue
    before = model.predict(test, verbose=0).argmax(1) == test_labels
    report = sc.refit_head(model, images, masks, labels)
    after = model.predict(test, verbose=0).argmax(1) == test_labels

    assert before[disagree].mean() < 0.05  # it read the background
    assert after[disagree].mean() > 0.95 and after[~disagree].mean() > 0.95
    assert report.composites == 180 and report.skipped == 0  # 60 images x 3 background classes
    assert report.disagree_before < 0.05 and report.disagree_after > 0.95
    assert report.accuracy_after > report.accuracy_before
    for v, value in zip(others, saved, strict=True):
        np.testing.assert_array_equal(v.numpy(), value, err_msg=v.path)
    assert model.get_config() == config


def test_refit_head_one_sigmoid_unit():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(1, "sigmoid")]
    )
    images, masks, labels, _ = reader_data(40)
    keep = labels < 2
    report = sc.refit_head(model, images[keep], masks[keep], labels[keep])
    assert report.accuracy_after >= 0.95


def test_refit_head_bad_input():
    model, _ = background_reader()
    images, masks, labels, _ = reader_data(12)
    with pytest.raises(TypeError, match=r"keras\.Model"):
        sc.refit_head(object(), images, masks, labels)
    no_head = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="last layer is `Dense`"):
        sc.refit_head(no_head, images, masks, labels)
    relu = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "relu")]
    )
    with pytest.raises(ValueError, match="softmax or linear activation"):
        sc.refit_head(relu, images, masks, labels)
    with pytest.raises(ValueError, match=r"12 masks\. Received: 11"):
        sc.refit_head(model, images, masks[:11], labels)
    with pytest.raises(ValueError, match="at least two classes"):
        sc.refit_head(model, images, masks, np.zeros(12, np.int64))
    with pytest.raises(ValueError, match="`l2` >= 0"):
        sc.refit_head(model, images, masks, labels, l2=-1.0)
