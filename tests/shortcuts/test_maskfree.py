"""Background tests without masks: object boxes proposed from the image, through a real `fit`.

Hand-built models (no training: SGD with learning rate 0) read only the background or only
the object; the truth (where the object is, what each model reads) is known by construction.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from tb_events import read_run

import saliency_callback as sc
from saliency_callback.output import box_panels
from saliency_callback.shortcuts import proposals

K, N, S = 3, 9, 32  # classes, probes, image side
OBJ = 8  # object side in pixels


def probe_set(seed: int = 0, *, object_reads_class: bool, width: int = S):
    """N probes with an OBJ x OBJ object at a random place, at least 3 pixels from the border.
    Either the background is the class colour and the object grey (`object_reads_class=False`),
    or the object is the class colour and the background a grey of random brightness."""
    rng = np.random.default_rng(seed)
    labels = np.arange(N) % K
    images = np.zeros((N, S, width, 3), np.float32)
    masks = np.zeros((N, S, width), bool)
    for i, c in enumerate(labels):
        y, x = rng.integers(3, S - OBJ - 3), rng.integers(3, width - OBJ - 3)
        masks[i, y : y + OBJ, x : x + OBJ] = True
        colour = 0.15 + 0.7 * np.eye(3, dtype=np.float32)[c]
        grey = np.full(3, rng.uniform(0.3, 0.7), np.float32)
        images[i] = grey if object_reads_class else colour
        images[i][masks[i]] = colour if object_reads_class else 0.5
    return images, labels, masks


def frozen(inputs, outputs) -> keras.Model:
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    return model


def background_reader(shape=(S, S, 3), scale: float = 1.0) -> keras.Model:
    """Logits = the image's mean colour: the (class-coloured) background dominates it."""
    inp = keras.Input(shape)
    dense = keras.layers.Dense(K, activation="softmax")
    out = dense(keras.layers.GlobalAveragePooling2D()(inp))
    dense.set_weights([np.eye(3, dtype=np.float32) * 20 * scale, np.zeros(3, np.float32)])
    return frozen(inp, out)


def object_reader() -> keras.Model:
    """Logits = the largest colourfulness (channel minus the pixel's grey level): zero on any
    grey background, the class colour on the object."""
    inp = keras.Input((S, S, 3))
    conv = keras.layers.Conv2D(3, 1, activation="relu")
    dense = keras.layers.Dense(K, activation="softmax")
    out = dense(keras.layers.GlobalMaxPooling2D()(conv(inp)))
    conv.set_weights([(np.eye(3) - 1 / 3).reshape(1, 1, 3, 3).astype(np.float32), np.zeros(3)])
    dense.set_weights([np.eye(3, dtype=np.float32) * 10, np.zeros(3, np.float32)])
    return frozen(inp, out)


def fit(model, log_dir, images, labels, epochs=2, **kwargs):
    cb = sc.SaliencyCallback(
        images, labels=labels, log_dir=str(log_dir), runtime=sc.Runtime(strict=True), **kwargs
    )
    model.fit(images, labels, epochs=epochs, verbose=0, callbacks=[cb])
    return cb, read_run(str(log_dir / "saliency"))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    shape = (len(a), S, S)
    ma, mb = sc.metrics.masks_from_boxes(a, shape), sc.metrics.masks_from_boxes(b, shape)
    return (ma & mb).sum(axis=(1, 2)) / (ma | mb).sum(axis=(1, 2))


def colour_pixels(image: np.ndarray, rgb) -> int:
    return int((np.abs(image.astype(int) - np.array(rgb)).sum(axis=-1) <= 30).sum())


@pytest.fixture(scope="module")
def shortcut_run(tmp_path_factory):
    images, labels, masks = probe_set(object_reads_class=False)
    log_dir = tmp_path_factory.mktemp("shortcut")
    cb, run = fit(background_reader(), log_dir, images, labels, alarm=sc.ShortcutAlarm())
    return cb, run, masks


