"""Background interventions: compositing pixel by pixel, pairing, and hand-built models that
read only the background or only the object, through the callback and its event files."""

from __future__ import annotations

import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from hand_models import (
    K,
    N,
    S,
    background_reader,
    fit_with_callback,
    frozen,
    object_reader,
    probe_set,
    vanilla_callback,
)
from tb_events import read_run

import saliency_callback as sc
from saliency_callback.output.render import SEPARATOR_PX, caption_height
from saliency_callback.shortcuts import background as bg

# -- compositing ---------------------------------------------------------------------------------


def test_variants_pixel_by_pixel():
    images, labels, masks = probe_set(object_reads_class=False)
    test = bg.BackgroundTest.build(images, masks, labels)
    mean = images.mean(axis=(0, 1, 2))
    only_fg, only_bg = test.images["only_fg"], test.images["only_bg"]
    mixed, partners = test.images["mixed_rand"], test.partners["mixed_rand"]
    for i in range(N):
        m, j = masks[i], partners[i]
        np.testing.assert_array_equal(only_fg[i][m], images[i][m])
        np.testing.assert_allclose(only_fg[i][~m], np.broadcast_to(mean, only_fg[i][~m].shape))
        np.testing.assert_array_equal(only_bg[i][~m], images[i][~m])  # background kept
        # The object's grey is gone: its pixels now hold the (uniform) background colour.
        np.testing.assert_array_equal(only_bg[i][m], np.broadcast_to(images[i][~m][0], (16, 3)))
        np.testing.assert_array_equal(mixed[i][m], images[i][m])  # object from the source
        np.testing.assert_array_equal(mixed[i][~m], only_bg[j][~m])  # background: partner's
        assert labels[j] != labels[i]  # mixed_rand pairs across classes when labels exist
        same = test.partners["mixed_same"][i]
        assert same != i and labels[same] == labels[i]


def test_object_removal_resamples_the_images_own_background():
    rng = np.random.default_rng(3)
    images = rng.random((2, 8, 8, 3)).astype(np.float32)
    masks = np.zeros((2, 8, 8), bool)
    masks[:, 2:5, 3:7] = True
    filled = bg.remove_objects(images, masks, seed=1, fill="resample")
    for x, m, f in zip(images, masks, filled, strict=True):
        np.testing.assert_array_equal(f[~m], x[~m])  # the background is untouched
        background = {tuple(p) for p in x[~m]}
        assert all(tuple(p) in background for p in f[m])  # every filled pixel is from it
        assert not any(tuple(p) in background for p in x[m])  # (the object's were not)
    np.testing.assert_array_equal(bg.remove_objects(images, masks, 1, "resample"), filled)
    with pytest.raises(ValueError, match="fill"):
        bg.remove_objects(images, masks, fill="inpaint")


def _high_frequency(x: np.ndarray, where: np.ndarray) -> float:
    """Mean squared difference between horizontally adjacent pixels both in `where`."""
    both = where[:, 1:] & where[:, :-1]
    return float((np.diff(x, axis=1) ** 2).sum(-1)[both].mean())


def test_the_shift_fill_copies_the_background_and_keeps_its_sharpness():
    """A blurred background stays blurred inside the hole and a sharp one sharp: the hole is a
    copy of the same image's background at one offset (the object fits in one copy), and its
    pixel-to-pixel differences match the background's own, where a per-pixel resampling makes
    a blurred background's hole sharp and noisy."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    noise = rng.random((2, 32, 32, 3)).astype(np.float32)
    images = np.stack([ndimage.gaussian_filter(noise[0], (2, 2, 0)), noise[1]])
    masks = np.zeros((2, 32, 32), bool)
    masks[:, 10:18, 12:19] = True
    masks[:, 18:24, 14:16] = True  # not a rectangle
    shifted = bg.remove_objects(images, masks)
    resampled = bg.remove_objects(images, masks, fill="resample")
    for x, m, f in zip(images, masks, shifted, strict=True):
        np.testing.assert_array_equal(f[~m], x[~m])
        ys, xs = np.nonzero(m)
        offsets = {
            (dy, dx)
            for dy in range(-31, 32)
            for dx in range(-31, 32)
            if ((ys + dy >= 0) & (ys + dy < 32) & (xs + dx >= 0) & (xs + dx < 32)).all()
            and not m[ys + dy, xs + dx].any()
            and np.array_equal(f[ys, xs], x[ys + dy, xs + dx])
        }
        assert offsets  # one copy of the background, from one offset
        own = _high_frequency(x, ~m)
        assert _high_frequency(f, m) == pytest.approx(own, rel=0.35)
    blurred_own = _high_frequency(images[0], ~masks[0])
    assert _high_frequency(resampled[0], masks[0]) > 5 * blurred_own  # what the former lost


def test_pairing_is_deterministic_across_processes_and_respects_classes():
    valid = np.ones(8, bool)
    valid[5] = False
    classes = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    here = bg.pair_probes(valid, classes, same=False)
    code = (
        "import numpy as np; from saliency_callback.shortcuts.background import pair_probes; "
        "v = np.ones(8, bool); v[5] = False; "
        "print(pair_probes(v, np.array([0, 0, 1, 1, 2, 2, 2, 0]), same=False).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(here.tolist())
    assert here[5] == -1 and 5 not in here
    assert all(classes[j] != classes[i] for i, j in enumerate(here) if j >= 0)
    same = bg.pair_probes(valid, classes, same=True)
    assert same[4] == 6 and same[6] == 4 and same[2] == 3  # the only same-class partners
    # Without labels, "same" is a second random partner: another probe than the first one.
    first, second = bg.pair_probes(valid, None, same=False), bg.pair_probes(valid, None, same=True)
    taking_part = np.flatnonzero(valid)
    assert (second[taking_part] >= 0).all() and second[5] == -1
    assert all(second[i] not in (i, first[i], 5) for i in taking_part)
    unlabeled = bg.pair_probes(valid, None, same=False)
    assert all(j not in (-1, i, 5) for i, j in enumerate(unlabeled) if valid[i])


# -- hand-built models through the callback ------------------------------------------------------


def test_a_background_reader_has_a_full_gap_and_flips_every_swap(tmp_path):
    images, labels, masks = probe_set(object_reads_class=False)
    alarm = sc.ShortcutAlarm(0.5, monitor="background/gap")
    cb, history, run = fit_with_callback(
        background_reader(), tmp_path, images, labels, masks, alarm=alarm
    )
    last = {tag: values[-1][1] for tag, values in run.scalars.items()}
    assert last["saliency/background/accuracy"] == 1.0
    assert last["saliency/background/mixed_rand_accuracy"] == 0.0  # follows the partner
    assert last["saliency/background/gap"] == 1.0
    assert last["saliency/background/flip_rate"] == 1.0
    assert last["saliency/background/reliance"] == 1.0  # always the background's source
    assert last["saliency/background/only_bg_accuracy"] == 1.0  # the background suffices
    assert last["saliency/background/only_bg_chance"] == pytest.approx(1 / K)
    assert last["saliency/background/mixed_same_accuracy"] == 1.0
    assert history.history["saliency_background_gap"] == [1.0, 1.0]
    assert history.history["saliency_background_flip_rate"] == [1.0, 1.0]
    assert [e.step for e in cb.alarm_events] == [0]  # fires once, then stays armed off
    assert "background" in cb.alarm_events[0].message
    assert run.texts["saliency/alarm_message"][0][0] == 0
    # The panel: one sample per probe, four captioned tiles side by side.
    step, panels = run.images["saliency/background"][-1]
    assert step == 1 and len(panels) == N
    assert panels[0].shape[1] > 4 * 64 and panels[0].shape[0] > 64


def test_an_object_reader_ignores_background_swaps(tmp_path):
    images, labels, masks = probe_set(object_reads_class=True)
    alarm = sc.ShortcutAlarm(0.5, monitor="saliency_background_gap")
    cb, _, run = fit_with_callback(object_reader(), tmp_path, images, labels, masks, alarm=alarm)
    last = {tag: values[-1][1] for tag, values in run.scalars.items()}
    assert last["saliency/background/accuracy"] == 1.0
    assert last["saliency/background/mixed_rand_accuracy"] == 1.0
    assert last["saliency/background/only_fg_accuracy"] == 1.0
    assert last["saliency/background/gap"] == 0.0
    assert last["saliency/background/flip_rate"] == 0.0
    assert last["saliency/background/reliance"] == -1.0  # always the object's source
    assert last["saliency/background/only_bg_accuracy"] < 0.5  # no object, no class (1/3 + noise)
    assert cb.alarm_events == [] and "saliency/alarm_message" not in run.texts


def test_flip_rate_needs_no_labels_and_boxes_work_like_masks(tmp_path):
    images, labels, masks = probe_set(object_reads_class=False)
    ys = [np.flatnonzero(m.any(axis=1)) for m in masks]
    xs = [np.flatnonzero(m.any(axis=0)) for m in masks]
    boxes = np.array([[x[0], y[0], x[-1] + 1, y[-1] + 1] for x, y in zip(xs, ys, strict=True)])
    np.testing.assert_array_equal(sc.metrics.masks_from_boxes(boxes, masks.shape), masks)
    cb = sc.SaliencyCallback(
        images,
        boxes=boxes,
        log_dir=str(tmp_path),
        runtime=sc.Runtime(strict=True),
    )
    background_reader().fit(images, np.zeros(N), epochs=1, verbose=0, callbacks=[cb])
    scalars = read_run(str(tmp_path / "saliency")).scalars
    # Without labels a partner may share the class, hence the background colour: no flip then.
    partners = cb._background.partners["mixed_rand"]
    expected = float(np.mean(labels[partners] != labels))
    assert 0 < expected < 1
    assert scalars["saliency/background/flip_rate"] == [(0, pytest.approx(expected))]
    assert "saliency/background/gap" not in scalars  # needs labels


def test_regression_swap_change_follows_the_background(tmp_path):
    """A regression output equal to the red channel's mean: with equal object areas the swap
    moves the output exactly to the partner's (swap_change 1); the object-reader moves 0."""
    images, _, masks = probe_set(object_reads_class=False)
    images[..., 0] = np.where(masks, 0.5, np.linspace(0, 1, N)[:, None, None])
    inp = keras.Input((S, S, 3))
    dense = keras.layers.Dense(1)
    model = keras.Model(inp, dense(keras.layers.GlobalAveragePooling2D()(inp)))
    dense.set_weights([np.array([[1.0], [0.0], [0.0]], np.float32), np.zeros(1, np.float32)])
    targets = images[..., 0].mean(axis=(1, 2))
    cb = sc.SaliencyCallback(images, labels=targets, masks=masks, log_dir=str(tmp_path))
    history = frozen(model).fit(images, targets, epochs=1, verbose=0, callbacks=[cb])
    assert history.history["saliency_background_swap_change"][0] == pytest.approx(1.0, abs=1e-5)
    scalars = read_run(str(tmp_path / "saliency")).scalars
    assert scalars["saliency/background/mae"][0][1] == pytest.approx(0.0, abs=1e-6)
    assert scalars["saliency/background/gap"][0][1] > 0.1


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "boxes, words",
    [
        ([[0, 0, 13, 4]] * N, "inside the 12x12 image"),
        ([[-1, 0, 4, 4]] * N, "inside the 12x12 image"),
        ([[5, 0, 2, 4]] * N, "inverted"),
        ([[0, 0, 4]] * N, "shape (9, 4)"),
        ([[0, 0, 4, np.nan]] * N, "finite"),
    ],
)
def test_bad_boxes_fail_in_init_naming_boxes(tmp_path, boxes, words):
    images, _, _ = probe_set(object_reads_class=False)
    with pytest.raises(ValueError, match="`boxes`") as info:
        sc.SaliencyCallback(images, boxes=np.array(boxes), log_dir=str(tmp_path))
    assert words in str(info.value)