def test_proposed_boxes_find_the_objects(shortcut_run):
    cb, _, masks = shortcut_run
    regions = cb._regions
    assert regions.source == "proposed" and regions.method == "grabcut"
    assert regions.usable.all()
    assert (box_iou(regions.boxes, proposals.bounding_boxes(masks)) >= 0.8).all()
    # The tests use the filled boxes; the proposals' own pixels lie inside them.
    np.testing.assert_array_equal(
        regions.masks, sc.metrics.masks_from_boxes(regions.boxes, masks.shape)
    )
    assert not (regions.pixels & ~regions.masks).any()
    overlap = (regions.pixels & masks).sum(axis=(1, 2)) / (regions.pixels | masks).sum(axis=(1, 2))
    assert (overlap >= 0.8).all()


def test_a_background_reader_without_masks_fires_the_default_alarm(shortcut_run):
    cb, run, _ = shortcut_run
    last = {tag: values[-1][1] for tag, values in run.scalars.items()}
    assert last["saliency/background/reliance"] == 1.0  # predictions follow the background
    assert last["saliency/background/gap"] == 1.0
    assert last["saliency/background/proposed_boxes"] == 1.0  # proposed, not given
    assert [e.step for e in cb.alarm_events] == [0]
    assert run.scalars["saliency/alarm"][0] == (0, 1.0)
    assert "background" in run.texts["saliency/alarm_message"][0][1]
    assert "**proposed**" in run.descriptions["saliency/background"]