def test_conflicting_alarms_fail_in_init(tmp_path):
    # (Without masks or boxes the background tests run on proposed boxes: test_maskfree.py.)
    images, labels, masks = probe_set(object_reads_class=False)
    with pytest.raises(ValueError, match="both `alarm` and `alarm_threshold"):
        sc.SaliencyCallback(images, masks=masks, alarm=sc.ShortcutAlarm(), alarm_threshold=0.5)
    with pytest.raises(ValueError, match="needs `labels`"):
        gap = sc.ShortcutAlarm(0.5, monitor="background/gap")
        sc.SaliencyCallback(images, masks=masks, alarm=gap)
    with pytest.raises(ValueError, match="background_tests=False"):
        sc.SaliencyCallback(
            images,
            labels=labels,
            masks=masks,
            background_tests=False,
            alarm=sc.ShortcutAlarm(0.5, monitor="background/flip_rate"),
        )
    with pytest.raises(ValueError, match="Unknown alarm `monitor`: received 'loss'"):
        sc.ShortcutAlarm(0.5, monitor="loss")
    with pytest.raises(ValueError, match="has no chance level"):
        sc.ShortcutAlarm(0.5, monitor="background/gap", relative_to="chance")


def test_empty_and_full_masks_are_left_out_with_one_warning(tmp_path):
    images, labels, masks = probe_set(object_reads_class=False)
    masks[2] = False
    masks[5] = True
    with pytest.warns(UserWarning, match=r"probes \[2, 5\] have an empty mask or one covering"):
        cb = sc.SaliencyCallback(
            images,
            labels=labels,
            masks=masks,
            log_dir=str(tmp_path),
            runtime=sc.Runtime(strict=True),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no further warning during training
        background_reader().fit(images, labels, epochs=1, verbose=0, callbacks=[cb])
    assert cb._background is not None and cb._background.invalid == [2, 5]
    scalars = read_run(str(tmp_path / "saliency")).scalars
    assert scalars["saliency/background/gap"] == [(0, 1.0)]  # the other 7 probes


def test_the_recommended_alarm_and_explicit_ones():
    alarm = sc.ShortcutAlarm()
    assert alarm.monitor == "background/harm_low" and alarm.side == "above"
    assert alarm.limit(None) == 0.05
    assert alarm.update(0, 0.04) is None
    context = {"background/harm": 0.31, "background/harm_low": 0.12, "background/harm_high": 0.5}
    event = alarm.update(1, 0.12, context=context)
    assert event is not None and "follow the background" in event.message
    assert "lose 31% accuracy (95% bounds 12% to 50%)" in event.message
    former = sc.ShortcutAlarm(0.5, monitor="background/reliance")  # the former default
    assert former.update(0, 0.4) is None and former.update(1, 0.7) is not None
    only_bg = sc.ShortcutAlarm(
        0.5, monitor="background/only_bg_accuracy", relative_to="above_chance"
    )
    assert only_bg.limit(1 / 3) == pytest.approx(2 / 3)  # halfway from chance to 1
    # A threshold without a monitor no longer means "mass in mask" silently: it says so.
    with pytest.raises(ValueError, match="monitor='mass_in_mask'"):
        sc.ShortcutAlarm(0.5)
    with pytest.raises(ValueError, match="needs a `threshold`"):
        sc.ShortcutAlarm(monitor="background/gap")
    legacy = sc.ShortcutAlarm(1.0, 2, True, monitor="mass_in_mask")
    assert legacy.relative_to == "chance" and legacy.limit(0.2) == pytest.approx(0.2)
    first = sc.ShortcutAlarm(2.0, monitor="hotspot", relative_to="first")
    assert first.update(0, 0.4) is None  # the first value sets the scale: limit 0.8
    assert first.update(1, 0.7) is None
    assert first.update(2, 0.9) is not None


def test_reliance_is_near_zero_for_predictions_that_follow_neither_source():
    """Unstable predictions (noise) flip most swaps but follow neither the object's probe nor
    the background's: reliance stays near 0 where the flip rate is high."""
    n, k = 600, 3
    rng = np.random.default_rng(0)
    classes = rng.integers(0, k, n)
    valid = np.ones(n, bool)
    partners = bg.pair_probes(valid, classes, same=False)
    test = bg.BackgroundTest(valid, {"mixed_rand": partners, "mixed_same": -np.ones(n, int)}, {})
    original = np.eye(k)[rng.integers(0, k, n)]
    noise = np.eye(k)[rng.integers(0, k, n)]
    values, _ = bg.score(test, original, {"mixed_rand": noise})
    assert values["flip_rate"] > 0.6
    assert abs(values["reliance"]) < 0.1
    follows_background = original[partners]
    values, _ = bg.score(test, original, {"mixed_rand": follows_background})
    assert values["reliance"] > 0.6  # (partners of another class may share a prediction)


def test_a_probe_set_without_swappable_pairs_logs_without_crashing(tmp_path):
    """Only one probe has an object and a background: nothing to swap, so the swap signals
    are not written (not made up, and not NaN), and the panel still shows every probe."""
    images, labels, masks = probe_set(object_reads_class=False)
    masks[1:] = False
    with pytest.warns(UserWarning, match="left out of the background tests"):
        cb = sc.SaliencyCallback(
            images,
            labels=labels,
            masks=masks,
            log_dir=str(tmp_path),
            runtime=sc.Runtime(strict=True),
        )
    with pytest.warns(UserWarning, match="every probe in the background tests has class 0"):
        background_reader().fit(images, labels, epochs=1, verbose=0, callbacks=[cb])
    run = read_run(str(tmp_path / "saliency"))
    assert "saliency/background/flip_rate" not in run.scalars
    assert run.scalars["saliency/background/only_bg_accuracy"][0][1] == 1.0  # probe 0 only
    assert len(run.images["saliency/background"][0][1]) == N


# -- edge cases ----------------------------------------------------------------------------------


def test_a_single_class_says_the_swap_test_cannot_run(tmp_path):
    """Every probe of one class: a background reader keeps its prediction under swaps between
    same-coloured backgrounds. Flip rate 0 and gap 0 would be a false all-clear: they are not
    written (never NaN), with a warning."""
    images, labels, masks = probe_set(object_reads_class=False, classes=1)
    cb = vanilla_callback(tmp_path, images, labels, masks)
    with pytest.warns(UserWarning, match="every probe in the background tests has class 0"):
        background_reader().fit(images, labels, epochs=1, verbose=0, callbacks=[cb])
    last = {t: v[-1][1] for t, v in read_run(str(tmp_path / "saliency")).scalars.items()}
    for name in ("flip_rate", "reliance", "gap", "mixed_rand_accuracy"):
        assert f"saliency/background/{name}" not in last, name
    assert last["saliency/background/only_bg_accuracy"] == 1.0  # still measured


def test_a_one_unit_sigmoid_background_reader(tmp_path):
    """Two classes in one sigmoid unit (p > 0.5: class 1, green): the background reader's
    swaps all flip, and the chance level of the background alone is 1/2."""
    images, labels, masks = probe_set(object_reads_class=False, classes=2)
    inp = keras.Input((S, S, 3))
    dense = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inp, dense(keras.layers.GlobalAveragePooling2D()(inp)))
    dense.set_weights([np.array([[-10.0], [10.0], [0.0]], np.float32), np.zeros(1, np.float32)])
    model.compile(keras.optimizers.SGD(0.0), "binary_crossentropy")
    cb = vanilla_callback(tmp_path, images, labels, masks, class_names=["red", "green"])
    model.fit(images, labels.astype(np.float32), epochs=1, verbose=0, callbacks=[cb])
    run = read_run(str(tmp_path / "saliency"))
    last = {t: v[-1][1] for t, v in run.scalars.items()}
    assert last["saliency/background/accuracy"] == 1.0
    assert last["saliency/background/mixed_rand_accuracy"] == 0.0
    assert last["saliency/background/flip_rate"] == 1.0
    assert last["saliency/background/reliance"] == 1.0
    assert last["saliency/background/only_bg_chance"] == 0.5
    assert last["saliency/probe_accuracy"] == 1.0


def tile(panel: np.ndarray, j: int) -> np.ndarray:
    """Tile `j` of a background panel at probe resolution (12x12 tiles upscaled 6x, nearest)."""
    x0 = j * (6 * S + SEPARATOR_PX)
    return panel[caption_height() + 3 :: 6, x0 + 3 : x0 + 6 * S : 6][:S]


def test_uint8_probes_show_their_own_colours_in_the_background_panel(tmp_path):
    images, labels, masks = probe_set(object_reads_class=False)
    raw = np.round(images * 255).astype(np.uint8)
    cb = vanilla_callback(tmp_path, raw, labels, masks)
    background_reader().fit(raw, labels, epochs=1, verbose=0, callbacks=[cb])
    run = read_run(str(tmp_path / "saliency"))
    assert run.scalars["saliency/background/flip_rate"] == [(0, 1.0)]  # 0..255 inputs too
    mean = raw.reshape(-1, 3).mean(axis=0)
    (_, panels) = run.images["saliency/background"][0]
    for i, panel in enumerate(panels):
        m = masks[i]
        original, only_fg, only_bg, mixed = (tile(panel, j) for j in range(4))
        np.testing.assert_array_equal(original, raw[i])
        np.testing.assert_array_equal(only_fg[m], raw[i][m])
        np.testing.assert_allclose(only_fg[~m], np.broadcast_to(mean, only_fg[~m].shape), atol=1)
        np.testing.assert_array_equal(only_bg, np.broadcast_to(raw[i][~m][0], raw[i].shape))
        np.testing.assert_array_equal(mixed[m], raw[i][m])  # grey 128, not saturated
        partner = np.eye(3, dtype=np.uint8)[labels[cb._background.partners["mixed_rand"][i]]]
        np.testing.assert_array_equal(mixed[~m], np.broadcast_to(partner * 255, (128, 3)))