def test_probe_boxes_image_shows_the_proposed_boxes(shortcut_run):
    cb, run, _ = shortcut_run
    (step, samples), *later = run.images["saliency/probe_boxes"]
    assert step == 0 and later == [] and len(samples) == 1  # once per fit, one grid
    grid = samples[0]
    assert colour_pixels(grid, box_panels.PROPOSED_RGB) > 0
    assert colour_pixels(grid, box_panels.GIVEN_RGB) == 0
    assert "**proposed**" in run.descriptions["saliency/probe_boxes"]
    # The grid's first cell is probe 0 alone, rendered with its box.
    alone = box_panels.render_probe_boxes(cb.probes.raw[:1], _first(cb._regions))[0]
    th, tw = alone.shape[:2]
    np.testing.assert_array_equal(grid[:th, :tw], alone)
    # Its box is drawn where the proposal put it: the yellow outline's extent, in image
    # pixels (the tile is the 32x32 probe upscaled by 2), is the proposed box.
    tile = alone[-(4 + 2 * S) : -4, 4:-4]
    ys, xs = np.nonzero(np.abs(tile.astype(int) - box_panels.PROPOSED_RGB).sum(axis=-1) <= 30)
    drawn = [xs.min() // 2, ys.min() // 2, xs.max() // 2 + 1, ys.max() // 2 + 1]
    assert drawn == cb._regions.boxes[0].tolist()


def _first(regions):
    return sc.probes.ObjectRegions(
        regions.masks[:1], regions.boxes[:1], regions.usable[:1], regions.source, regions.method
    )


def test_an_object_reader_without_masks_stays_silent(tmp_path):
    images, labels, _ = probe_set(object_reads_class=True)
    cb, run = fit(object_reader(), tmp_path, images, labels, alarm=sc.ShortcutAlarm())
    last = {tag: values[-1][1] for tag, values in run.scalars.items()}
    assert cb._regions.usable.all()
    assert last["saliency/background/reliance"] == -1.0  # predictions follow the object
    assert last["saliency/alarm"] == 0.0
    assert cb.alarm_events == [] and "saliency/alarm_message" not in run.texts


def test_given_masks_win_over_proposals(tmp_path, monkeypatch):
    images, labels, masks = probe_set(object_reads_class=False)

    def fail(*args, **kwargs):
        raise AssertionError("proposals computed although masks were given")

    monkeypatch.setattr(proposals, "propose_masks", fail)
    cb, run = fit(background_reader(), tmp_path, images, labels, epochs=1, masks=masks)
    assert cb._regions.source == "given"
    np.testing.assert_array_equal(cb._regions.masks, masks)
    assert run.scalars["saliency/background/proposed_boxes"] == [(0, 0.0)]
    grid = run.images["saliency/probe_boxes"][0][1][0]
    assert colour_pixels(grid, box_panels.GIVEN_RGB) > 0
    assert colour_pixels(grid, box_panels.PROPOSED_RGB) == 0
    assert "**proposed**" not in run.descriptions["saliency/background"]


def test_probes_without_an_object_are_named_and_left_out(tmp_path):
    images, labels, _ = probe_set(object_reads_class=False)
    images[[2, 6]] = images[[2, 6], :1, :1]  # the background colour only: nothing to find
    with pytest.warns(UserWarning, match=r"no plausible object found in probes \[2, 6\]") as rec:
        cb, run = fit(background_reader(), tmp_path, images, labels, alarm=sc.ShortcutAlarm())
    assert sum("no plausible object" in str(w.message) for w in rec) == 1
    assert cb._background.valid.tolist() == [i not in (2, 6) for i in range(N)]
    assert not {2, 6} & set(cb._background.partners["mixed_rand"].tolist())
    assert run.scalars["saliency/background/reliance"][-1][1] == 1.0
    assert [e.step for e in cb.alarm_events] == [0]


def test_no_object_anywhere_warns_once_and_the_alarm_says_it_could_not_run(tmp_path):
    images = sc.make_texture_data(N, image_size=S, seed=1).images
    labels = np.arange(N) % K
    with pytest.warns(UserWarning, match="no plausible object found in any probe") as rec:
        cb, run = fit(background_reader(), tmp_path, images, labels, alarm=sc.ShortcutAlarm())
    assert sum("no plausible object" in str(w.message) for w in rec) == 1
    assert cb._background is None and cb.alarm_events == []
    assert "saliency/alarm" not in run.scalars  # not judged: neither 0 ("no alarm") nor NaN
    assert all("could not run" in text for _, text in run.texts["saliency/alarm_message"])
    assert not any(tag.startswith("saliency/background/") for tag in run.scalars)
    grid = run.images["saliency/probe_boxes"][0][1][0]
    assert colour_pixels(grid, box_panels.PROPOSED_RGB) == 0  # no box drawn


def test_without_opencv_one_warning_and_no_crash(tmp_path, monkeypatch):
    images, labels, _ = probe_set(object_reads_class=False)

    def no_cv2(*args, **kwargs):
        raise ImportError("object proposals need OpenCV: pip install opencv-python-headless")

    monkeypatch.setattr(proposals, "propose_masks", no_cv2)
    with pytest.warns(UserWarning, match="object proposals are unavailable") as rec:
        cb, run = fit(background_reader(), tmp_path, images, labels, alarm=sc.ShortcutAlarm())
    assert sum("background tests" in str(w.message) for w in rec) == 1
    assert cb.alarm_events == []
    assert "saliency/alarm" not in run.scalars
    assert "opencv-python-headless" in run.descriptions["saliency/probe_boxes"]


def test_uint8_non_square_probes_without_masks(tmp_path):
    images, labels, masks = probe_set(object_reads_class=False, width=48)
    raw = (images * 255).round().astype(np.uint8)
    model = background_reader((S, 48, 3), scale=1 / 255)
    cb, run = fit(model, tmp_path, raw, labels, epochs=1, alarm=sc.ShortcutAlarm())
    truth = proposals.bounding_boxes(masks)
    ma = sc.metrics.masks_from_boxes(cb._regions.boxes, masks.shape)
    mb = sc.metrics.masks_from_boxes(truth, masks.shape)
    assert ((ma & mb).sum(axis=(1, 2)) / (ma | mb).sum(axis=(1, 2)) >= 0.8).all()
    assert run.scalars["saliency/background/reliance"] == [(0, 1.0)]
    assert [e.step for e in cb.alarm_events] == [0]


def test_background_tests_off_means_no_proposals(tmp_path, monkeypatch):
    images, labels, _ = probe_set(object_reads_class=False)
    monkeypatch.setattr(proposals, "propose_masks", None)  # would fail if called
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cb, run = fit(
            background_reader(), tmp_path, images, labels, epochs=1, background_tests=False
        )
    assert cb._regions is None
    assert "saliency/probe_boxes" not in run.images
    assert not any(tag.startswith("saliency/background/") for tag in run.scalars)
    with pytest.raises(ValueError, match="background_tests=False"):
        sc.SaliencyCallback(images, background_tests=False, alarm=sc.ShortcutAlarm())


def test_mask_metrics_alarms_still_need_given_masks():
    images, _, _ = probe_set(object_reads_class=False)
    with pytest.raises(ValueError, match="needs `masks` or `boxes`"):
        sc.SaliencyCallback(images, alarm=sc.ShortcutAlarm(1.0, monitor="mass_in_mask"))