@pytest.mark.parametrize("fill", [False, True], ids=["empty", "full"])
def test_every_mask_invalid_logs_no_value_and_only_says_why(tmp_path, fill):
    images, labels, masks = probe_set(object_reads_class=False)
    masks[:] = fill
    with pytest.warns(UserWarning, match=r"probes \[0, 1, 2, 3, 4, 5, 6, 7, 8\]"):
        cb = vanilla_callback(tmp_path, images, labels, masks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # nothing more: e.g. numpy's "Mean of empty slice"
        background_reader().fit(images, labels, epochs=1, verbose=0, callbacks=[cb])
    (said,) = [str(w.message) for w in caught]  # which signals are not logged, and why
    assert "background/flip_rate" in said and "not logged at step 0" in said
    last = {t: v[-1][1] for t, v in read_run(str(tmp_path / "saliency")).scalars.items()}
    for name in ("flip_rate", "reliance", "gap", "accuracy", "only_bg_accuracy", "harm"):
        assert f"saliency/background/{name}" not in last, name
    assert last["saliency/background/harm_probes"] == 0.0
    if fill:  # the whole image is the object: all the mass is inside, as is chance
        assert last["saliency/mass_in_mask"] == last["saliency/mass_in_mask_chance"] == 1.0
    else:  # no object: the question has no answer
        assert "saliency/mass_in_mask" not in last
        assert "saliency/mass_in_mask_chance" not in last


def regression_probes():
    """Red channel: the object holds a value in [0.5, 1], the background one in [0, 0.2]
    (both vary by probe); green and blue are zero."""
    _, _, masks = probe_set(object_reads_class=False)
    rng = np.random.default_rng(5)
    images = np.zeros((N, S, S, 3), np.float32)
    obj, back = rng.uniform(0.5, 1.0, N), rng.uniform(0.0, 0.2, N)
    images[..., 0] = np.where(masks, obj[:, None, None], back[:, None, None])
    return images, masks


def regression_model(pool) -> keras.Model:
    """The red channel's mean (reads the background, which covers most of the image) or its
    maximum (the object's value: reads only the object)."""
    inp = keras.Input((S, S, 3))
    dense = keras.layers.Dense(1)
    model = keras.Model(inp, dense(pool()(inp)))
    dense.set_weights([np.array([[1.0], [0.0], [0.0]], np.float32), np.zeros(1, np.float32)])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    return model


@pytest.mark.parametrize(
    "pool, expected",
    [(keras.layers.GlobalMaxPooling2D, 0.0), (keras.layers.GlobalAveragePooling2D, None)],
    ids=["object-reader", "background-reader"],
)
def test_regression_without_targets_measures_swap_change(tmp_path, pool, expected):
    """No labels: only `swap_change`. The object reader's output is its object's value, which
    the swap keeps: exactly 0. The mean moves by the backgrounds' difference times their area."""
    images, masks = regression_probes()
    cb = vanilla_callback(tmp_path, images, masks=masks)
    model = regression_model(pool)
    model.fit(images, np.zeros(N), epochs=1, verbose=0, callbacks=[cb])
    scalars = read_run(str(tmp_path / "saliency")).scalars
    change = scalars["saliency/background/swap_change"][0][1]
    if expected is None:  # |f(mixed_i) - f(i)| = area_bg * |back_j - back_i|, over |f(j) - f(i)|
        y = model.predict(images, verbose=0)[:, 0]
        j = cb._background.partners["mixed_rand"]
        back = images[..., 0][~masks].reshape(N, -1)[:, 0]
        moved = np.abs((1 - masks.mean(axis=(1, 2))) * (back[j] - back))
        expected = moved.mean() / np.abs(y[j] - y).mean()
        assert 0.3 < expected < 1
    assert change == pytest.approx(expected, abs=1e-5)
    assert not {"mae", "gap"} & {t.rsplit("/", 1)[-1] for t in scalars}
